package adopt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func connect(t *testing.T) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), testenv.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func exec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func load(t *testing.T, files map[string]string) []*migrate.Migration {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	migs, err := migrate.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return migs
}

var threeFiles = map[string]string{
	"0001_a.sql": "CREATE TABLE a (id int);\n", "0001_a.rollback.sql": "DROP TABLE a;\n",
	"0002_b.sql": "CREATE TABLE b (id int);\n",
	"0003_c.sql": "CREATE TABLE c (id int);\n",
}

// gooseDDL is the table goose v3 creates for Postgres.
const gooseDDL = `CREATE TABLE %s (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NULL DEFAULT now())`

func TestGooseLatestRowDecides(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	exec(t, conn, "SET TIME ZONE 'UTC'")
	// A hostile name, quoted all the way.
	exec(t, conn, `CREATE SCHEMA "we""ird"`)
	exec(t, conn, strings.Replace(gooseDDL, "%s", `"we""ird"."goose; DROP TABLE x"`, 1))
	exec(t, conn, `INSERT INTO "we""ird"."goose; DROP TABLE x" (version_id, is_applied, tstamp) VALUES
		(0, true, '2020-01-01'), (1, true, '2024-01-01 10:00:00'), (2, true, '2024-01-02'), (3, true, '2024-01-03'),
		(2, false, '2024-01-04'), (3, false, '2024-01-05'), (3, true, '2024-01-06 12:30:00.123456')`)
	table, err := Identifier(`we"ird.goose; DROP TABLE x`)
	if err != nil {
		t.Fatal(err)
	}
	l, err := Read(ctx, conn, Goose, table)
	if err != nil {
		t.Fatal(err)
	}
	if l.Table != `"we""ird"."goose; DROP TABLE x"` || len(l.Applied) != 2 || l.Applied[0].Version != 1 || l.Applied[1].Version != 3 {
		t.Fatalf("read %s: %+v", l.Table, l.Applied)
	}
	if want := time.Date(2024, 1, 6, 12, 30, 0, 123456000, time.UTC); !l.Applied[1].AppliedAt.Equal(want) {
		t.Errorf("version 3 applied at %v, want %v (its latest row's)", l.Applied[1].AppliedAt, want)
	}
	p, err := NewPlan(l, load(t, threeFiles))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(false); err != nil {
		t.Fatal(err)
	}
	if len(p.Rows) != 2 || p.Rows[0].Rollback == nil || *p.Rows[0].Rollback != "DROP TABLE a;\n" || p.Rows[1].AppliedBy != "adopt:goose" {
		t.Fatalf("rows %+v", p.Rows)
	}
	if len(p.Skipped) != 1 || !strings.HasSuffix(p.Skipped[0], "0002_b.sql") {
		t.Errorf("skipped %q, want 0002_b.sql (rolled back, older than 3)", p.Skipped)
	}

	// Recorded, then recorded again: the second is a no-op; their table is untouched.
	m, err := migrate.New(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := m.Record(ctx, p.Adopted()); err != nil || n != 2 {
		t.Fatalf("record: %d, %v", n, err)
	}
	if n, err := m.Record(ctx, p.Adopted()); err != nil || n != 0 {
		t.Fatalf("second record: %d, %v", n, err)
	}
	var at time.Time
	var by string
	if err := conn.QueryRow(ctx, "SELECT applied_at, applied_by FROM poststack.schema_migrations WHERE version = 3").Scan(&at, &by); err != nil {
		t.Fatal(err)
	}
	if !at.Equal(l.Applied[1].AppliedAt) || by != "adopt:goose" {
		t.Errorf("ledger row of 3: %v by %q", at, by)
	}
	var rows int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM "we""ird"."goose; DROP TABLE x"`).Scan(&rows); err != nil || rows != 7 {
		t.Errorf("goose's table has %d rows (%v), want its 7", rows, err)
	}

	// A plan that differs from what the ledger holds is refused, nothing written.
	other := p.Adopted()
	other[0].Checksum = strings.Repeat("0", 64)
	_, err = m.Record(ctx, other)
	var ce *migrate.RecordConflictError
	if !errors.As(err, &ce) || exitcode.Of(err) != exitcode.Check || !strings.Contains(err.Error(), "version 1 has another checksum") {
		t.Fatalf("conflicting record: %v", err)
	}
}

func TestWrongTool(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	exec(t, conn, "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)")
	_, err := Read(ctx, conn, PoststackPython, "")
	var nf *NotFoundError
	if !errors.As(err, &nf) || exitcode.Of(err) != exitcode.Usage ||
		err.Error() != `table public.schema_migrations is golang-migrate's ledger, not poststack-python's ledger: adopt it with --from golang-migrate` {
		t.Fatalf("got %v", err)
	}
	if _, err := Read(ctx, conn, Goose, ""); !errors.As(err, &nf) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("goose: %v", err)
	}
	// golang-migrate with nothing applied, then dirty.
	l, err := Read(ctx, conn, GolangMigrate, "")
	if err != nil || len(l.Applied) != 0 || l.UpTo != 0 {
		t.Fatalf("empty: %+v, %v", l, err)
	}
	exec(t, conn, "INSERT INTO schema_migrations VALUES (2, true)")
	_, err = Read(ctx, conn, GolangMigrate, "")
	var de *DirtyError
	if !errors.As(err, &de) || exitcode.Of(err) != exitcode.Check || !strings.Contains(err.Error(), "dirty at version 2") {
		t.Fatalf("dirty: %v", err)
	}
}

func TestGolangMigrateUpTo(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	exec(t, conn, "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)")
	exec(t, conn, "INSERT INTO schema_migrations VALUES (2, false)")
	l, err := Read(ctx, conn, GolangMigrate, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(l, load(t, threeFiles))
	if err != nil || p.Check(false) != nil {
		t.Fatal(err, p.Check(false))
	}
	if len(p.Rows) != 2 || !p.NoTimes || !p.Rows[0].AppliedAt.IsZero() || p.Rows[1].AppliedBy != "adopt:golang-migrate" {
		t.Fatalf("plan %+v", p)
	}
	// Version 2 without its file: listed, the check refuses.
	files := map[string]string{"0001_a.sql": "SELECT 1;\n", "0003_c.sql": "SELECT 3;\n"}
	p, err = NewPlan(l, load(t, files))
	if err != nil {
		t.Fatal(err)
	}
	err = p.Check(false)
	if exitcode.Of(err) != exitcode.Check || len(p.Unmatched) != 1 || p.Unmatched[0].Version != 2 {
		t.Fatalf("got %v, unmatched %+v", err, p.Unmatched)
	}
}

// pythonDDL is the Python poststack's ledger and lock tables.
const pythonDDL = `
CREATE TABLE public.schema_migrations (
	version VARCHAR(255) PRIMARY KEY,
	description TEXT,
	applied_at TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
	execution_time_ms INTEGER,
	checksum VARCHAR(64),
	applied_by VARCHAR(255) DEFAULT CURRENT_USER,
	sql_up TEXT,
	sql_down TEXT
);
CREATE TABLE public.schema_migration_lock (
	id INTEGER PRIMARY KEY DEFAULT 1 CHECK (id = 1),
	locked BOOLEAN NOT NULL DEFAULT FALSE,
	locked_at TIMESTAMP WITH TIME ZONE,
	locked_by VARCHAR(255)
);
INSERT INTO public.schema_migration_lock (id, locked) VALUES (1, false);`

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestPython(t *testing.T) {
	ctx := context.Background()
	conn := connect(t)
	exec(t, conn, pythonDDL)
	files := map[string]string{
		"0001_a.sql": "CREATE TABLE a (id int);\r\n", "0001_a.rollback.sql": "DROP TABLE a;\n",
		"0002_b.sql": "CREATE TABLE b (id int);\n",
	}
	exec(t, conn, `INSERT INTO public.schema_migrations (version, description, applied_at, execution_time_ms, checksum, applied_by, sql_up, sql_down) VALUES
		('0001', 'a', '2023-05-06 07:08:09+00', 12, $1, 'deploy', 'CREATE TABLE a (id int);', 'DROP TABLE a;'),
		('0002', 'b', '2023-05-07 07:08:09+00', 3, $2, 'deploy', 'CREATE TABLE b (id int);', 'DROP TABLE b;')`,
		sum("CREATE TABLE a (id int);\n"), sum("CREATE TABLE b (id int);\n"))
	l, err := Read(ctx, conn, PoststackPython, "")
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(l, load(t, files))
	if err != nil || p.Check(false) != nil {
		t.Fatal(err, p.Check(false))
	}
	r := p.Rows[1]
	if r.AppliedBy != "deploy" || r.Duration != 3*time.Millisecond || r.RollbackFrom != "sql_down" || *r.Rollback != "DROP TABLE b;" {
		t.Fatalf("row 2: %+v", r)
	}
	if p.Rows[0].RollbackFrom == "sql_down" {
		t.Errorf("row 1 takes sql_down although it has a rollback file")
	}

	// A file changed since: drift, unless allowed.
	files["0002_b.sql"] = "CREATE TABLE b (id bigint);\n"
	p, err = NewPlan(l, load(t, files))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(false); exitcode.Of(err) != exitcode.Check || len(p.Drifts) != 1 || p.Drifts[0].Version != 2 {
		t.Fatalf("drift: %v %+v", err, p.Drifts)
	}
	if err := p.Check(true); err != nil {
		t.Fatalf("allowed drift: %v", err)
	}

	// Its lock held: refused.
	exec(t, conn, "UPDATE public.schema_migration_lock SET locked = true, locked_by = 'deploy@box', locked_at = now()")
	_, err = Read(ctx, conn, PoststackPython, "")
	var le *LockedError
	if !errors.As(err, &le) || le.By != "deploy@box" || exitcode.Of(err) != exitcode.Check {
		t.Fatalf("locked: %v", err)
	}
}
