package pgschema

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// nsFilter keeps application schemas; $1 is the text[] of extra schemas to exclude.
const nsFilter = `n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
	AND NOT (n.nspname = ANY($1::text[]))`

// notExtensionMember leaves out objects an extension created; %s is the catalog of the object
// and %s its oid expression.
const notExtensionMember = `NOT EXISTS (SELECT 1 FROM pg_depend d
	WHERE d.classid = '%s'::regclass AND d.objid = %s AND d.deptype = 'e')`

// querier is what both *pgx.Conn and pgx.Tx offer.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

type reader struct {
	tx            querier
	exclude       []string
	excludeTables map[string]bool
	// only, when not nil, are the tables and sequences to read (Options.Only), and onlyOIDs
	// (set by resolveOnly) the OIDs of those and of the sequences the tables own.
	only     map[string]bool
	onlyOIDs []uint32
}

// skipTable is whether the table schema.name is left out.
func (r *reader) skipTable(qualified string) bool {
	return r.excludeTables[qualified] || r.only != nil && !r.only[qualified]
}

// resolveOnly finds the relations Options.Only names, by name (an index lookup each, so that
// the cost follows the names, not the size of the database), and the sequences the named
// tables own. A name "a.b.c" may be schema "a" and relation "b.c" or schema "a.b" and relation
// "c": both are looked up, and the readers check the exact name.
func (r *reader) resolveOnly(ctx context.Context) error {
	nsps, rels := splitNames(r.only)
	rows, err := r.tx.Query(ctx, `WITH named AS (
			SELECT c.oid, c.relkind FROM unnest($1::text[], $2::text[]) AS o(nsp, rel)
			JOIN pg_namespace n ON n.nspname = o.nsp JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = o.rel
			WHERE c.relkind IN ('r', 'p', 'f', 'S'))
		SELECT oid FROM named
		UNION SELECT d.objid FROM named JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = named.oid
			AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
		WHERE named.relkind <> 'S'`, nsps, rels)
	if err != nil {
		return err
	}
	r.onlyOIDs, err = pgx.CollectRows(rows, pgx.RowTo[uint32])
	if r.onlyOIDs == nil {
		r.onlyOIDs = []uint32{}
	}
	return err
}

// onlyFilter is the condition that keeps the relations resolveOnly found, as the parameter
// after the exclusions, or nothing when the snapshot is not restricted.
func (r *reader) onlyFilter(oid string) (string, []any) {
	if r.only == nil {
		return "", []any{r.exclude}
	}
	return " AND " + oid + " = ANY($2::oid[])", []any{r.exclude, r.onlyOIDs}
}

func (r *reader) schemas(ctx context.Context, s *Schema) error {
	rows, err := r.tx.Query(ctx, `SELECT n.nspname FROM pg_namespace n WHERE `+nsFilter, r.exclude)
	if err != nil {
		return err
	}
	s.Schemas, err = pgx.CollectRows(rows, pgx.RowTo[string])
	return err
}

func (r *reader) extensions(ctx context.Context, s *Schema) error {
	rows, err := r.tx.Query(ctx, `SELECT e.extname, n.nspname, e.extversion
		FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace`)
	if err != nil {
		return err
	}
	s.Extensions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Extension, error) {
		var e Extension
		err := row.Scan(&e.Name, &e.Schema, &e.Version)
		return e, err
	})
	return err
}

func (r *reader) tables(ctx context.Context, s *Schema) error {
	only, args := r.onlyFilter("c.oid")
	rows, err := r.tx.Query(ctx, `SELECT c.oid, n.nspname, c.relname, c.relkind::text
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'f') AND `+nsFilter+` AND `+
		fmt.Sprintf(notExtensionMember, "pg_class", "c.oid")+only, args...)
	if err != nil {
		return err
	}
	byOID := map[uint32]*Table{}
	var oids []uint32
	var tables []*Table
	var oid uint32
	var t Table
	var kind string
	_, err = pgx.ForEachRow(rows, []any{&oid, &t.Schema, &t.Name, &kind}, func() error {
		if r.skipTable(t.Schema + "." + t.Name) {
			return nil
		}
		tt := &Table{Schema: t.Schema, Name: t.Name, Kind: relkindName(kind)}
		byOID[oid] = tt
		oids = append(oids, oid)
		tables = append(tables, tt)
		return nil
	})
	if err != nil {
		return err
	}
	cols, err := r.columns(ctx, oids)
	if err != nil {
		return err
	}
	idx, err := r.indexes(ctx, oids)
	if err != nil {
		return err
	}
	cons, err := r.constraints(ctx, "conrelid", oids)
	if err != nil {
		return err
	}
	trg, err := r.triggers(ctx, oids)
	if err != nil {
		return err
	}
	for o, t := range byOID {
		t.Columns, t.Indexes, t.Constraints, t.Triggers = cols[o], idx[o], cons[o], trg[o]
	}
	for _, t := range tables {
		s.Tables = append(s.Tables, *t)
	}
	return nil
}

func relkindName(k string) string {
	switch k {
	case "p":
		return "partitioned table"
	case "f":
		return "foreign table"
	default:
		return "table"
	}
}

// columns reads the live columns of the relations oids, keyed by relation, in column order.
func (r *reader) columns(ctx context.Context, oids []uint32) (map[uint32][]Column, error) {
	rows, err := r.tx.Query(ctx, `SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod),
			a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text,
			a.attgenerated::text,
			CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
				THEN coalesce((SELECT quote_ident(co.collname) FROM pg_collation co WHERE co.oid = a.attcollation), '')
				ELSE '' END
		FROM pg_attribute a
		JOIN pg_type t ON t.oid = a.atttypid
		LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
		WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attrelid, a.attnum`, oids)
	if err != nil {
		return nil, err
	}
	out := map[uint32][]Column{}
	var rel uint32
	var c Column
	var expr, identity, generated string
	_, err = pgx.ForEachRow(rows, []any{&rel, &c.Name, &c.Type, &c.NotNull, &expr, &identity, &generated, &c.Collation}, func() error {
		col := c
		col.Default, col.Identity, col.Generated = expr, "", ""
		switch identity {
		case "a":
			col.Identity = "always"
		case "d":
			col.Identity = "by default"
		}
		if generated == "s" {
			col.Default, col.Generated = "", expr
		}
		out[rel] = append(out[rel], col)
		return nil
	})
	return out, err
}

func (r *reader) indexes(ctx context.Context, oids []uint32) (map[uint32][]Index, error) {
	rows, err := r.tx.Query(ctx, `SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid),
			i.indisprimary, i.indisunique
		FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
		WHERE i.indrelid = ANY($1::oid[])`, oids)
	if err != nil {
		return nil, err
	}
	out := map[uint32][]Index{}
	var rel uint32
	var ix Index
	_, err = pgx.ForEachRow(rows, []any{&rel, &ix.Name, &ix.Definition, &ix.Primary, &ix.Unique}, func() error {
		out[rel] = append(out[rel], ix)
		return nil
	})
	return out, err
}

// constraints reads the constraints whose column col (conrelid or contypid) is one of oids.
func (r *reader) constraints(ctx context.Context, col string, oids []uint32) (map[uint32][]Constraint, error) {
	rows, err := r.tx.Query(ctx, `SELECT `+col+`, conname, contype::text, pg_get_constraintdef(oid, true)
		FROM pg_constraint WHERE `+col+` = ANY($1::oid[])`, oids)
	if err != nil {
		return nil, err
	}
	out := map[uint32][]Constraint{}
	var rel uint32
	var c Constraint
	var typ string
	_, err = pgx.ForEachRow(rows, []any{&rel, &c.Name, &typ, &c.Definition}, func() error {
		cc := c
		cc.Type = map[string]string{
			"p": "primary key", "u": "unique", "f": "foreign key", "c": "check",
			"x": "exclusion", "t": "trigger", "n": "not null",
		}[typ]
		if cc.Type == "" {
			cc.Type = typ
		}
		out[rel] = append(out[rel], cc)
		return nil
	})
	return out, err
}

func (r *reader) triggers(ctx context.Context, oids []uint32) (map[uint32][]Trigger, error) {
	rows, err := r.tx.Query(ctx, `SELECT tgrelid, tgname, pg_get_triggerdef(oid, true)
		FROM pg_trigger WHERE tgrelid = ANY($1::oid[]) AND NOT tgisinternal`, oids)
	if err != nil {
		return nil, err
	}
	out := map[uint32][]Trigger{}
	var rel uint32
	var t Trigger
	_, err = pgx.ForEachRow(rows, []any{&rel, &t.Name, &t.Definition}, func() error {
		out[rel] = append(out[rel], t)
		return nil
	})
	return out, err
}

func (r *reader) views(ctx context.Context, s *Schema) error {
	rows, err := r.tx.Query(ctx, `SELECT c.oid, n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('v', 'm') AND `+nsFilter+` AND `+
		fmt.Sprintf(notExtensionMember, "pg_class", "c.oid"), r.exclude)
	if err != nil {
		return err
	}
	var oids []uint32
	var oid uint32
	var v View
	_, err = pgx.ForEachRow(rows, []any{&oid, &v.Schema, &v.Name, &v.Materialized, &v.Definition}, func() error {
		if r.excludeTables[v.Schema+"."+v.Name] {
			return nil
		}
		oids = append(oids, oid)
		s.Views = append(s.Views, v)
		return nil
	})
	if err != nil {
		return err
	}
	idx, err := r.indexes(ctx, oids)
	if err != nil {
		return err
	}
	for i := range s.Views {
		s.Views[i].Indexes = idx[oids[i]]
	}
	return nil
}

func (r *reader) sequences(ctx context.Context, s *Schema) error {
	only, args := r.onlyFilter("sq.seqrelid")
	rows, err := r.tx.Query(ctx, `SELECT n.nspname, c.relname, format_type(sq.seqtypid, NULL),
			sq.seqstart, sq.seqincrement, sq.seqmin, sq.seqmax, sq.seqcache, sq.seqcycle,
			coalesce(tn.nspname || '.' || t.relname || '.' || ta.attname, ''),
			coalesce(tn.nspname || '.' || t.relname, '')
		FROM pg_sequence sq
		JOIN pg_class c ON c.oid = sq.seqrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
			AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
		LEFT JOIN pg_class t ON t.oid = d.refobjid
		LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
		LEFT JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
		WHERE `+nsFilter+` AND `+fmt.Sprintf(notExtensionMember, "pg_class", "c.oid")+`
			AND NOT EXISTS (SELECT 1 FROM pg_depend di WHERE di.classid = 'pg_class'::regclass
				AND di.objid = c.oid AND di.deptype = 'i')`+only, args...)
	if err != nil {
		return err
	}
	var q Sequence
	var ownerTable string
	_, err = pgx.ForEachRow(rows, []any{&q.Schema, &q.Name, &q.Type, &q.Start, &q.Increment, &q.Min, &q.Max,
		&q.Cache, &q.Cycle, &q.OwnedBy, &ownerTable}, func() error {
		if r.excludeTables[q.Schema+"."+q.Name] || (ownerTable != "" && r.excludeTables[ownerTable]) {
			return nil
		}
		if r.only != nil && !r.only[q.Schema+"."+q.Name] && (ownerTable == "" || !r.only[ownerTable]) {
			return nil
		}
		s.Sequences = append(s.Sequences, q)
		return nil
	})
	return err
}

func (r *reader) functions(ctx context.Context, s *Schema) error {
	rows, err := r.tx.Query(ctx, `SELECT n.nspname, p.proname, p.prokind::text,
			pg_get_function_identity_arguments(p.oid), coalesce(pg_get_function_result(p.oid), ''),
			CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE '' END
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE `+nsFilter+` AND `+fmt.Sprintf(notExtensionMember, "pg_proc", "p.oid"), r.exclude)
	if err != nil {
		return err
	}
	var f Function
	var kind string
	_, err = pgx.ForEachRow(rows, []any{&f.Schema, &f.Name, &kind, &f.Arguments, &f.Result, &f.Definition}, func() error {
		ff := f
		ff.Kind = map[string]string{"f": "function", "p": "procedure", "a": "aggregate", "w": "window"}[kind]
		s.Functions = append(s.Functions, ff)
		return nil
	})
	return err
}

func (r *reader) types(ctx context.Context, s *Schema) error {
	rows, err := r.tx.Query(ctx, `SELECT t.oid, t.typrelid, n.nspname, t.typname, t.typtype::text,
			CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE '' END,
			t.typnotnull, coalesce(pg_get_expr(t.typdefaultbin, 0), t.typdefault, '')
		FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
		WHERE (t.typtype IN ('e', 'd')
			OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
			AND `+nsFilter+` AND `+fmt.Sprintf(notExtensionMember, "pg_type", "t.oid"), r.exclude)
	if err != nil {
		return err
	}
	var oids, relids []uint32
	var oid, relid uint32
	var t Type
	var kind string
	_, err = pgx.ForEachRow(rows, []any{&oid, &relid, &t.Schema, &t.Name, &kind, &t.BaseType, &t.NotNull, &t.Default}, func() error {
		tt := t
		tt.Kind = map[string]string{"e": "enum", "d": "domain", "c": "composite"}[kind]
		oids = append(oids, oid)
		relids = append(relids, relid)
		s.Types = append(s.Types, tt)
		return nil
	})
	if err != nil {
		return err
	}
	labels := map[uint32][]string{}
	rows, err = r.tx.Query(ctx, `SELECT enumtypid, enumlabel FROM pg_enum
		WHERE enumtypid = ANY($1::oid[]) ORDER BY enumtypid, enumsortorder`, oids)
	if err != nil {
		return err
	}
	var label string
	if _, err := pgx.ForEachRow(rows, []any{&oid, &label}, func() error {
		labels[oid] = append(labels[oid], label)
		return nil
	}); err != nil {
		return err
	}
	cons, err := r.constraints(ctx, "contypid", oids)
	if err != nil {
		return err
	}
	attrs, err := r.columns(ctx, relids)
	if err != nil {
		return err
	}
	for i := range s.Types {
		s.Types[i].Labels = labels[oids[i]]
		s.Types[i].Constraints = cons[oids[i]]
		if s.Types[i].Kind == "composite" {
			s.Types[i].Attributes = attrs[relids[i]]
		}
	}
	return nil
}

// fingerprintSQL reads what the readers above read, in one query, as one text: every object a
// snapshot holds becomes one JSON array (tagged with its kind, named by name, never by OID,
// so that a dropped and recreated object reads the same), and the rows are sorted and joined.
// JSON escapes every string, so the text is an injective encoding of the rows: two states
// with equal texts give equal snapshots. Each part mirrors one reader's filters and columns
// (tables, sequences: Only and ExcludeTables as skipTable and sequences apply them; columns
// and composite attributes in attnum order and enum labels in sort order, as a snapshot keeps
// them; the other lists sorted, as normalize sorts them). Views and functions are found by OID
// from 16384 (FirstNormalObjectId: initdb creates what is below, in pg_catalog and
// information_schema only, and a server in normal operation never hands out a lower one), and
// views by their ON SELECT rule, which every view and materialized view has: index scans that
// skip the thousands of built-in ones. Parameters: $1 the excluded schemas,
// $2 the excluded tables ("schema.name"), $3 and $4 the (schema, relation) pairs resolveOnly
// looks up, $5 Only's names ("schema.name"). {{only tables}} and {{only sequences}} are
// replaced by the restrictions of tables and sequences to Only, or by nothing.
const fingerprintSQL = `WITH named AS (
	SELECT c.oid, c.relkind FROM unnest($3::text[], $4::text[]) AS o(nsp, rel)
	JOIN pg_namespace n ON n.nspname = o.nsp JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = o.rel
	WHERE c.relkind IN ('r', 'p', 'f', 'S')
), only_oids(oid) AS (
	SELECT oid FROM named
	UNION SELECT d.objid FROM named JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = named.oid
		AND d.classid = 'pg_class'::regclass AND d.deptype = 'a'
	WHERE named.relkind <> 'S'
), fp(x) AS (
	SELECT json_build_array('schema', n.nspname)::text FROM pg_namespace n WHERE ` + nsFilter + `
	UNION ALL
	SELECT json_build_array('extension', e.extname, n.nspname, e.extversion)::text
	FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
	UNION ALL
	SELECT json_build_array('table', n.nspname, c.relname, c.relkind::text,
		(SELECT string_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
				coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text,
				CASE WHEN a.attcollation <> t.typcollation AND a.attcollation <> 0
					THEN coalesce((SELECT quote_ident(co.collname) FROM pg_collation co WHERE co.oid = a.attcollation), '')
					ELSE '' END)::text, ',' ORDER BY a.attnum)
			FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
		(SELECT string_agg(y, ',' ORDER BY y COLLATE "C") FROM (SELECT json_build_array(ic.relname,
				pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique)::text AS y
			FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid) s),
		(SELECT string_agg(y, ',' ORDER BY y COLLATE "C") FROM (SELECT json_build_array(k.conname, k.contype::text,
				pg_get_constraintdef(k.oid, true))::text AS y FROM pg_constraint k WHERE k.conrelid = c.oid) s),
		(SELECT string_agg(y, ',' ORDER BY y COLLATE "C") FROM (SELECT json_build_array(g.tgname,
				pg_get_triggerdef(g.oid, true))::text AS y FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal) s)
	)::text
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE c.relkind IN ('r', 'p', 'f') AND ` + nsFilter + ` AND ` + `NOT EXISTS (SELECT 1 FROM pg_depend d
		WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		AND NOT (n.nspname || '.' || c.relname = ANY($2::text[])){{only tables}}
	UNION ALL
	SELECT json_build_array('view', n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true),
		(SELECT string_agg(y, ',' ORDER BY y COLLATE "C") FROM (SELECT json_build_array(ic.relname,
				pg_get_indexdef(i.indexrelid), i.indisprimary, i.indisunique)::text AS y
			FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid) s)
	)::text
	FROM pg_rewrite rw JOIN pg_class c ON c.oid = rw.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
	WHERE rw.ev_class >= 16384 AND rw.rulename = '_RETURN'
		AND c.relkind IN ('v', 'm') AND ` + nsFilter + ` AND NOT EXISTS (SELECT 1 FROM pg_depend d
		WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
		AND NOT (n.nspname || '.' || c.relname = ANY($2::text[]))
	UNION ALL
	SELECT json_build_array('sequence', n.nspname, c.relname, format_type(sq.seqtypid, NULL),
		sq.seqstart, sq.seqincrement, sq.seqmin, sq.seqmax, sq.seqcache, sq.seqcycle,
		coalesce(tn.nspname || '.' || t.relname || '.' || ta.attname, ''))::text
	FROM pg_sequence sq
	JOIN pg_class c ON c.oid = sq.seqrelid
	JOIN pg_namespace n ON n.oid = c.relnamespace
	LEFT JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid
		AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
	LEFT JOIN pg_class t ON t.oid = d.refobjid
	LEFT JOIN pg_namespace tn ON tn.oid = t.relnamespace
	LEFT JOIN pg_attribute ta ON ta.attrelid = d.refobjid AND ta.attnum = d.refobjsubid
	WHERE ` + nsFilter + ` AND NOT EXISTS (SELECT 1 FROM pg_depend de
			WHERE de.classid = 'pg_class'::regclass AND de.objid = c.oid AND de.deptype = 'e')
		AND NOT EXISTS (SELECT 1 FROM pg_depend di WHERE di.classid = 'pg_class'::regclass
			AND di.objid = c.oid AND di.deptype = 'i')
		AND NOT (n.nspname || '.' || c.relname = ANY($2::text[]))
		AND NOT coalesce(tn.nspname || '.' || t.relname = ANY($2::text[]), false){{only sequences}}
	UNION ALL
	SELECT json_build_array('function', n.nspname, p.proname, p.prokind::text,
		pg_get_function_identity_arguments(p.oid), coalesce(pg_get_function_result(p.oid), ''),
		CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) ELSE '' END)::text
	FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
	WHERE p.oid >= 16384 AND ` + nsFilter + ` AND NOT EXISTS (SELECT 1 FROM pg_depend d
		WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
	UNION ALL
	SELECT json_build_array('type', n.nspname, t.typname, t.typtype::text,
		CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) ELSE '' END,
		t.typnotnull, coalesce(pg_get_expr(t.typdefaultbin, 0), t.typdefault, ''),
		(SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)::text FROM pg_enum e WHERE e.enumtypid = t.oid),
		(SELECT string_agg(y, ',' ORDER BY y COLLATE "C") FROM (SELECT json_build_array(k.conname, k.contype::text,
				pg_get_constraintdef(k.oid, true))::text AS y FROM pg_constraint k WHERE k.contypid = t.oid) s),
		CASE WHEN t.typtype = 'c' THEN (SELECT string_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
				a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attidentity::text, a.attgenerated::text,
				CASE WHEN a.attcollation <> at.typcollation AND a.attcollation <> 0
					THEN coalesce((SELECT quote_ident(co.collname) FROM pg_collation co WHERE co.oid = a.attcollation), '')
					ELSE '' END)::text, ',' ORDER BY a.attnum)
			FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
			LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
			WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) END
	)::text
	FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
	WHERE (t.typtype IN ('e', 'd')
		OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
		AND ` + nsFilter + ` AND NOT EXISTS (SELECT 1 FROM pg_depend d
			WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e')
)
SELECT coalesce(string_agg(x, E'\n' ORDER BY x COLLATE "C"), '') FROM fp`

// The restrictions of fingerprintSQL when Options.Only is set: the tables resolveOnly finds,
// and the sequences among them or owned by them that the sequences reader keeps.
const (
	fingerprintOnlyTables    = "\n\t\tAND c.oid = ANY((SELECT array_agg(oid) FROM only_oids)::oid[])"
	fingerprintOnlySequences = "\n\t\tAND sq.seqrelid = ANY((SELECT array_agg(oid) FROM only_oids)::oid[])" +
		"\n\t\tAND (n.nspname || '.' || c.relname = ANY($5::text[]) OR tn.nspname || '.' || t.relname = ANY($5::text[]))"
)

// splitNames is every (schema, relation) reading of the qualified names: "a.b.c" is schema
// "a" and relation "b.c", or schema "a.b" and relation "c".
func splitNames(names map[string]bool) (nsps, rels []string) {
	nsps, rels = []string{}, []string{}
	for name := range names {
		for i := 0; i < len(name); i++ {
			if name[i] == '.' {
				nsps, rels = append(nsps, name[:i]), append(rels, name[i+1:])
			}
		}
	}
	return nsps, rels
}

func keys(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}
