package lint

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/pgschema"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// The rollback check compares the schema before a change with the one after its rollback, and
// the one after the change with the one after applying it again. Reading the whole catalog
// four times per change costs with the number of tables in the database; reading only the
// tables (and sequences) the change and its rollback can alter costs with what they touch.
// touched finds those by a trial: the change and its rollback run in a transaction that is
// rolled back, and the server says what they locked (DDL locks what it alters, and a new
// relation is locked by its creator). Everything a snapshot holds that is not a table or a
// sequence (schemas, extensions, types, views, functions) is read in full anyway
// (pgschema.Only), so what changes without a lock (CREATE FUNCTION, CREATE TYPE, CREATE
// SCHEMA …) is compared as before. Comments, owners and privileges are not in snapshots.

// touchedQuery lists, in the current state, the relations (tables and sequences) that the
// objects touched so far may have altered, as "schema.name" (rows 't'), and the objects this
// transaction has locked (rows 'o': classid and objid, to run this query again in the state
// before). Touched are: $1/$2 (classids and objids), the relations this transaction holds a
// lock on, the objects (types, functions, collations, schemas …) it holds more than ACCESS
// SHARE on (creating something in a schema takes ACCESS SHARE on the schema), and the
// relations with an OID above $3 (new ones: PostgreSQL locks every relation it creates, this
// only makes sure of it while the OID counter has not wrapped around). A relation is altered
// by what is touched when it is touched itself, is a table with a touched index or sequence,
// or holds a column, default, constraint, index or trigger that depends on a touched object or
// on a type that does (recursively: the array type of a type, the row type of a table): a
// renamed collation, function, sequence, column or referenced table changes how a table
// prints without a lock on it.
const touchedQuery = `WITH RECURSIVE locked(classid, objid) AS (
	SELECT CASE l.locktype WHEN 'relation' THEN 'pg_class'::regclass::oid ELSE l.classid END, coalesce(l.relation, l.objid)
	FROM pg_locks l
	WHERE l.pid = pg_backend_pid() AND l.granted
		AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND (l.locktype = 'relation' AND l.relation >= 16384 OR l.locktype = 'object' AND l.mode <> 'AccessShareLock')
), touched(classid, objid) AS (
	SELECT classid, objid FROM locked
	UNION SELECT * FROM unnest($1::oid[], $2::oid[])
	UNION SELECT 'pg_class'::regclass::oid, c.oid FROM pg_class c WHERE c.oid > $3::oid
), reached(classid, objid) AS (
	SELECT classid, objid FROM touched
	UNION
	SELECT d.classid, d.objid FROM reached r JOIN pg_depend d ON d.refclassid = r.classid AND d.refobjid = r.objid
	WHERE r.classid = 'pg_type'::regclass OR EXISTS (SELECT FROM touched t WHERE t.classid = r.classid AND t.objid = r.objid)
), rels(oid) AS (
	SELECT r.objid FROM reached r WHERE r.classid = 'pg_class'::regclass
	UNION SELECT i.indrelid FROM reached r JOIN pg_index i ON i.indexrelid = r.objid WHERE r.classid = 'pg_class'::regclass
	UNION SELECT d.refobjid FROM reached r JOIN pg_depend d ON d.classid = r.classid AND d.objid = r.objid
		WHERE r.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
	UNION SELECT a.adrelid FROM reached r JOIN pg_attrdef a ON a.oid = r.objid WHERE r.classid = 'pg_attrdef'::regclass
	UNION SELECT k.conrelid FROM reached r JOIN pg_constraint k ON k.oid = r.objid WHERE r.classid = 'pg_constraint'::regclass
	UNION SELECT g.tgrelid FROM reached r JOIN pg_trigger g ON g.oid = r.objid WHERE r.classid = 'pg_trigger'::regclass
)
SELECT 'o', classid, objid, '' FROM locked
UNION ALL
SELECT 't', 0, 0, n.nspname || '.' || c.relname FROM rels t
	JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'f', 'S')`

// trialSavepoint is where the trial goes back to: the state before the change.
const trialSavepoint = "poststack_lint_trial"

// touchedSet gathers the answers of touchedQuery.
type touchedSet struct {
	classids, objids []uint32
	names            map[string]bool
}

// read runs touchedQuery in the current state. In the trial (newAbove is the highest OID
// before it) it also keeps the locks the trial holds; before it (newAbove 0xFFFFFFFF: no OID
// is above) it maps the objects the trial locked to what they were.
func (t *touchedSet) read(ctx context.Context, r *reviewer, newAbove uint32) error {
	rows, err := r.conn.Query(ctx, touchedQuery, t.classids, t.objids, newAbove)
	if err != nil {
		return fmt.Errorf("lint: list what the trial touched: %w", err)
	}
	defer rows.Close()
	var classids, objids []uint32
	for rows.Next() {
		var kind, name string
		var classid, objid uint32
		if err := rows.Scan(&kind, &classid, &objid, &name); err != nil {
			return fmt.Errorf("lint: list what the trial touched: %w", err)
		}
		if kind == "o" {
			classids, objids = append(classids, classid), append(objids, objid)
		} else {
			t.names[name] = true
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lint: list what the trial touched: %w", err)
	}
	if len(classids) > 0 {
		// Locks accumulate in a transaction: the later reading holds the earlier ones.
		t.classids, t.objids = classids, objids
	}
	return nil
}

// trial opens a transaction and, under a savepoint, runs p and its rollback, reading what they
// touched after each with touchedQuery; back at the savepoint (the state before p) it maps
// what they locked to what it was, and returns the relations to compare, leaving the
// transaction open in the state before p (the caller rolls it back). It returns nil, for the
// full comparison, when p or its rollback runs outside a transaction (it cannot be rolled
// back) or controls the transaction itself, or when a statement of the trial fails (the real
// run reports the error as it always did).
func (r *reviewer) trial(ctx context.Context, p changePlan) (*pgschema.Only, error) {
	if p.mig.Down == nil || p.mig.Up.NoTransaction || p.mig.Down.NoTransaction {
		return nil, nil
	}
	if _, ok := sqlscan.HasTransactionControl(p.stmts); ok {
		return nil, nil
	}
	if _, ok := sqlscan.HasTransactionControl(p.downStmts); ok {
		return nil, nil
	}
	res, err := r.conn.PgConn().Exec(ctx, fmt.Sprintf(
		"BEGIN; SET LOCAL lock_timeout = %d; SAVEPOINT %s; SELECT max(oid) FROM pg_class",
		r.lockTimeoutMS(), trialSavepoint)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("lint: begin the trial of %s: %w", p.mig.Up.File, err)
	}
	var newAbove uint32
	if last := res[len(res)-1]; len(last.Rows) != 1 || len(last.Rows[0]) != 1 {
		return nil, fmt.Errorf("lint: begin the trial of %s: no highest OID", p.mig.Up.File)
	} else if _, err := fmt.Sscan(string(last.Rows[0][0]), &newAbove); err != nil {
		return nil, fmt.Errorf("lint: begin the trial of %s: %w", p.mig.Up.File, err)
	}
	set := &touchedSet{names: map[string]bool{}}
	for _, stmts := range [][]sqlscan.Statement{p.stmts, p.downStmts} {
		for _, st := range stmts {
			if err := r.exec(ctx, st.SQL); err != nil {
				var pgErr *pgconn.PgError
				if errors.As(err, &pgErr) {
					return nil, nil
				}
				return nil, fmt.Errorf("lint: trial of %s and its rollback: %w", p.mig.Up.File, err)
			}
			if r.conn.PgConn().TxStatus() != 'T' {
				// A transaction control statement sqlscan does not know: nothing can be trusted.
				return nil, fmt.Errorf("lint: trial of %s and its rollback: a statement at line %d ended the transaction", p.mig.Up.File, st.Line)
			}
		}
		// After the change, then after its rollback.
		if err := set.read(ctx, r, newAbove); err != nil {
			return nil, err
		}
	}
	if err := r.exec(ctx, "ROLLBACK TO SAVEPOINT "+trialSavepoint); err != nil {
		return nil, fmt.Errorf("lint: end the trial of %s: %w", p.mig.Up.File, err)
	}
	if err := set.read(ctx, r, math.MaxUint32); err != nil {
		return nil, err
	}
	// Generic plans for the snapshot, as pgschema takes them when restricted in a transaction
	// of its own: its queries read little, and planning them anew costs more than running them.
	if err := r.exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		return nil, fmt.Errorf("lint: trial of %s: %w", p.mig.Up.File, err)
	}
	only := &pgschema.Only{Relations: make([]string, 0, len(set.names))}
	for name := range set.names {
		only.Relations = append(only.Relations, name)
	}
	slices.Sort(only.Relations)
	return only, nil
}
