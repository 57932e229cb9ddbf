package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
)

// The adoption of databases migrated by other tools (issue 12, item 3): the real goose and
// golang-migrate binaries (scripts/setup.sh peers) migrate a database from their own file
// layout, ps-migrate convert rewrites the files, adopt writes our ledger, and status and up
// then treat those versions as applied.

type psResult struct {
	code           int
	stdout, stderr string
}

// psMigrate runs ps-migrate in dir against db.
func psMigrate(t *testing.T, ctx context.Context, dir, db string, args ...string) psResult {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary(t, "ps-migrate"), args...)
	cmd.Dir = dir
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTSTACK_") && !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "GITHUB_") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "DATABASE_URL="+db, "HOME="+t.TempDir(), "NO_COLOR=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return psResult{code, out.String(), errb.String()}
}

func (r psResult) want(t *testing.T, code int, stdout ...string) psResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, s := range stdout {
		if !strings.Contains(r.stdout+r.stderr, s) {
			t.Fatalf("output lacks %q\nstdout:\n%s\nstderr:\n%s", s, r.stdout, r.stderr)
		}
	}
	return r
}

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// statusOf returns version → status from status --json.
func statusOf(t *testing.T, ctx context.Context, dir, db string) map[int64]string {
	t.Helper()
	r := psMigrate(t, ctx, dir, db, "status", "--json").want(t, 0)
	var rows []struct {
		Version int64  `json:"version"`
		Status  string `json:"status"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	out := map[int64]string{}
	for _, row := range rows {
		out[row.Version] = row.Status
	}
	return out
}

func ledgerExists(t *testing.T, ctx context.Context, db string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass('poststack.schema_migrations') IS NOT NULL").Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func query[T any](t *testing.T, ctx context.Context, db, sql string, args ...any) T {
	t.Helper()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v T
	if err := conn.QueryRow(ctx, sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// addNewer adds a migration of ours newer than the adopted ones and updates the sum file.
func addNewer(t *testing.T, ctx context.Context, dir, db string, files map[string]string) {
	t.Helper()
	writeTree(t, filepath.Join(dir, "migrations"), files)
	psMigrate(t, ctx, dir, db, "hash").want(t, 0)
}

func TestAdoptGoose(t *testing.T) {
	goose := testenv.Program(t, "goose")
	ctx := testContext(t, 3*time.Minute)
	db := testenv.Database(t)
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "db"), map[string]string{
		"00001_users.sql": "-- users of the app\n-- +goose Up\nCREATE TABLE users (id int PRIMARY KEY, email text);\n\n-- +goose Down\nDROP TABLE users;\n",
		"00002_email_index.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n" +
			"-- +goose Down\nDROP INDEX CONCURRENTLY users_email;\n",
		"20240101120000_count.sql": "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION user_count() RETURNS bigint LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN (SELECT count(*) FROM users);\nEND;\n$$;\n-- +goose StatementEnd\n" +
			"-- +goose Down\n-- +goose StatementBegin\nDROP FUNCTION user_count();\n-- +goose StatementEnd\n",
	})
	mustRun(t, ctx, dir, nil, goose, "-dir", "db", "postgres", db, "up")
	gooseRows := query[int64](t, ctx, db, "SELECT count(*) FROM goose_db_version")

	psMigrate(t, ctx, dir, db, "convert", "--from", "goose", "db").want(t, 0,
		"00001_users.sql + 00001_users.rollback.sql <- db/00001_users.sql", "wrote 6 files to ./migrations", "wrote migrations/poststack.sum")
	data, err := os.ReadFile(filepath.Join(dir, "migrations", "00002_email_index.sql"))
	if err != nil || string(data) != "-- poststack:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n" {
		t.Fatalf("00002_email_index.sql: %q, %v", data, err)
	}
	// Converting again would overwrite: refused.
	psMigrate(t, ctx, dir, db, "convert", "--from", "goose", "db").want(t, 2, "exists already; convert never overwrites a file")

	// A version goose applied without a file of ours: listed, nothing written.
	hide := func(from, to string) {
		for _, f := range []string{"20240101120000_count.sql", "20240101120000_count.rollback.sql"} {
			if err := os.Rename(filepath.Join(from, f), filepath.Join(to, f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	hide(filepath.Join(dir, "migrations"), dir)
	psMigrate(t, ctx, dir, db, "adopt", "--from", "goose").want(t, 3,
		"version 20240101120000 applied by goose: no file in the migrations directory", "nothing was written")
	if ledgerExists(t, ctx, db) {
		t.Fatal("a refused adopt created the ledger")
	}
	hide(dir, filepath.Join(dir, "migrations"))

	psMigrate(t, ctx, dir, db, "adopt", "--from", "goose", "--dry-run").want(t, 0, "would write 3 rows")
	if ledgerExists(t, ctx, db) {
		t.Fatal("adopt --dry-run created the ledger")
	}
	psMigrate(t, ctx, dir, db, "adopt", "--from", "goose").want(t, 0, "wrote 3 rows to \"poststack\".\"schema_migrations\"")
	st := statusOf(t, ctx, dir, db)
	if len(st) != 3 || st[1] != "applied" || st[2] != "applied" || st[20240101120000] != "applied" {
		t.Fatalf("status after adopt: %v", st)
	}
	// The rows keep goose's times.
	if same := query[bool](t, ctx, db, `SELECT s.applied_at = g.tstamp::timestamptz FROM poststack.schema_migrations s
		JOIN goose_db_version g ON g.version_id = s.version WHERE s.version = 2`); !same {
		t.Error("applied_at of version 2 is not goose's tstamp")
	}
	psMigrate(t, ctx, dir, db, "adopt", "--from", "goose").want(t, 0, "already adopted")

	addNewer(t, ctx, dir, db, map[string]string{
		"20240202000000_nickname.sql":          "ALTER TABLE users ADD COLUMN nickname text;\n",
		"20240202000000_nickname.rollback.sql": "ALTER TABLE users DROP COLUMN nickname;\n",
	})
	r := psMigrate(t, ctx, dir, db, "up").want(t, 0, "applied 20240202000000_nickname")
	if strings.Count(r.stdout, "applied ") != 1 {
		t.Fatalf("up applied more than the new migration:\n%s", r.stdout)
	}
	if n := query[int64](t, ctx, db, "SELECT count(*) FROM goose_db_version"); n != gooseRows {
		t.Errorf("goose_db_version has %d rows, had %d: adopt must leave it alone", n, gooseRows)
	}
	// Our rollbacks undo what goose applied.
	psMigrate(t, ctx, dir, db, "down", "--target", "0").want(t, 0)
	if n := query[int64](t, ctx, db, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"); n != 0 {
		t.Error("down --target 0 left the users table")
	}
}

func TestAdoptGolangMigrate(t *testing.T) {
	migrateBin := testenv.Program(t, "migrate")
	ctx := testContext(t, 3*time.Minute)
	db := testenv.Database(t)
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "gm"), map[string]string{
		"1_users.up.sql":         "BEGIN;\nCREATE TABLE users (id int PRIMARY KEY, email text);\nINSERT INTO users VALUES (1, 'a@example.com');\nCOMMIT;\n",
		"1_users.down.sql":       "DROP TABLE users;\n",
		"2_email_index.up.sql":   "CREATE INDEX CONCURRENTLY users_email ON users (email);\n",
		"2_email_index.down.sql": "DROP INDEX CONCURRENTLY users_email;\n",
		"3_audit.up.sql":         "CREATE TABLE audit (at timestamptz NOT NULL DEFAULT now());\n",
		"3_audit.down.sql":       "",
	})
	mustRun(t, ctx, dir, nil, migrateBin, "-path", "gm", "-database", db, "up")

	psMigrate(t, ctx, dir, db, "convert", "--from", "golang-migrate", "gm").want(t, 0,
		"the BEGIN/COMMIT around the file dropped", "cannot run in a transaction block", "wrote 5 files")
	psMigrate(t, ctx, dir, db, "adopt", "--from", "poststack-python").want(t, 2,
		"is golang-migrate's ledger, not poststack-python's ledger: adopt it with --from golang-migrate")
	psMigrate(t, ctx, dir, db, "adopt", "--from", "golang-migrate").want(t, 0,
		"golang-migrate records no times: applied_at is the time of adoption", "wrote 3 rows")
	st := statusOf(t, ctx, dir, db)
	if len(st) != 3 || st[1] != "applied" || st[2] != "applied" || st[3] != "applied" {
		t.Fatalf("status after adopt: %v", st)
	}
	psMigrate(t, ctx, dir, db, "adopt", "--from", "golang-migrate").want(t, 0, "already adopted")
	addNewer(t, ctx, dir, db, map[string]string{"4_nickname.sql": "ALTER TABLE users ADD COLUMN nickname text;\n"})
	r := psMigrate(t, ctx, dir, db, "up").want(t, 0, "applied 4_nickname")
	if strings.Count(r.stdout, "applied ") != 1 {
		t.Fatalf("up applied more than the new migration:\n%s", r.stdout)
	}
}

func TestAdoptGolangMigrateDirty(t *testing.T) {
	migrateBin := testenv.Program(t, "migrate")
	ctx := testContext(t, 2*time.Minute)
	db := testenv.Database(t)
	dir := t.TempDir()
	writeTree(t, filepath.Join(dir, "gm"), map[string]string{
		"1_users.up.sql": "CREATE TABLE users (id int PRIMARY KEY);\n",
		"2_bad.up.sql":   "ALTER TABLE users ADD COLUMN email text;\nSELECT no_such_column FROM users;\n",
	})
	if _, err := run(ctx, dir, nil, migrateBin, "-path", "gm", "-database", db, "up"); err == nil {
		t.Fatal("migrate up of a failing migration succeeded")
	}
	if dirty := query[bool](t, ctx, db, "SELECT dirty FROM schema_migrations"); !dirty {
		t.Fatal("golang-migrate did not mark its ledger dirty")
	}
	psMigrate(t, ctx, dir, db, "convert", "--from", "golang-migrate", "gm").want(t, 0)
	psMigrate(t, ctx, dir, db, "adopt", "--from", "golang-migrate").want(t, 3,
		"golang-migrate's ledger is dirty at version 2: a migration failed halfway; fix the database and run `migrate force 2` (or 1) first")
	if ledgerExists(t, ctx, db) {
		t.Fatal("adopt of a dirty ledger created ours")
	}
}

// pythonLedgerDDL is the Python poststack's ledger and its lock row table.
const pythonLedgerDDL = `
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

func TestAdoptPoststackPython(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	db := testenv.Database(t)
	dir := t.TempDir()
	files := map[string]string{
		"migrations/001_users.sql":          "-- Description: users\nCREATE TABLE users (id int PRIMARY KEY);\n",
		"migrations/001_users.rollback.sql": "DROP TABLE users;\n",
		"migrations/002_email.sql":          "ALTER TABLE users ADD COLUMN email text;\n",
	}
	writeTree(t, dir, files)
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	for _, sql := range []string{pythonLedgerDDL,
		"CREATE TABLE users (id int PRIMARY KEY)", "ALTER TABLE users ADD COLUMN email text",
	} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `INSERT INTO public.schema_migrations VALUES
		('001', 'users', '2024-03-01 10:00:00+00', 15, $1, 'deploy@ci', $2, 'DROP TABLE users;'),
		('002', 'email', '2024-03-02 10:00:00+00', 4, $3, 'deploy@ci', $4, 'ALTER TABLE users DROP COLUMN email;')`,
		sum(files["migrations/001_users.sql"]), files["migrations/001_users.sql"],
		sum("ALTER TABLE users ADD COLUMN email text; -- as it was\n"), files["migrations/002_email.sql"]); err != nil {
		t.Fatal(err)
	}
	// 002's file is not the one the Python tool applied.
	psMigrate(t, ctx, dir, db, "adopt", "--from", "poststack-python").want(t, 3,
		"migrations/002_email.sql changed since the Python poststack applied it", "nothing was written")
	if ledgerExists(t, ctx, db) {
		t.Fatal("a refused adopt created the ledger")
	}
	if _, err := conn.Exec(ctx, "UPDATE public.schema_migrations SET checksum = $1 WHERE version = '002'", sum(files["migrations/002_email.sql"])); err != nil {
		t.Fatal(err)
	}
	psMigrate(t, ctx, dir, db, "adopt", "--from", "poststack-python", "--dry-run").want(t, 0, "would write 2 rows")
	psMigrate(t, ctx, dir, db, "adopt", "--from", "poststack-python").want(t, 0, "wrote 2 rows")
	st := statusOf(t, ctx, dir, db)
	if len(st) != 2 || st[1] != "applied" || st[2] != "applied" {
		t.Fatalf("status after adopt: %v", st)
	}
	if by := query[string](t, ctx, db, "SELECT applied_by FROM poststack.schema_migrations WHERE version = 2"); by != "deploy@ci" {
		t.Errorf("applied_by %q, want the Python tool's", by)
	}
	// 002 has no rollback file: the Python tool's sql_down is kept, and down uses it.
	if rb := query[string](t, ctx, db, "SELECT rollback_sql FROM poststack.schema_migrations WHERE version = 2"); rb != "ALTER TABLE users DROP COLUMN email;" {
		t.Errorf("rollback_sql %q", rb)
	}
	psMigrate(t, ctx, dir, db, "adopt", "--from", "poststack-python").want(t, 0, "already adopted")
	psMigrate(t, ctx, dir, db, "down", "--steps", "1").want(t, 0)
	if n := query[int64](t, ctx, db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'email'"); n != 0 {
		t.Error("down did not run the sql_down of 002")
	}
	// Their ledger is left as it was.
	if n := query[int64](t, ctx, db, "SELECT count(*) FROM public.schema_migrations"); n != 2 {
		t.Errorf("the Python ledger has %d rows", n)
	}
}
