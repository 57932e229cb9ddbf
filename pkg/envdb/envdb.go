// Package envdb resets an environment's database to a freshly migrated (and seeded) state, and
// keeps named snapshots of it, on the environment's own PostgreSQL server.
//
// A reset is fast because it does not migrate: the first reset of a migration set builds a
// template database (migrated, seeded, marked IS_TEMPLATE with connections disallowed) and
// every reset drops the database and clones it from the template, two statements. A snapshot
// is a template database cloned from the database; a restore drops the database and clones it
// back. Every database envdb makes is named after the database it serves (hashed when that
// would pass PostgreSQL's 63 bytes) and marked with a comment, so that only envdb's own are
// listed or dropped.
package envdb

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

// Target is the database envdb works on and what it is made of.
type Target struct {
	// AdminURL is a superuser's URL on the database's server; its database is the one envdb
	// connects to (the maintenance database "postgres"), never Database.
	AdminURL string
	// Database is the environment's database; Owner is the role that owns it, and the objects
	// the migrations and seeds create.
	Database, Owner string
	// OwnerPassword, when set, makes migrations and seeds run on a connection of Owner's own.
	// Without it they run on a superuser connection under SET ROLE, which a migration file
	// could undo with RESET ROLE: give the password whenever the files are not trusted.
	OwnerPassword string
	// Migrations are the migration set, loaded by the caller (migrate.LoadDir).
	Migrations []*migrate.Migration
	// Schema and Table name the ledger; empty means migrate.DefaultSchema and DefaultTable.
	Schema, Table string
	// Seeds are SQL files run in order after the migrations, each as one multi-statement query
	// (one implicit transaction unless the file controls its own).
	Seeds []string
	// SeedRoot, when set, is the project directory the seed files must lie in (safefile);
	// messages name them relative to it.
	SeedRoot string
	// AppliedBy is the applied_by of the ledger rows; default "envdb".
	AppliedBy string
}

// Comment marks: every database envdb makes carries "poststack-envdb " and a JSON mark.
const (
	commentPrefix = "poststack-envdb "
	kindTemplate  = "template"
	kindSnapshot  = "snapshot"
)

// mark is what the comment of an envdb database says of it.
type mark struct {
	Kind     string    `json:"kind"`
	Database string    `json:"database"`
	Name     string    `json:"name,omitempty"`   // a snapshot's
	Seeded   bool      `json:"seeded,omitempty"` // a template's: built with the seed files
	Created  time.Time `json:"created"`
}

func (m mark) comment() string {
	b, _ := json.Marshal(m) // a struct of strings, a bool and a time: it cannot fail
	return commentPrefix + string(b)
}

// parseMark reads a comment; ok is false for a database that is not envdb's.
func parseMark(comment string) (mark, bool) {
	rest, ok := strings.CutPrefix(comment, commentPrefix)
	if !ok {
		return mark{}, false
	}
	var m mark
	if err := json.Unmarshal([]byte(rest), &m); err != nil {
		return mark{}, false
	}
	return m, true
}

// maxName is PostgreSQL's NAMEDATALEN-1; longer names are truncated silently.
const maxName = 63

// MaxSnapshotName is the longest snapshot name, in bytes.
const MaxSnapshotName = 32

var snapshotNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`) })

// CheckSnapshotName refuses a name that is not letters, digits, '_', '.' and '-' (starting with
// a letter or digit) of at most MaxSnapshotName bytes; the error is a usage error (exit 2).
func CheckSnapshotName(name string) error {
	if len(name) > MaxSnapshotName || !snapshotNameRE().MatchString(name) {
		return exitcode.Usagef("snapshot name %q: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most %d bytes", name, MaxSnapshotName)
	}
	return nil
}

// derivedName is db followed by tag, within maxName bytes: when too long, db is cut (at a
// character boundary) and a hash of the whole of it keeps the names of different databases apart.
func derivedName(db, tag string) string {
	if len(db)+len(tag) <= maxName {
		return db + tag
	}
	sum := sha256.Sum256([]byte(db))
	h := hex.EncodeToString(sum[:4])
	cut := db[:maxName-len(tag)-len(h)-1]
	for !utf8.ValidString(cut) {
		cut = cut[:len(cut)-1]
	}
	return cut + "_" + h + tag
}

func templateName(db, key string) string { return derivedName(db, "__tpl_"+key) }
func buildName(db, key string) string    { return derivedName(db, "__build_"+key) }
func snapshotName(db, name string) string {
	return derivedName(db, "__snap_"+name)
}

// check validates what every operation needs.
func (t *Target) check() error {
	switch {
	case t.AdminURL == "":
		return exitcode.Usagef("envdb: no admin URL")
	case t.Database == "" || len(t.Database) > maxName || strings.ContainsRune(t.Database, 0) || !utf8.ValidString(t.Database):
		return exitcode.Usagef("envdb: database name %q: 1 to %d bytes of UTF-8 without NUL", t.Database, maxName)
	case t.Owner == "" || len(t.Owner) > maxName || strings.ContainsRune(t.Owner, 0) || !utf8.ValidString(t.Owner):
		return exitcode.Usagef("envdb: owner name %q: 1 to %d bytes of UTF-8 without NUL", t.Owner, maxName)
	case t.Database == "template0" || t.Database == "template1" || t.Database == "postgres":
		return exitcode.Usagef("envdb: database %q is one of the server's own; choose another", t.Database)
	}
	cfg, err := pgx.ParseConfig(t.AdminURL)
	if err != nil {
		return exitcode.Usagef("envdb: admin URL: %w", err)
	}
	if cfg.Database == t.Database {
		return exitcode.Usagef("envdb: the admin URL connects to %q, the database to reset; it must name another (postgres)", t.Database)
	}
	return nil
}

func (t *Target) schema() string {
	if t.Schema == "" {
		return migrate.DefaultSchema
	}
	return t.Schema
}

func (t *Target) table() string {
	if t.Table == "" {
		return migrate.DefaultTable
	}
	return t.Table
}

// lockClass is the first key of envdb's advisory locks ("psdb").
const lockClass = 0x70736462

// session is a superuser connection holding the lock of the target's database, which
// serialises envdb's operations on it across processes.
type session struct {
	conn *pgx.Conn
	t    *Target
	// detached is set once the connection was handed work to finish on its own (detach).
	detached bool
}

// open connects as the superuser and takes the lock; wait is told when another process holds it.
func open(ctx context.Context, t *Target, wait func()) (*session, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, t.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("envdb: connect to the server of %s: %w", t.Database, err)
	}
	s := &session{conn: conn, t: t}
	sum := sha256.Sum256([]byte(t.Database))
	key := int32(binary.BigEndian.Uint32(sum[:4]))
	var got bool
	if err := conn.QueryRow(ctx, "select pg_try_advisory_lock($1, $2)", lockClass, key).Scan(&got); err != nil {
		s.close(ctx)
		return nil, fmt.Errorf("envdb: lock %s: %w", t.Database, err)
	}
	if !got {
		if wait != nil {
			wait()
		}
		if _, err := conn.Exec(ctx, "select pg_advisory_lock($1, $2)", lockClass, key); err != nil {
			s.close(ctx)
			return nil, fmt.Errorf("envdb: wait for the lock of %s: %w", t.Database, err)
		}
	}
	return s, nil
}

// close ends the session, and with it the lock; a detached session ends by itself.
func (s *session) close(ctx context.Context) {
	if !s.detached {
		s.conn.Close(context.WithoutCancel(ctx))
	}
}

// detach sends queries to run after the caller has gone, and closes the connection without
// waiting for them. The server runs them in order and then ends the session, so the lock stays
// held, and the next operation on the database waits, until they are done. Only the first two
// are sure to run: the server notices that nobody reads the results after its second answer.
// When the queries cannot be sent they do not run, which only costs the next operation time.
func (s *session) detach(queries ...string) {
	hc, err := s.conn.PgConn().Hijack()
	if err != nil {
		return
	}
	s.detached = true
	for _, q := range queries {
		hc.Frontend.Send(&pgproto3.Query{String: q})
	}
	hc.Frontend.Send(&pgproto3.Terminate{})
	_ = hc.Frontend.Flush()
	hc.Conn.Close()
}

// Settle waits until the work earlier operations on the target's database left to the server
// is done: after a reset, the spare database the next reset swaps in is cloned in the
// background. Operations wait for it by themselves; Settle is for tests and teardown.
func Settle(ctx context.Context, t Target) error {
	s, err := open(ctx, &t, nil)
	if err != nil {
		return err
	}
	s.close(ctx)
	return nil
}

// exec runs one utility statement.
func (s *session) exec(ctx context.Context, sql string) error {
	_, err := s.conn.Exec(ctx, sql)
	return err
}

// info is what pg_database says of one database: found is false when there is none.
type info struct {
	found     bool
	oid       uint32
	template  bool
	allowConn bool
	mark      mark
	ours      bool
}

func (s *session) lookup(ctx context.Context, name string) (info, error) {
	all, err := s.lookupAll(ctx, []string{name}, nil)
	return all[name], err
}

// lookupAll reads the databases called names or starting with one of prefixes, in one query.
func (s *session) lookupAll(ctx context.Context, names, prefixes []string) (map[string]info, error) {
	rows, err := s.conn.Query(ctx, `
select datname, oid, datistemplate, datallowconn, shobj_description(oid, 'pg_database') from pg_database
where datname = any($1::text[]::name[])
   or exists (select from unnest($2::text[]) p where starts_with(datname::text, p))`, names, prefixes)
	if err != nil {
		return nil, fmt.Errorf("envdb: look up databases: %w", err)
	}
	out := map[string]info{}
	for rows.Next() {
		var (
			name    string
			in      = info{found: true}
			comment *string
		)
		if err := rows.Scan(&name, &in.oid, &in.template, &in.allowConn, &comment); err != nil {
			rows.Close()
			return nil, fmt.Errorf("envdb: look up databases: %w", err)
		}
		if comment != nil {
			in.mark, in.ours = parseMark(*comment)
		}
		out[name] = in
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("envdb: look up databases: %w", err)
	}
	return out, nil
}

// dropOurs drops an envdb database (a template must stop being one first).
func (s *session) dropOurs(ctx context.Context, name string) error {
	if err := s.exec(ctx, "ALTER DATABASE "+ident(name)+" WITH IS_TEMPLATE false"); err != nil {
		return fmt.Errorf("envdb: drop %s: %w", name, err)
	}
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("envdb: drop %s: %w", name, err)
	}
	return nil
}

// recreate drops the target's database and clones it from source: the two statements of a
// fast reset or restore.
func (s *session) recreate(ctx context.Context, source string) error {
	db := ident(s.t.Database)
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("envdb: drop %s: %w", s.t.Database, err)
	}
	if err := s.exec(ctx, "CREATE DATABASE "+db+" TEMPLATE "+ident(source)+" OWNER "+ident(s.t.Owner)); err != nil {
		return fmt.Errorf("envdb: create %s from %s: %w", s.t.Database, source, err)
	}
	return nil
}

// finish makes name a template nobody may connect to (so that CREATE DATABASE … TEMPLATE never
// finds a session on it) and marks it as envdb's.
func (s *session) finish(ctx context.Context, name string, m mark) error {
	q := "ALTER DATABASE " + ident(name) + " WITH IS_TEMPLATE true ALLOW_CONNECTIONS false; " +
		"COMMENT ON DATABASE " + ident(name) + " IS " + literal(m.comment())
	if err := s.exec(ctx, q); err != nil {
		return fmt.Errorf("envdb: mark %s: %w", name, err)
	}
	return nil
}

// ours lists envdb's databases serving the target's database, with their marks.
func (s *session) ours(ctx context.Context, kind string) (map[string]mark, error) {
	rows, err := s.conn.Query(ctx, `
select datname, shobj_description(oid, 'pg_database') from pg_database
where datistemplate and shobj_description(oid, 'pg_database') like 'poststack-envdb %'`)
	if err != nil {
		return nil, fmt.Errorf("envdb: list databases: %w", err)
	}
	type row struct {
		Name    string
		Comment string
	}
	list, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		return nil, fmt.Errorf("envdb: list databases: %w", err)
	}
	out := map[string]mark{}
	for _, r := range list {
		m, ok := parseMark(r.Comment)
		if ok && m.Kind == kind && m.Database == s.t.Database {
			out[r.Name] = m
		}
	}
	return out, nil
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// literal quotes s for utility statements, which take no parameters; an E-string with doubled
// backslashes means the same whatever standard_conforming_strings says.
func literal(s string) string {
	s = strings.ReplaceAll(s, "'", "''")
	if strings.Contains(s, `\`) {
		return `E'` + strings.ReplaceAll(s, `\`, `\\`) + `'`
	}
	return "'" + s + "'"
}
