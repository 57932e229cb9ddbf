package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/pgschema"
)

// RollbackProblem is a migration whose rollback does not give back the
// schema it started from, or whose re-application after the rollback does
// not give the schema of its first application.
type RollbackProblem struct {
	Version int64
	Name    string
	// Stage is "rollback" or "reapply".
	Stage string
	// Diffs say what differs, as pgschema.Diff words it.
	Diffs []string
}

func (p RollbackProblem) String() string {
	what := "its rollback does not restore the schema (\"before\": before it was applied, \"after\": after its rollback)"
	if p.Stage == "reapply" {
		what = "applying it again after its rollback gives another schema (\"before\": first application, \"after\": second)"
	}
	s := fmt.Sprintf("%d_%s: %s:", p.Version, p.Name, what)
	for _, d := range p.Diffs {
		s += "\n  " + d
	}
	return s
}

// VerifyRollback checks every rollback in scratch, which must be empty (see
// CheckEmpty; a *NotEmptyError, exit 2, is returned before anything runs
// otherwise): it applies each migration in order, rolls it back and compares
// the catalog with the one before, then applies it again and compares with
// the first application. It stops at the first rollback that leaves the
// schema changed, since what it left behind would make the next step fail
// for the wrong reason. The migrations it checked stay applied in scratch.
// opts configure the Migrator it uses; the ledger's schema is left out of
// the comparisons.
func VerifyRollback(ctx context.Context, scratch *pgx.Conn, migrations []*Migration, opts ...Option) ([]RollbackProblem, error) {
	m, err := New(scratch, migrations, opts...)
	if err != nil {
		return nil, err
	}
	missing := &MissingRollbackError{}
	for _, mig := range migrations {
		if mig.Down == nil {
			missing.Versions = append(missing.Versions, mig.Version)
			missing.Names = append(missing.Names, mig.Name)
		}
	}
	if len(missing.Versions) > 0 {
		return nil, missing
	}
	// A database that holds anything would have its own migrations rolled
	// back (Down takes the newest applied one, whichever that is) and its
	// tables dropped, and the report would blame the wrong file.
	if err := m.checkEmpty(ctx); err != nil {
		return nil, err
	}
	snap := func() (*pgschema.Schema, error) {
		return pgschema.Snapshot(ctx, scratch, pgschema.Options{Exclude: []string{m.cfg.schema}})
	}
	var problems []RollbackProblem
	before, err := snap()
	if err != nil {
		return nil, err
	}
	for _, mig := range migrations {
		res, err := m.Up(ctx, mig.Version)
		if err := only(mig, "applying", res, err); err != nil {
			return problems, err
		}
		applied, err := snap()
		if err != nil {
			return problems, err
		}
		again, problem, err := m.CheckRollback(ctx, mig, before, applied, nil)
		if err != nil {
			return problems, err
		}
		if problem != nil {
			problems = append(problems, *problem)
			if problem.Stage == "rollback" {
				// What the rollback left behind would break the next
				// application: the check cannot go on from here.
				return problems, nil
			}
		}
		before = again
	}
	return problems, nil
}

// only checks that a step of VerifyRollback ran exactly mig: a migration
// that writes the ledger itself would otherwise make the check roll back
// another one and blame it.
func only(mig *Migration, doing string, results []Result, err error) error {
	if err != nil {
		return err
	}
	if len(results) == 1 && results[0].Version == mig.Version {
		return nil
	}
	ran := make([]string, len(results))
	for i, r := range results {
		ran[i] = fmt.Sprint(r.Version)
	}
	return fmt.Errorf("verify rollback: %s %s ran version(s) [%s] instead; does an earlier migration write the ledger?",
		doing, mig.Up.File, strings.Join(ran, ", "))
}

// NotEmptyError refuses a database that VerifyRollback would have to share
// with what it holds. It is exit 2: nothing was run.
type NotEmptyError struct {
	// Database is the name of the database.
	Database string
	// Ledger is the ledger table when it exists: migrations were applied there.
	Ledger string
	// Objects name some of what it holds, as Postgres describes them
	// ("table public.users", "schema app", "extension hstore").
	Objects []string
	// More counts what it holds beyond Objects.
	More int
}

func (e *NotEmptyError) Error() string {
	var found []string
	if e.Ledger != "" {
		found = append(found, e.Ledger+" (a migration ledger)")
	}
	found = append(found, e.Objects...)
	list := strings.Join(found, ", ")
	if e.More > 0 {
		list += fmt.Sprintf(" and %d more", e.More)
	}
	return fmt.Sprintf("scratch database %s holds %s; give an empty database (e.g. CREATE DATABASE name TEMPLATE template0): checking rollbacks there would roll back and drop what it holds",
		e.Database, list)
}

// ExitCode is 2: nothing was run.
func (e *NotEmptyError) ExitCode() int { return exitcode.Usage }

// listedObjects is how many objects a NotEmptyError names.
const listedObjects = 5

// CheckEmpty returns a *NotEmptyError unless the database conn is connected
// to holds nothing: no ledger (the one opts name), no schema but public and
// the system ones, no object in any schema but pg_catalog,
// information_schema, pg_toast* and pg_temp* (temporary objects of other
// sessions vanish with them), no extension but the built-in plpgsql, and no
// database-wide object (large object, event trigger, publication,
// subscription, foreign server, cast, language, access method). A database
// created from template0 passes.
func CheckEmpty(ctx context.Context, conn *pgx.Conn, opts ...Option) error {
	m, err := New(conn, nil, opts...)
	if err != nil {
		return err
	}
	return m.checkEmpty(ctx)
}

// emptyQuery lists what a database holds beyond what initdb creates. Objects
// created after initdb have OIDs from FirstNormalObjectId (16384) up, even
// after the OID counter wraps; the catalogs with per-database objects are
// named one by one, as pg_identify_object needs.
const emptyQuery = `WITH objs(classid, objid) AS (
	SELECT 'pg_namespace'::regclass, oid FROM pg_namespace
		WHERE nspname <> 'public' AND nspname !~ '^pg_(temp|toast_temp)_[0-9]+$'
		AND (oid >= 16384 OR nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast'))
	UNION ALL SELECT 'pg_class'::regclass, oid FROM pg_class WHERE oid >= 16384
	UNION ALL SELECT 'pg_proc'::regclass, oid FROM pg_proc WHERE oid >= 16384
	UNION ALL SELECT 'pg_type'::regclass, t.oid FROM pg_type t WHERE t.oid >= 16384
		AND t.typrelid = 0 AND NOT EXISTS (SELECT FROM pg_type e WHERE e.typarray = t.oid)
	UNION ALL SELECT 'pg_collation'::regclass, oid FROM pg_collation WHERE oid >= 16384
	UNION ALL SELECT 'pg_conversion'::regclass, oid FROM pg_conversion WHERE oid >= 16384
	UNION ALL SELECT 'pg_operator'::regclass, oid FROM pg_operator WHERE oid >= 16384
	UNION ALL SELECT 'pg_opfamily'::regclass, oid FROM pg_opfamily WHERE oid >= 16384
	UNION ALL SELECT 'pg_opclass'::regclass, oid FROM pg_opclass WHERE oid >= 16384
	UNION ALL SELECT 'pg_ts_config'::regclass, oid FROM pg_ts_config WHERE oid >= 16384
	UNION ALL SELECT 'pg_ts_dict'::regclass, oid FROM pg_ts_dict WHERE oid >= 16384
	UNION ALL SELECT 'pg_ts_parser'::regclass, oid FROM pg_ts_parser WHERE oid >= 16384
	UNION ALL SELECT 'pg_ts_template'::regclass, oid FROM pg_ts_template WHERE oid >= 16384
	UNION ALL SELECT 'pg_statistic_ext'::regclass, oid FROM pg_statistic_ext WHERE oid >= 16384
	UNION ALL SELECT 'pg_extension'::regclass, oid FROM pg_extension WHERE extname <> 'plpgsql' OR oid >= 16384
	UNION ALL SELECT 'pg_language'::regclass, oid FROM pg_language WHERE oid >= 16384
	UNION ALL SELECT 'pg_cast'::regclass, oid FROM pg_cast WHERE oid >= 16384
	UNION ALL SELECT 'pg_am'::regclass, oid FROM pg_am WHERE oid >= 16384
	UNION ALL SELECT 'pg_transform'::regclass, oid FROM pg_transform WHERE oid >= 16384
	UNION ALL SELECT 'pg_event_trigger'::regclass, oid FROM pg_event_trigger
	UNION ALL SELECT 'pg_foreign_data_wrapper'::regclass, oid FROM pg_foreign_data_wrapper
	UNION ALL SELECT 'pg_foreign_server'::regclass, oid FROM pg_foreign_server
	UNION ALL SELECT 'pg_publication'::regclass, oid FROM pg_publication
	UNION ALL SELECT 'pg_subscription'::regclass, oid FROM pg_subscription
		WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())
	UNION ALL SELECT 'pg_largeobject'::regclass, oid FROM pg_largeobject_metadata
)
SELECT i.type || ' ' || i.identity, coalesce(classid = 'pg_class'::regclass AND objid = to_regclass($1), false)
FROM objs, pg_identify_object(classid, objid, 0) i
WHERE i.schema IS NULL OR (i.schema NOT IN ('pg_catalog', 'information_schema') AND i.schema !~ '^pg_(toast|temp_)')
ORDER BY 2 DESC, i.type = 'schema' DESC, i.type = 'table' DESC, 1`

func (m *Migrator) checkEmpty(ctx context.Context) error {
	var db string
	if err := m.conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return fmt.Errorf("read current database: %w", err)
	}
	rows, err := m.conn.Query(ctx, emptyQuery, m.ledger)
	if err != nil {
		return fmt.Errorf("check that database %s is empty: %w", db, err)
	}
	e := &NotEmptyError{Database: db}
	n := 0
	for rows.Next() {
		var what string
		var ledger bool
		if err := rows.Scan(&what, &ledger); err != nil {
			rows.Close()
			return fmt.Errorf("check that database %s is empty: %w", db, err)
		}
		n++
		switch {
		case ledger:
			e.Ledger = strings.TrimPrefix(what, "table ")
		case len(e.Objects) < listedObjects:
			e.Objects = append(e.Objects, what)
		default:
			e.More++
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("check that database %s is empty: %w", db, err)
	}
	if n > 0 {
		return e
	}
	return nil
}

// CreateScratchDatabase creates an empty database next to the one conn is
// connected to, for VerifyRollback, and returns its name and a function
// that drops it (forcing out any session left in it).
func CreateScratchDatabase(ctx context.Context, conn *pgx.Conn) (name string, drop func(context.Context) error, err error) {
	var suffix string
	if err := conn.QueryRow(ctx, "select substr(md5(random()::text), 1, 10)").Scan(&suffix); err != nil {
		return "", nil, err
	}
	name = "poststack_verify_" + suffix
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0"); err != nil {
		return "", nil, fmt.Errorf("create scratch database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop scratch database %s: %w", name, err)
		}
		return nil
	}
	return name, drop, nil
}
