// Package adopt reads the ledgers other migration tools keep in a database — pressly/goose's
// goose_db_version, golang-migrate's schema_migrations and the Python poststack's
// public.schema_migrations — and plans the rows of our ledger (migrate.Adopted) that make
// ps-migrate see the same versions applied, matched with the files of a migrations directory
// by version number.
//
// It only reads the other tool's tables, never changes or drops them, and quotes every
// identifier it is given: the names come from a command line, the rows from a database that
// may hold anything.
package adopt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/exitcode"
)

// Tool names a migration tool whose ledger can be adopted.
type Tool string

// The tools.
const (
	Goose           Tool = "goose"
	GolangMigrate   Tool = "golang-migrate"
	PoststackPython Tool = "poststack-python"
)

// Tools lists the tools in the order help text names them.
func Tools() []Tool { return []Tool{Goose, GolangMigrate, PoststackPython} }

// ParseTool returns the Tool named s, or an error (exit code 2) listing the known ones.
func ParseTool(s string) (Tool, error) {
	for _, t := range Tools() {
		if string(t) == s {
			return t, nil
		}
	}
	if s == "" {
		return "", exitcode.Usagef("--from is required: %s", toolList())
	}
	return "", exitcode.Usagef("unknown tool %q for --from: %s", s, toolList())
}

func toolList() string {
	names := make([]string, 0, 3)
	for _, t := range Tools() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// DefaultTable is the table the tool keeps its ledger in when not told otherwise. goose's and
// golang-migrate's are found on the search_path, as the tools find them.
func (t Tool) DefaultTable() string {
	switch t {
	case Goose:
		return "goose_db_version"
	case GolangMigrate:
		return "schema_migrations"
	case PoststackPython:
		return "public.schema_migrations"
	}
	return ""
}

// AppliedBy is what the adopted rows say applied them when the tool does not record it:
// "adopt:goose".
func (t Tool) AppliedBy() string { return "adopt:" + string(t) }

// Applied is one version the other tool's ledger records as applied.
type Applied struct {
	Version int64
	// Label is the version as the ledger wrote it (the Python tool's VARCHAR, "0003").
	Label string
	// AppliedAt is zero when the tool records no time (golang-migrate).
	AppliedAt time.Time
	// AppliedBy, Duration, Description, Checksum and Down are the Python tool's; empty or
	// nil for the others.
	AppliedBy   string
	Duration    time.Duration
	Description string
	Checksum    string
	Down        *string
}

// Ledger is what the other tool's ledger says is applied.
type Ledger struct {
	Tool Tool
	// Table is the ledger's table, schema-qualified and quoted as PostgreSQL quotes it.
	Table string
	// Applied are the applied versions, oldest first. For golang-migrate, which records only
	// the newest version, it is that one version; UpTo says the rest.
	Applied []Applied
	// UpTo is golang-migrate's version: every migration at or below it is applied (0: none).
	UpTo int64
}

// NotFoundError is a ledger table that is not there, or is another tool's: the wrong --from
// or --from-table. Exit code 2.
type NotFoundError struct {
	Tool  Tool
	Table string
	// Actually names the tool whose table it is, when it is recognisably another's.
	Actually string
	Reason   string
}

func (e *NotFoundError) Error() string {
	switch {
	case e.Actually != "":
		return fmt.Sprintf("table %s is %s, not %s's ledger: %s", e.Table, e.Actually, e.Tool, e.Reason)
	case e.Reason != "":
		return fmt.Sprintf("table %s is not %s's ledger: %s", e.Table, e.Tool, e.Reason)
	}
	return fmt.Sprintf("no %s ledger: table %s does not exist (name it with --from-table if it has another name)", e.Tool, e.Table)
}

// ExitCode is 2: bad usage, nothing was changed.
func (e *NotFoundError) ExitCode() int { return exitcode.Usage }

// DirtyError is golang-migrate's ledger marked dirty: a migration failed halfway. Exit code 3.
type DirtyError struct {
	Version int64
}

func (e *DirtyError) Error() string {
	return fmt.Sprintf("golang-migrate's ledger is dirty at version %d: a migration failed halfway; fix the database and run `migrate force %d` (or %d) first",
		e.Version, e.Version, e.Version-1)
}

// ExitCode is 3: a check found a problem.
func (e *DirtyError) ExitCode() int { return exitcode.Check }

// LockedError is the Python poststack's lock row held: a run may be in progress. Exit code 3.
type LockedError struct {
	Table, By string
	At        time.Time
}

func (e *LockedError) Error() string {
	var who string
	if e.By != "" {
		who = " by " + strconv.Quote(e.By)
	}
	if !e.At.IsZero() {
		who += " since " + e.At.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("the Python poststack's migration lock %s is held%s: wait for that run to end, or clear its row if no run is going on", e.Table, who)
}

// ExitCode is 3: a check found a problem.
func (e *LockedError) ExitCode() int { return exitcode.Check }

// table is a relation found by name, with its columns.
type table struct {
	oid    uint32
	schema string
	name   string
	quoted string
	cols   map[string]string // name → type
}

// Identifier turns a --from-table value ("name" or "schema.name") into a quoted name.
func Identifier(name string) (string, error) {
	if name == "" {
		return "", exitcode.Usagef("--from-table is empty")
	}
	parts := strings.Split(name, ".")
	if len(parts) > 2 || slices.Contains(parts, "") {
		return "", exitcode.Usagef("--from-table %q: give a table or schema.table", name)
	}
	return pgx.Identifier(parts).Sanitize(), nil
}

// findTable resolves a quoted name as the server would (the search_path for an unqualified
// one); nil when there is no such relation.
func findTable(ctx context.Context, conn *pgx.Conn, quoted string) (*table, error) {
	var t table
	err := conn.QueryRow(ctx, `SELECT c.oid, n.nspname, c.relname, format('%I.%I', n.nspname, c.relname)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)`, quoted).
		Scan(&t.oid, &t.schema, &t.name, &t.quoted)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look for table %s: %w", quoted, err)
	}
	rows, err := conn.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped`, t.oid)
	if err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", t.quoted, err)
	}
	t.cols = map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, fmt.Errorf("read the columns of %s: %w", t.quoted, err)
		}
		t.cols[name] = typ
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the columns of %s: %w", t.quoted, err)
	}
	return &t, nil
}

// columns of each ledger: those whose presence tells whose table it is.
var signature = map[Tool][]string{
	Goose:           {"version_id", "is_applied", "tstamp"},
	GolangMigrate:   {"version", "dirty"},
	PoststackPython: {"version", "description", "applied_at", "execution_time_ms", "checksum", "applied_by", "sql_up", "sql_down"},
}

func (t *table) has(cols []string) bool {
	for _, c := range cols {
		if _, ok := t.cols[c]; !ok {
			return false
		}
	}
	return true
}

// whose says which tool's ledger t looks like, "" when none.
func (t *table) whose() string {
	for _, tool := range Tools() {
		if t.has(signature[tool]) {
			return string(tool) + "'s ledger"
		}
	}
	if t.has([]string{"version", "name", "checksum", "rollback_sql", "applied_at", "execution_time", "applied_by"}) {
		return "ps-migrate's own ledger"
	}
	return ""
}

// Read reads tool's ledger from tableName, quoted as Identifier returns ("" for the tool's
// DefaultTable). A missing table or one that is another tool's is a *NotFoundError, a dirty
// golang-migrate ledger a *DirtyError, the Python tool's lock held a *LockedError.
func Read(ctx context.Context, conn *pgx.Conn, tool Tool, tableName string) (*Ledger, error) {
	if tableName == "" {
		var err error
		if tableName, err = Identifier(tool.DefaultTable()); err != nil {
			return nil, err
		}
	}
	t, err := findTable(ctx, conn, tableName)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, &NotFoundError{Tool: tool, Table: tableName}
	}
	if !t.has(signature[tool]) {
		missing := []string{}
		for _, c := range signature[tool] {
			if _, ok := t.cols[c]; !ok {
				missing = append(missing, c)
			}
		}
		e := &NotFoundError{Tool: tool, Table: t.quoted, Reason: "it has no column " + strings.Join(missing, ", ")}
		if w := t.whose(); w != "" {
			e.Actually = w
			if after, ok := strings.CutSuffix(w, "'s ledger"); ok && after != "ps-migrate" {
				e.Reason = "adopt it with --from " + after
			} else {
				e.Reason = "there is nothing to adopt"
			}
		}
		return nil, e
	}
	l := &Ledger{Tool: tool, Table: t.quoted}
	switch tool {
	case Goose:
		err = readGoose(ctx, conn, t, l)
	case GolangMigrate:
		err = readGolangMigrate(ctx, conn, t, l)
	case PoststackPython:
		err = readPython(ctx, conn, t, l)
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// readGoose: per version_id, the latest row by id says whether it is applied (goose inserts a
// row with is_applied on every up and deletes it on down; older goose versions inserted one
// with is_applied false instead). Version 0 is goose's own first row.
func readGoose(ctx context.Context, conn *pgx.Conn, t *table, l *Ledger) error {
	rows, err := conn.Query(ctx, "SELECT version_id::bigint, is_applied::boolean, tstamp::timestamptz FROM "+t.quoted+" ORDER BY id")
	if err != nil {
		return fmt.Errorf("read %s: %w", t.quoted, err)
	}
	defer rows.Close()
	state := map[int64]Applied{}
	applied := map[int64]bool{}
	for rows.Next() {
		var v int64
		var ok *bool
		var at *time.Time
		if err := rows.Scan(&v, &ok, &at); err != nil {
			return fmt.Errorf("read %s: %w", t.quoted, err)
		}
		if v == 0 {
			continue
		}
		a := Applied{Version: v, Label: strconv.FormatInt(v, 10)}
		if at != nil {
			a.AppliedAt = *at
		}
		state[v] = a
		applied[v] = ok == nil || *ok
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t.quoted, err)
	}
	for v, a := range state {
		if v < 0 {
			return fmt.Errorf("read %s: version_id %d is negative", t.quoted, v)
		}
		if applied[v] {
			l.Applied = append(l.Applied, a)
		}
	}
	slices.SortFunc(l.Applied, func(a, b Applied) int { return cmp.Compare(a.Version, b.Version) })
	return nil
}

// readGolangMigrate: one row, the newest version applied, and whether its migration failed.
func readGolangMigrate(ctx context.Context, conn *pgx.Conn, t *table, l *Ledger) error {
	rows, err := conn.Query(ctx, "SELECT version::bigint, dirty::boolean FROM "+t.quoted+" LIMIT 2")
	if err != nil {
		return fmt.Errorf("read %s: %w", t.quoted, err)
	}
	defer rows.Close()
	var n int
	var v int64
	var dirty *bool
	for rows.Next() {
		n++
		if err := rows.Scan(&v, &dirty); err != nil {
			return fmt.Errorf("read %s: %w", t.quoted, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t.quoted, err)
	}
	switch {
	case n > 1:
		return &NotFoundError{Tool: GolangMigrate, Table: t.quoted, Reason: "it has more than one row (golang-migrate keeps exactly one)"}
	case n == 0 || v < 0:
		return nil // no migration applied (golang-migrate writes -1 for none)
	case dirty != nil && *dirty:
		return &DirtyError{Version: v}
	}
	l.UpTo = v
	if v > 0 {
		l.Applied = []Applied{{Version: v, Label: strconv.FormatInt(v, 10)}}
	}
	return nil
}

// readPython: one row per applied version, with the time, who, how long, the checksum of the
// file's text and its down SQL; its lock row must not be held.
func readPython(ctx context.Context, conn *pgx.Conn, t *table, l *Ledger) error {
	if err := pythonLock(ctx, conn, t); err != nil {
		return err
	}
	rows, err := conn.Query(ctx, `SELECT version::text, coalesce(description::text, ''), applied_at::timestamptz,
		coalesce(execution_time_ms::bigint, 0), coalesce(checksum::text, ''), coalesce(applied_by::text, ''), sql_down::text
		FROM `+t.quoted)
	if err != nil {
		return fmt.Errorf("read %s: %w", t.quoted, err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Applied
		var label *string
		var at *time.Time
		var ms int64
		if err := rows.Scan(&label, &a.Description, &at, &ms, &a.Checksum, &a.AppliedBy, &a.Down); err != nil {
			return fmt.Errorf("read %s: %w", t.quoted, err)
		}
		if label == nil {
			return fmt.Errorf("read %s: a row has no version", t.quoted)
		}
		a.Label = *label
		a.Version = parseLabel(*label)
		if at != nil {
			a.AppliedAt = *at
		}
		a.Duration = time.Duration(max(ms, 0)) * time.Millisecond
		l.Applied = append(l.Applied, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t.quoted, err)
	}
	slices.SortStableFunc(l.Applied, func(a, b Applied) int {
		if c := cmp.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
	return nil
}

// parseLabel is the Python tool's version as a number; -1 when it is not one.
func parseLabel(s string) int64 {
	s = strings.TrimSpace(s)
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return -1
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 {
		return -1
	}
	return v
}

// pythonLock refuses a held lock row of schema_migration_lock beside the ledger, when that
// table is there and has a boolean "locked" column.
func pythonLock(ctx context.Context, conn *pgx.Conn, ledger *table) error {
	lt, err := findTable(ctx, conn, pgx.Identifier{ledger.schema, "schema_migration_lock"}.Sanitize())
	if err != nil || lt == nil || lt.cols["locked"] != "boolean" {
		return err
	}
	sel := "SELECT "
	if _, ok := lt.cols["locked_by"]; ok {
		sel += "coalesce(locked_by::text, ''), "
	} else {
		sel += "'', "
	}
	if _, ok := lt.cols["locked_at"]; ok {
		sel += "locked_at::timestamptz"
	} else {
		sel += "NULL::timestamptz"
	}
	var by string
	var at *time.Time
	err = conn.QueryRow(ctx, sel+" FROM "+lt.quoted+" WHERE locked LIMIT 1").Scan(&by, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", lt.quoted, err)
	}
	e := &LockedError{Table: lt.quoted, By: by}
	if at != nil {
		e.At = *at
	}
	return e
}
