package envdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/safefile"
)

// ResetOptions are Reset's optional inputs.
type ResetOptions struct {
	// NoSeed skips the seed files: the database is migrated only.
	NoSeed bool
	// Progress receives the template build's events (envdb's, and migrate's for each
	// migration); nil discards them.
	Progress progress.Func
}

// ResetResult is one reset.
type ResetResult struct {
	Database string
	// Template is the template database the database is a copy of.
	Template string
	// Built is set when this reset built the template (the first reset of a migration set and
	// seed files).
	Built bool
	// Swapped is set when a spare copy of the template, cloned by the previous reset, was
	// renamed into place; otherwise the database was cloned from the template while it waited.
	Swapped bool
	// Migrations and Seeds count what the database holds: migrations applied, seed files run.
	Migrations, Seeds int
	// Dropped names the outdated templates of the database that a build dropped.
	Dropped []string
	// Duration is the time until the database was ready. The spare for the next reset is
	// cloned after that, by the server on its own (see Settle).
	Duration time.Duration
}

// keyLen is how many hex digits of the template key a template's name carries.
const keyLen = 16

// seed is one seed file as read.
type seed struct {
	file string
	text string
}

// Reset drops the target's database and creates it again, migrated and (unless opts.NoSeed)
// seeded, as a copy of a template kept per migration set and seed files; a missing template is
// built first, and the outdated templates of the database are then dropped. Sessions on the
// database are terminated. A migration or seed that fails leaves the database as it was.
//
// Copying a database costs about as much as creating an empty one, so a reset does not copy
// while the caller waits: it renames into place a spare copy made by the previous reset (the
// old database is renamed away in the same transaction), and leaves it to the server to drop
// the old database and clone the next spare once Reset has returned. The first reset of a
// template clones it directly.
func Reset(ctx context.Context, t Target, opts ResetOptions) (*ResetResult, error) {
	start := time.Now()
	rep := progress.NewReporter("envdb", opts.Progress)
	var seeds []seed
	if !opts.NoSeed {
		for _, f := range t.Seeds {
			b, err := safefile.ReadFile(t.SeedRoot, f)
			if err != nil {
				return nil, fmt.Errorf("envdb: seed file: %w", err)
			}
			seeds = append(seeds, seed{file: seedName(t.SeedRoot, f), text: string(b)})
		}
	}
	key, err := templateKey(&t, seeds)
	if err != nil {
		return nil, err
	}
	s, err := open(ctx, &t, func() {
		rep.Emit(progress.Event{Kind: progress.Wait, Message: "another operation on " + t.Database + " is running"})
	})
	if err != nil {
		return nil, err
	}
	defer s.close(ctx)
	res := &ResetResult{Database: t.Database, Template: templateName(t.Database, key), Migrations: len(t.Migrations), Seeds: len(seeds)}
	names := []string{t.Database, res.Template}
	prefixes := []string{spareStem(t.Database), trashStem(t.Database)}
	dbs, err := s.lookupAll(ctx, names, prefixes)
	if err != nil {
		return nil, err
	}
	if tpl := dbs[res.Template]; !tpl.found || !tpl.template {
		if res.Dropped, err = s.build(ctx, key, res.Template, seeds, rep); err != nil {
			return nil, err
		}
		res.Built = true
		if dbs, err = s.lookupAll(ctx, names, prefixes); err != nil {
			return nil, err
		}
	}
	spare := spareName(t.Database, dbs[res.Template].oid)
	// Spares of other sources and old databases a background drop missed.
	for name, in := range dbs {
		if name != spare && (isSpare(t.Database, name, in) || isTrash(t.Database, name, in)) {
			if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
				return nil, fmt.Errorf("envdb: drop the leftover %s: %w", name, err)
			}
		}
	}
	var later []string
	if in := dbs[spare]; isSpare(t.Database, spare, in) {
		trash, err := s.swap(ctx, spare, dbs[t.Database])
		if err != nil {
			return nil, err
		}
		res.Swapped = true
		if trash != "" {
			later = append(later, "DROP DATABASE IF EXISTS "+ident(trash)+" WITH (FORCE)")
		}
	} else if err := s.recreate(ctx, res.Template); err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	later = append(later, "CREATE DATABASE "+ident(spare)+" TEMPLATE "+ident(res.Template)+" OWNER "+ident(t.Owner)+" ALLOW_CONNECTIONS false")
	s.detach(later...)
	return res, nil
}

// Spares and old databases are named by an OID: a spare by its source's, so that a template
// built again, or a snapshot taken again, never has a spare of its predecessor swapped in; an
// old database by its own, so that one a background drop missed never blocks a reset.
func spareName(db string, source uint32) string {
	return derivedName(db, fmt.Sprintf("__spare_%08x", source))
}
func trashName(db string, old uint32) string { return derivedName(db, fmt.Sprintf("__old_%08x", old)) }
func spareStem(db string) string             { return strings.TrimSuffix(spareName(db, 0), "00000000") }
func trashStem(db string) string             { return strings.TrimSuffix(trashName(db, 0), "00000000") }

// isSpare and isTrash recognise envdb's spares and old databases: the name, and connections
// disallowed, which envdb creates them with.
func isSpare(db, name string, in info) bool {
	return in.found && !in.template && !in.allowConn && oidSuffix(name, spareStem(db))
}

func isTrash(db, name string, in info) bool {
	return in.found && !in.template && !in.allowConn && oidSuffix(name, trashStem(db))
}

func oidSuffix(name, stem string) bool {
	rest, ok := strings.CutPrefix(name, stem)
	if !ok || len(rest) != 8 {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil && strings.ToLower(rest) == rest
}

// swap puts spare in the database's place in one transaction, the database (when there is one)
// renamed away: it is closed to new sessions first, and its sessions are terminated. It returns
// the old database's new name, "" when there was none.
func (s *session) swap(ctx context.Context, spare string, db info) (string, error) {
	name := ident(s.t.Database)
	q := "ALTER DATABASE " + ident(spare) + " RENAME TO " + name + "; " +
		"ALTER DATABASE " + name + " WITH ALLOW_CONNECTIONS true"
	trash := ""
	if db.found {
		// Committed on its own, so that no session can start while the old ones end.
		if err := s.exec(ctx, "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS false"); err != nil {
			return "", fmt.Errorf("envdb: close %s to new sessions: %w", s.t.Database, err)
		}
		trash = trashName(s.t.Database, db.oid)
		q = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = " + literal(s.t.Database) + " AND pid <> pg_backend_pid(); " +
			"ALTER DATABASE " + name + " RENAME TO " + ident(trash) + "; " + q
	}
	if err := s.exec(ctx, q); err != nil {
		err = fmt.Errorf("envdb: swap %s into place: %w", spare, err)
		if db.found && db.allowConn {
			if rerr := s.exec(context.WithoutCancel(ctx), "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS true"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("envdb: open %s again: %w", s.t.Database, rerr))
			}
		}
		return "", err
	}
	return trash, nil
}

// seedName is how messages name a seed file: relative to the project when it is inside.
func seedName(root, file string) string {
	if root == "" {
		return file
	}
	if rel, err := filepath.Rel(root, file); err == nil && filepath.IsLocal(rel) {
		return rel
	}
	return file
}

// templateKey names what a template holds: the migration set (migrate.SetDigest), the owner of
// its objects and the seed files' contents, in order.
func templateKey(t *Target, seeds []seed) (string, error) {
	digest, err := migrate.SetDigest(t.Migrations, t.schema(), t.table())
	if err != nil {
		return "", fmt.Errorf("envdb: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "envdb template 1\n%s\nowner %q\nseeds %d\n", digest, t.Owner, len(seeds))
	for _, sd := range seeds {
		sum := sha256.Sum256([]byte(sd.text))
		fmt.Fprintf(h, "%x\n", sum)
	}
	return hex.EncodeToString(h.Sum(nil))[:keyLen], nil
}

// build makes the template tpl: a scratch database owned by the owner, migrated and seeded,
// renamed once whole, so that a template's existence means it is complete. It returns the
// outdated templates it dropped.
func (s *session) build(ctx context.Context, key, tpl string, seeds []seed, rep progress.Reporter) (dropped []string, err error) {
	end := rep.Step("template "+tpl, "database", s.t.Database, "migrations", len(s.t.Migrations), "seeds", len(seeds))
	defer func() { end(err) }()
	scratch := buildName(s.t.Database, key)
	// A build that died left its scratch database; a template of the same name that is not
	// one is such a leftover too.
	for _, name := range []string{scratch, tpl} {
		if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			return nil, fmt.Errorf("envdb: drop the leftover %s: %w", name, err)
		}
	}
	// template1, as for the environment's own database: what an image puts there is in it.
	if err := s.exec(ctx, "CREATE DATABASE "+ident(scratch)+" TEMPLATE template1 OWNER "+ident(s.t.Owner)); err != nil {
		return nil, fmt.Errorf("envdb: create %s: %w", scratch, err)
	}
	if err := s.fill(ctx, scratch, seeds, rep); err != nil {
		return nil, errors.Join(err, s.dropScratch(ctx, scratch))
	}
	if err := s.exec(ctx, "ALTER DATABASE "+ident(scratch)+" RENAME TO "+ident(tpl)); err != nil {
		return nil, errors.Join(fmt.Errorf("envdb: rename %s: %w", scratch, err), s.dropScratch(ctx, scratch))
	}
	m := mark{Kind: kindTemplate, Database: s.t.Database, Seeded: len(seeds) > 0, Created: time.Now().UTC()}
	if err := s.finish(ctx, tpl, m); err != nil {
		return nil, errors.Join(err, s.dropScratch(ctx, tpl))
	}
	old, err := s.ours(ctx, kindTemplate)
	if err != nil {
		return nil, err
	}
	// The templates of the other seeding stay: --no-seed and seeded resets may alternate.
	for name, om := range old {
		if name == tpl || om.Seeded != m.Seeded {
			continue
		}
		if err := s.dropOurs(ctx, name); err != nil {
			return dropped, err
		}
		dropped = append(dropped, name)
	}
	return dropped, nil
}

func (s *session) dropScratch(ctx context.Context, name string) error {
	ctx = context.WithoutCancel(ctx)
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("envdb: drop %s: %w", name, err)
	}
	return nil
}

// fill migrates and seeds the scratch database db as the owner.
func (s *session) fill(ctx context.Context, db string, seeds []seed, rep progress.Reporter) error {
	conn, err := s.ownerConn(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if len(s.t.Migrations) > 0 {
		by := s.t.AppliedBy
		if by == "" {
			by = "envdb"
		}
		m, err := migrate.New(conn, s.t.Migrations, migrate.WithSchema(s.t.schema()), migrate.WithTable(s.t.table()),
			migrate.WithAppliedBy(by), migrate.WithProgress(rep.Func()))
		if err != nil {
			return err
		}
		if _, err := m.Up(ctx, 0); err != nil {
			return err
		}
	}
	for _, sd := range seeds {
		if err := runSeed(ctx, conn, sd, rep); err != nil {
			return err
		}
	}
	return nil
}

// ownerConn connects to db as the owner: with its password, or as the superuser under SET ROLE.
func (s *session) ownerConn(ctx context.Context, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.t.AdminURL)
	if err != nil {
		return nil, fmt.Errorf("envdb: admin URL: %w", err)
	}
	cfg.Database = db
	if s.t.OwnerPassword != "" {
		cfg.User, cfg.Password = s.t.Owner, s.t.OwnerPassword
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("envdb: connect to %s as %s: %w", db, cfg.User, err)
	}
	if s.t.OwnerPassword == "" {
		if _, err := conn.Exec(ctx, "SET ROLE "+ident(s.t.Owner)); err != nil {
			conn.Close(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("envdb: SET ROLE %s: %w", s.t.Owner, err)
		}
	}
	return conn, nil
}
