package lint

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DefaultRows is how many rows Review puts in every table when Options.Rows is 0: enough for
// every scan and rewrite to show, few enough to cost nothing.
const DefaultRows = 3

// seedTable is a table to put rows in, with what generating them needs.
type seedTable struct {
	oid  uint32
	name string // quoted schema.name
	cols []seedColumn
	deps []uint32 // tables its foreign keys reference
}

type seedColumn struct {
	name     string // quoted
	typ      string // format_type
	category string // pg_type.typcategory (of the base type for a domain)
	base     string // name of the base type
	notNull  bool
	skip     bool // identity, generated: never given
	hasDef   bool
	fk       string // an expression picking a referenced value, when the column is in a foreign key
}

const seedTablesQuery = `SELECT c.oid, format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
	AND n.nspname NOT IN ('pg_catalog', 'information_schema', $1) AND n.nspname !~ '^pg_(toast|temp_|toast_temp_)'
ORDER BY 2`

const seedColumnsQuery = `SELECT a.attrelid, quote_ident(a.attname), format_type(a.atttypid, a.atttypmod), bt.typcategory, bt.typname::text,
	a.attnotnull, a.attidentity <> '' OR a.attgenerated <> '', a.atthasdef
FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
	JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

// seedFKQuery lists the foreign keys, each column with the referenced column and the whole
// referenced key (to pick one row of the referenced table for all the key's columns).
const seedFKQuery = `SELECT c.conrelid, c.confrelid, format('%I.%I', rn.nspname, r.relname),
	(SELECT array_agg(quote_ident(attname) ORDER BY k.i) FROM unnest(c.conkey) WITH ORDINALITY k(n, i) JOIN pg_attribute ON attrelid = c.conrelid AND attnum = k.n),
	(SELECT array_agg(quote_ident(attname) ORDER BY k.i) FROM unnest(c.confkey) WITH ORDINALITY k(n, i) JOIN pg_attribute ON attrelid = c.confrelid AND attnum = k.n)
FROM pg_constraint c JOIN pg_class r ON r.oid = c.confrelid JOIN pg_namespace rn ON rn.oid = r.relnamespace
WHERE c.contype = 'f' AND c.conrelid = ANY($1)`

// seed puts rows rows in every table of the database (but the ledger's schema), referenced
// tables first, each insert under a savepoint: a table that refuses generated rows (a check
// constraint, a type without a generator) is left as it is.
func seed(ctx context.Context, conn *pgx.Conn, ledgerSchema string, rows int) error {
	tables, err := seedTables(ctx, conn, ledgerSchema)
	if err != nil || len(tables) == 0 {
		return err
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("lint: put rows in tables: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// One round trip for all tables while every insert succeeds; a table whose insert fails is
	// tried again alone, another way, and the rest go on in one round trip again.
	ordered := order(tables)
	for i := 0; i < len(ordered); {
		var b strings.Builder
		for _, t := range ordered[i:] {
			b.WriteString("SAVEPOINT lint_seed; " + insertSQL(t, false, 0, rows) + "; RELEASE SAVEPOINT lint_seed;\n")
		}
		completed, err := execCount(ctx, conn, b.String())
		if err == nil {
			break
		}
		failed := i + completed/3 // three statements a table
		if err := retrySeed(ctx, conn, ordered[failed], rows, err); err != nil {
			return err
		}
		i = failed + 1
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("lint: put rows in tables: %w", err)
	}
	return nil
}

// retrySeed rolls back the failed insert of t (whose error was err) and tries other ways.
func retrySeed(ctx context.Context, conn *pgx.Conn, t *seedTable, rows int, err error) error {
	for _, attempt := range []struct {
		fill   bool // give columns that have a default a value too
		offset int
		rows   int
	}{{true, 0, rows}, {false, 100000, 1}} {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return fmt.Errorf("lint: put rows in %s: %w", t.name, err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT lint_seed"); err != nil {
			return fmt.Errorf("lint: put rows in %s: %w", t.name, err)
		}
		if _, err = execCount(ctx, conn, insertSQL(t, attempt.fill, attempt.offset, attempt.rows)+"; RELEASE SAVEPOINT lint_seed"); err == nil {
			return nil
		}
	}
	if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT lint_seed"); err != nil {
		return fmt.Errorf("lint: put rows in %s: %w", t.name, err)
	}
	_, err = conn.Exec(ctx, "RELEASE SAVEPOINT lint_seed")
	return err
}

// execCount sends sql as one simple-protocol query and returns how many of its statements
// completed before an error.
func execCount(ctx context.Context, conn *pgx.Conn, sql string) (int, error) {
	mrr := conn.PgConn().Exec(ctx, sql)
	n := 0
	for mrr.NextResult() {
		if _, err := mrr.ResultReader().Close(); err != nil {
			break
		}
		n++
	}
	return n, mrr.Close()
}

func seedTables(ctx context.Context, conn *pgx.Conn, ledgerSchema string) ([]*seedTable, error) {
	rows, err := conn.Query(ctx, seedTablesQuery, ledgerSchema)
	if err != nil {
		return nil, fmt.Errorf("lint: list tables: %w", err)
	}
	var tables []*seedTable
	byOID := map[uint32]*seedTable{}
	for rows.Next() {
		t := &seedTable{}
		if err := rows.Scan(&t.oid, &t.name); err != nil {
			return nil, fmt.Errorf("lint: list tables: %w", err)
		}
		tables = append(tables, t)
		byOID[t.oid] = t
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lint: list tables: %w", err)
	}
	if len(tables) == 0 {
		return nil, nil
	}
	oids := make([]uint32, len(tables))
	for i, t := range tables {
		oids[i] = t.oid
	}
	rows, err = conn.Query(ctx, seedColumnsQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("lint: list columns: %w", err)
	}
	for rows.Next() {
		var oid uint32
		var c seedColumn
		if err := rows.Scan(&oid, &c.name, &c.typ, &c.category, &c.base, &c.notNull, &c.skip, &c.hasDef); err != nil {
			return nil, fmt.Errorf("lint: list columns: %w", err)
		}
		byOID[oid].cols = append(byOID[oid].cols, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lint: list columns: %w", err)
	}
	rows, err = conn.Query(ctx, seedFKQuery, oids)
	if err != nil {
		return nil, fmt.Errorf("lint: list foreign keys: %w", err)
	}
	for rows.Next() {
		var from, to uint32
		var ref string
		var cols, refCols []string
		if err := rows.Scan(&from, &to, &ref, &cols, &refCols); err != nil {
			return nil, fmt.Errorf("lint: list foreign keys: %w", err)
		}
		t := byOID[from]
		if to != from {
			t.deps = append(t.deps, to)
		}
		key := strings.Join(refCols, ", ")
		for i, col := range cols {
			for j := range t.cols {
				if t.cols[j].name == col && t.cols[j].fk == "" {
					// The same row of the referenced table for every column of the key.
					t.cols[j].fk = fmt.Sprintf("(SELECT r.%s FROM %s r ORDER BY %s OFFSET ((g - 1) %% greatest((SELECT count(*) FROM %s), 1)) LIMIT 1)",
						refCols[i], ref, key, ref)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lint: list foreign keys: %w", err)
	}
	return tables, nil
}

// order sorts tables so that referenced ones come first (a cycle is broken where it closes).
func order(tables []*seedTable) []*seedTable {
	byOID := map[uint32]*seedTable{}
	for _, t := range tables {
		byOID[t.oid] = t
	}
	state := map[uint32]int{} // 1 visiting, 2 done
	var out []*seedTable
	var visit func(t *seedTable)
	visit = func(t *seedTable) {
		if state[t.oid] != 0 {
			return
		}
		state[t.oid] = 1
		for _, d := range t.deps {
			if dt, ok := byOID[d]; ok {
				visit(dt)
			}
		}
		state[t.oid] = 2
		out = append(out, t)
	}
	for _, t := range tables {
		visit(t)
	}
	return out
}

// insertSQL is an INSERT of n generated rows into t (g = offset+1 … offset+n numbers them).
func insertSQL(t *seedTable, fill bool, offset, n int) string {
	var cols, exprs []string
	for _, c := range t.cols {
		if c.skip || (c.hasDef && !fill && c.fk == "") {
			continue
		}
		e := c.fk
		if e == "" {
			e = valueExpr(c)
		}
		if e == "" {
			continue
		}
		cols = append(cols, c.name)
		exprs = append(exprs, e)
	}
	if len(cols) == 0 {
		return fmt.Sprintf("INSERT INTO %s SELECT FROM generate_series(%d, %d) g", t.name, offset+1, offset+n)
	}
	return fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM generate_series(%d, %d) g",
		t.name, strings.Join(cols, ", "), strings.Join(exprs, ", "), offset+1, offset+n)
}

// valueExpr is an expression of g giving a value of c's type, or "" to leave it to its default
// (NULL) when no generator is known and the column is nullable.
func valueExpr(c seedColumn) string {
	var e string
	switch {
	case c.base == "bool":
		e = "(g % 2 = 0)"
	case c.base == "uuid":
		e = "md5(g::text)::uuid"
	case c.base == "json" || c.base == "jsonb":
		e = "json_build_object('n', g)::text"
	case c.base == "bytea":
		e = "decode(md5(g::text), 'hex')"
	case c.base == "interval":
		e = "g * interval '1 minute'"
	case c.base == "cidr":
		e = "('10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256 || '/32')::cidr"
	case c.base == "inet":
		e = "('10.' || (g / 65536) % 256 || '.' || (g / 256) % 256 || '.' || g % 256)::inet"
	case c.base == "tsvector":
		e = "to_tsvector('simple', 'w' || g)"
	case c.category == "N":
		e = "g"
	case c.category == "S":
		e = "g::text"
	case c.category == "D":
		e = "(timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour')"
	case c.category == "E":
		return fmt.Sprintf("(enum_range(NULL::%s))[1 + (g - 1) %% cardinality(enum_range(NULL::%s))]", c.typ, c.typ)
	case c.category == "A":
		e = "'{}'"
	case !c.notNull:
		return ""
	default:
		e = "g::text"
	}
	return fmt.Sprintf("(%s)::%s", e, c.typ)
}
