// Package pgschema reads a PostgreSQL database's catalog into a comparable snapshot, explains
// the differences between two snapshots in plain sentences, and wraps pg_dump for schema dumps
// and backups.
//
// Snapshots exist so that `ps-migrate verify --rollback` can tell whether a rollback restored
// the schema, and so that `ps-migrate show-schema` can print it; they hold what a migration
// changes (objects and their definitions as the server prints them), not data, owners or
// privileges.
package pgschema

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Schema is a snapshot of a database's application schemas. Every list is sorted (by schema,
// then name, byte order) and never nil, so the JSON form is stable and lists are [] when empty.
type Schema struct {
	Schemas    []string    `json:"schemas"`
	Extensions []Extension `json:"extensions"`
	Types      []Type      `json:"types"`
	Sequences  []Sequence  `json:"sequences"`
	Tables     []Table     `json:"tables"`
	Views      []View      `json:"views"`
	Functions  []Function  `json:"functions"`
}

// Extension is an installed extension. Extensions are database-wide, so all are listed, even
// those living in pg_catalog (such as plpgsql); objects that belong to an extension are not.
type Extension struct {
	Name    string `json:"name"`
	Schema  string `json:"schema"`
	Version string `json:"version"`
}

// Table is an ordinary, partitioned or foreign table.
type Table struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind is "table", "partitioned table" or "foreign table".
	Kind        string       `json:"kind"`
	Columns     []Column     `json:"columns"`     // in table order
	Indexes     []Index      `json:"indexes"`     // by name
	Constraints []Constraint `json:"constraints"` // by name
	Triggers    []Trigger    `json:"triggers"`    // by name; internal (constraint) triggers are left out
}

// Column is a table column, or an attribute of a composite type.
type Column struct {
	Name    string `json:"name"`
	Type    string `json:"type"` // as format_type prints it, e.g. "character varying(20)"
	NotNull bool   `json:"not_null"`
	Default string `json:"default,omitempty"`
	// Identity is "always", "by default" or empty.
	Identity string `json:"identity,omitempty"`
	// Generated is the expression of a stored generated column.
	Generated string `json:"generated,omitempty"`
	// Collation is set only when it differs from the type's default.
	Collation string `json:"collation,omitempty"`
}

// Index is an index, including those that back primary key and unique constraints.
type Index struct {
	Name       string `json:"name"`
	Definition string `json:"definition"` // pg_get_indexdef
	Primary    bool   `json:"primary,omitempty"`
	Unique     bool   `json:"unique,omitempty"`
}

// Constraint is a table constraint (NOT NULL is a column property in PostgreSQL ≤ 17).
type Constraint struct {
	Name string `json:"name"`
	// Type is "primary key", "unique", "foreign key", "check", "exclusion" or "trigger".
	Type       string `json:"type"`
	Definition string `json:"definition"` // pg_get_constraintdef
}

// Trigger is a user-defined trigger.
type Trigger struct {
	Name       string `json:"name"`
	Definition string `json:"definition"` // pg_get_triggerdef
}

// View is a view or materialized view.
type View struct {
	Schema       string  `json:"schema"`
	Name         string  `json:"name"`
	Materialized bool    `json:"materialized,omitempty"`
	Definition   string  `json:"definition"`        // pg_get_viewdef, pretty-printed
	Indexes      []Index `json:"indexes,omitempty"` // materialized views only
}

// Sequence is a standalone or serial sequence; identity sequences are part of their column.
type Sequence struct {
	Schema    string `json:"schema"`
	Name      string `json:"name"`
	Type      string `json:"type"`
	Start     int64  `json:"start"`
	Increment int64  `json:"increment"`
	Min       int64  `json:"min"`
	Max       int64  `json:"max"`
	Cache     int64  `json:"cache"`
	Cycle     bool   `json:"cycle,omitempty"`
	// OwnedBy is "schema.table.column" for a sequence owned by a column (serial), else empty.
	OwnedBy string `json:"owned_by,omitempty"`
}

// Function is a function, procedure, aggregate or window function.
type Function struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind is "function", "procedure", "aggregate" or "window".
	Kind      string `json:"kind"`
	Arguments string `json:"arguments"` // pg_get_function_identity_arguments
	Result    string `json:"result,omitempty"`
	// Definition is pg_get_functiondef; empty for aggregates, which it cannot print.
	Definition string `json:"definition,omitempty"`
}

// Signature is the function's name with its identity arguments, which is what tells
// overloads apart.
func (f Function) Signature() string {
	return f.Name + "(" + f.Arguments + ")"
}

// Type is an enum, domain or composite type.
type Type struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind is "enum", "domain" or "composite".
	Kind   string   `json:"kind"`
	Labels []string `json:"labels,omitempty"` // enum, in sort order
	// BaseType, NotNull, Default and Constraints describe a domain.
	BaseType    string       `json:"base_type,omitempty"`
	NotNull     bool         `json:"not_null,omitempty"`
	Default     string       `json:"default,omitempty"`
	Constraints []Constraint `json:"constraints,omitempty"`
	Attributes  []Column     `json:"attributes,omitempty"` // composite
}

// Options narrows a snapshot.
type Options struct {
	// Exclude lists schemas to leave out, besides the system ones.
	Exclude []string
	// ExcludeTables lists tables to leave out, as "schema.table" (a bare name means
	// "public.name"), e.g. the migration ledger, which differs between any two runs.
	ExcludeTables []string
	// Only, when not nil, restricts the snapshot to some tables; see Only.
	Only *Only
}

// Only restricts a snapshot to the tables it names, with their columns, indexes,
// constraints and triggers, and to the sequences it names or a named table owns. Everything
// else (schemas, extensions, types, views, functions) is read in full. Reading a few tables of
// a large database costs with those, not with the database: this is for comparing two states
// of one database that can differ only in those relations and in what is read in full, as
// pkg/lint does around a migration and its rollback. Compare a restricted snapshot only with
// one restricted alike.
type Only struct {
	// Relations are tables and sequences, "schema.name" (a bare name means "public.name"); a
	// name that matches neither is ignored, and none reads no table and no sequence.
	Relations []string
}

// Snapshot reads the catalog of every application schema (not pg_catalog, information_schema,
// pg_toast*, pg_temp*, and not the schemas in opts.Exclude): tables with their columns,
// indexes, constraints and triggers; sequences; views and materialized views; functions and
// procedures; enum, domain and composite types; and extensions (opts.Only reads some tables
// and sequences only). It reads in one REPEATABLE
// READ transaction so that the parts agree with each other, or, when conn is already inside a
// transaction, in that transaction (which it leaves open).
func Snapshot(ctx context.Context, conn *pgx.Conn, opts Options) (*Schema, error) {
	var q querier = conn
	// Inside the caller's transaction the snapshot sees that transaction's changes; opening (and
	// rolling back) our own there would end the caller's.
	if conn.PgConn().TxStatus() == 'I' {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, fmt.Errorf("snapshot: begin: %w", err)
		}
		// Read-only: rolling back is how it ends.
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		q = tx
		if opts.Only != nil {
			// A restricted snapshot reads little, and planning its queries anew each time
			// would cost more than running them: reuse the plans of the prepared statements.
			if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
				return nil, fmt.Errorf("snapshot: %w", err)
			}
		}
	}

	r := reader{tx: q, exclude: opts.Exclude, excludeTables: qualified(opts.ExcludeTables)}
	if r.exclude == nil {
		r.exclude = []string{}
	}
	if opts.Only != nil {
		r.only = qualified(opts.Only.Relations)
		if err := r.resolveOnly(ctx); err != nil {
			return nil, fmt.Errorf("snapshot: find the relations to read: %w", err)
		}
	}
	s := &Schema{}
	steps := []struct {
		what string
		fn   func(context.Context, *Schema) error
	}{
		{"schemas", r.schemas},
		{"extensions", r.extensions},
		{"tables", r.tables},
		{"views", r.views},
		{"sequences", r.sequences},
		{"functions", r.functions},
		{"types", r.types},
	}
	for _, st := range steps {
		if err := st.fn(ctx, s); err != nil {
			return nil, fmt.Errorf("snapshot: read %s: %w", st.what, err)
		}
	}
	s.normalize()
	return s, nil
}

// Fingerprint reads, in one query, what Snapshot with the same opts reads, as one text in
// which every object is written out by name (never by OID). Two states with equal
// fingerprints have equal snapshots, so Diff finds nothing between them; two with different
// fingerprints almost always have different snapshots (a table whose primary key index is
// another one of the same definition, say, differs only here). It is for comparing states of
// one database again and again where a snapshot would read the catalog a dozen times (pkg/lint's
// rollback check), taking Snapshot only to say what differs. It reads in conn's transaction, if
// one is open, and is one statement (one consistent view) otherwise.
func Fingerprint(ctx context.Context, conn *pgx.Conn, opts Options) (string, error) {
	sql, args := FingerprintQuery(opts)
	var fp string
	if err := conn.QueryRow(ctx, sql, args...).Scan(&fp); err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	return fp, nil
}

// FingerprintQuery is the query Fingerprint runs and its arguments, for a caller that sends it
// with other statements (a pgx.Batch); it returns one row of one text column.
func FingerprintQuery(opts Options) (string, []any) {
	exclude := opts.Exclude
	if exclude == nil {
		exclude = []string{}
	}
	only := map[string]bool{}
	tables, sequences := "", ""
	if opts.Only != nil {
		only = qualified(opts.Only.Relations)
		tables, sequences = fingerprintOnlyTables, fingerprintOnlySequences
	}
	nsps, rels := splitNames(only)
	sql := strings.NewReplacer("{{only tables}}", tables, "{{only sequences}}", sequences).Replace(fingerprintSQL)
	args := []any{exclude, keys(qualified(opts.ExcludeTables)), nsps, rels}
	if opts.Only != nil {
		args = append(args, keys(only)) // $5 appears only in the restriction
	}
	return sql, args
}

// qualified is the set of names, "schema.table", a bare name being "public.name".
func qualified(names []string) map[string]bool {
	set := map[string]bool{}
	for _, t := range names {
		if !strings.Contains(t, ".") {
			t = "public." + t
		}
		set[t] = true
	}
	return set
}

// normalize sorts every list and replaces nil top-level lists with empty ones.
func (s *Schema) normalize() {
	byName := func(a, b string) int { return strings.Compare(a, b) }
	slices.SortFunc(s.Schemas, byName)
	slices.SortFunc(s.Extensions, func(a, b Extension) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(s.Types, func(a, b Type) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(s.Sequences, func(a, b Sequence) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(s.Tables, func(a, b Table) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(s.Views, func(a, b View) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name))
	})
	slices.SortFunc(s.Functions, func(a, b Function) int {
		return cmp.Or(strings.Compare(a.Schema, b.Schema), strings.Compare(a.Name, b.Name),
			strings.Compare(a.Arguments, b.Arguments))
	})
	sortIdx := func(ix []Index) {
		slices.SortFunc(ix, func(a, b Index) int { return strings.Compare(a.Name, b.Name) })
	}
	sortCons := func(c []Constraint) {
		slices.SortFunc(c, func(a, b Constraint) int { return strings.Compare(a.Name, b.Name) })
	}
	for i := range s.Tables {
		t := &s.Tables[i]
		sortIdx(t.Indexes)
		sortCons(t.Constraints)
		slices.SortFunc(t.Triggers, func(a, b Trigger) int { return strings.Compare(a.Name, b.Name) })
		t.Columns = nonNil(t.Columns)
		t.Indexes = nonNil(t.Indexes)
		t.Constraints = nonNil(t.Constraints)
		t.Triggers = nonNil(t.Triggers)
	}
	for i := range s.Views {
		sortIdx(s.Views[i].Indexes)
	}
	for i := range s.Types {
		sortCons(s.Types[i].Constraints)
	}
	s.Schemas = nonNil(s.Schemas)
	s.Extensions = nonNil(s.Extensions)
	s.Types = nonNil(s.Types)
	s.Sequences = nonNil(s.Sequences)
	s.Tables = nonNil(s.Tables)
	s.Views = nonNil(s.Views)
	s.Functions = nonNil(s.Functions)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
