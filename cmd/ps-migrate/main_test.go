package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/migrate"
)

type result struct {
	code           int
	stdout, stderr string
}

func runIn(t *testing.T, dir string, environ []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{Environ: environ, Dir: dir, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code := runEnv(context.Background(), args, env)
	return result{code, out.String(), errb.String()}
}

// project makes a directory with migrations/ holding files (name → SQL).
func project(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "migrations"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, sql := range files {
		write(t, filepath.Join(dir, "migrations", name), sql)
	}
	return dir
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

var basic = map[string]string{
	"0001_users.sql":                "CREATE TABLE users (id int PRIMARY KEY, email text);\n",
	"0001_users.rollback.sql":       "DROP TABLE users;\n",
	"0002_email_index.sql":          "CREATE INDEX users_email ON users (email);\n",
	"0002_email_index.rollback.sql": "DROP INDEX users_email;\n",
}

func TestUpStatusDown(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, basic)
	env := []string{"DATABASE_URL=" + db}

	r := runIn(t, dir, env, "status", "--exit-code")
	if r.code != 3 || !strings.Contains(r.stdout, "0 applied, 2 pending") {
		t.Fatalf("status before: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, env, "up", "--dry-run")
	if r.code != 0 || !strings.Contains(r.stdout, "would apply migrations/0001_users.sql") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, env, "up")
	if r.code != 0 || !strings.Contains(r.stdout, "applied 0001_users") || !strings.Contains(r.stdout, "applied 0002_email_index") {
		t.Fatalf("up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, env, "migrate")
	if r.code != 0 || r.stdout != "nothing to do\n" {
		t.Fatalf("second up (alias migrate): exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, env, "status", "--json", "--exit-code")
	var states []struct {
		Status     migrate.Status `json:"status"`
		DurationMS *int64         `json:"duration_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &states); err != nil || r.code != 0 || len(states) != 2 ||
		states[1].Status != migrate.StatusApplied || states[1].DurationMS == nil {
		t.Fatalf("status --json: exit %d %v\n%s", r.code, err, r.stdout)
	}
	r = runIn(t, dir, env, "rollback", "--steps", "1")
	if r.code != 0 || !strings.Contains(r.stdout, "rolled back 0002_email_index") {
		t.Fatalf("down --steps 1: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, env, "down", "--target-version", "0")
	if r.code != 0 || !strings.Contains(r.stdout, "rolled back 0001_users") {
		t.Fatalf("down --target 0: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, args := range [][]string{{"down"}, {"down", "--target", "1", "--steps", "1"}, {"down", "--steps", "-1"}} {
		if r := runIn(t, dir, env, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, r.code, r.stderr)
		}
	}
}

func TestFailingMigrationIsReportedAtItsLine(t *testing.T) {
	db := testenv.Database(t)
	files := map[string]string{
		"0001_ok.sql":  "CREATE TABLE a (id int);\n",
		"0002_bad.sql": "-- Description: inserts\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES ('x');\n",
	}
	r := runIn(t, project(t, files), []string{"DATABASE_URL=" + db}, "up")
	if r.code != 1 || !strings.Contains(r.stderr, "ps-migrate: migrations/0002_bad.sql:3:23: ERROR: invalid input syntax for type integer") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	conn := connect(t, db)
	var n int
	if err := conn.QueryRow(context.Background(), "select count(*) from a").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the failed migration left rows behind: %d %v", n, err)
	}
}

func TestBadFilesChangeNothing(t *testing.T) {
	files := map[string]string{
		"0001_a.sql":          "select 1;\n",
		"1_duplicate.sql":     "select 1;\n",
		"0003_x.rollback.sql": "select 1;\n",
		"notes_without_v.sql": "select 1;\n",
	}
	// The URL points nowhere: exit 2 proves nothing tried to connect.
	r := runIn(t, project(t, files), []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}, "up")
	if r.code != 2 {
		t.Fatalf("exit %d, want 2\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"0001_a.sql", "1_duplicate.sql", "0003_x.rollback.sql", "notes_without_v.sql"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not name %s:\n%s", want, r.stderr)
		}
	}
}

func TestDrift(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, basic)
	env := []string{"DATABASE_URL=" + db}
	if r := runIn(t, dir, env, "up"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	write(t, filepath.Join(dir, "migrations", "0001_users.sql"), "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n")
	write(t, filepath.Join(dir, "migrations", "0003_more.sql"), "CREATE TABLE more (id int);\n")
	if r := runIn(t, dir, env, "up"); r.code != 3 || !strings.Contains(r.stderr, "0001") {
		t.Fatalf("up with a changed file: exit %d\n%s", r.code, r.stderr)
	}
	if r := runIn(t, dir, env, "verify"); r.code != 3 || !strings.Contains(r.stdout+r.stderr, "0001") {
		t.Fatalf("verify: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := runIn(t, dir, env, "up", "--allow-drift"); r.code != 0 || !strings.Contains(r.stdout, "applied 0003_more") {
		t.Fatalf("up --allow-drift: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestVerifyRollbackCatchesAForgottenIndex(t *testing.T) {
	db := testenv.Database(t)
	files := map[string]string{
		"0001_t.sql":          "CREATE TABLE t (id int, v text);\n",
		"0001_t.rollback.sql": "DROP TABLE t;\n",
		// The rollback forgets the index the migration creates.
		"0002_more.sql":          "ALTER TABLE t ADD COLUMN w int;\nCREATE INDEX t_v ON t (v);\n",
		"0002_more.rollback.sql": "ALTER TABLE t DROP COLUMN w;\n",
	}
	dir := project(t, files)
	env := []string{"DATABASE_URL=" + db}
	r := runIn(t, dir, env, "verify", "--rollback")
	if r.code != 3 || !strings.Contains(r.stdout, "2_more: its rollback does not restore the schema") || !strings.Contains(r.stdout, "index public.t_v") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	write(t, filepath.Join(dir, "migrations", "0002_more.rollback.sql"), "DROP INDEX t_v;\nALTER TABLE t DROP COLUMN w;\n")
	if r := runIn(t, dir, env, "verify", "--rollback"); r.code != 0 {
		t.Fatalf("fixed rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The check ran elsewhere: the target has no tables, and no scratch database is left.
	conn := connect(t, db)
	var tables, scratch int
	if err := conn.QueryRow(context.Background(), "select (select count(*) from pg_tables where schemaname = 'public'), (select count(*) from pg_database where datname like 'poststack_verify_%')").Scan(&tables, &scratch); err != nil {
		t.Fatal(err)
	}
	if tables != 0 || scratch != 0 {
		t.Fatalf("target has %d tables, %d scratch databases left", tables, scratch)
	}
}

func TestLockTimeoutIsExit4(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, basic)
	ctx := context.Background()
	holder := connect(t, db)
	m, err := migrate.New(holder, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := m.LockKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.Exec(ctx, "select pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := runIn(t, dir, []string{"DATABASE_URL=" + db}, "up", "--lock-timeout", "300ms")
	if r.code != 4 || time.Since(start) > 10*time.Second {
		t.Fatalf("exit %d after %v\n%s", r.code, time.Since(start), r.stderr)
	}
}

func TestNew(t *testing.T) {
	dir := project(t, map[string]string{"00009_x.sql": "select 1;\n"})
	r := runIn(t, dir, nil, "new", "add_users")
	want := "migrations/00010_add_users.sql\nmigrations/00010_add_users.rollback.sql\nmigrations/poststack.sum\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("exit %d stdout %q stderr %s", r.code, r.stdout, r.stderr)
	}
	if r := runIn(t, dir, nil, "new", "bad name!"); r.code != 2 {
		t.Errorf("bad name: exit %d", r.code)
	}
	if r := runIn(t, t.TempDir(), nil, "new", "first"); r.code != 0 || !strings.HasPrefix(r.stdout, "migrations/0001_first.sql") {
		t.Errorf("first migration: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
}

func TestConnectionChoicesAndWait(t *testing.T) {
	dir := project(t, basic)
	if r := runIn(t, dir, nil, "status"); r.code != 2 || !strings.Contains(r.stderr, "no database") {
		t.Errorf("no database: exit %d %s", r.code, r.stderr)
	}
	start := time.Now()
	r := runIn(t, dir, []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}, "wait", "--timeout", "400ms")
	if r.code != 4 || time.Since(start) > 5*time.Second || strings.Contains(r.stderr, ":p@") {
		t.Errorf("wait on nothing: exit %d after %v: %s", r.code, time.Since(start), r.stderr)
	}
	db := testenv.Database(t)
	r = runIn(t, dir, []string{"POSTSTACK_DATABASE_URL=" + db, "DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}, "test-connection")
	if r.code != 0 || !strings.Contains(r.stdout, "connected: PostgreSQL") {
		t.Errorf("POSTSTACK_DATABASE_URL must win over DATABASE_URL: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := runIn(t, dir, []string{"DATABASE_URL=" + db}, "wait", "--timeout", "10s"); r.code != 0 {
		t.Errorf("wait: exit %d %s", r.code, r.stderr)
	}
}

func TestSchemaCommands(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, basic)
	env := []string{"DATABASE_URL=" + db}
	if r := runIn(t, dir, env, "up"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := runIn(t, dir, env, "show-schema", "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"users"`) || strings.Contains(r.stdout, "schema_migrations") {
		t.Fatalf("show-schema: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	a := runIn(t, dir, env, "dump-schema")
	b := runIn(t, dir, env, "dump-schema", "-o", "schema.sql")
	got, _ := os.ReadFile(filepath.Join(dir, "schema.sql"))
	if a.code != 0 || b.code != 0 || a.stdout != string(got) || !strings.Contains(a.stdout, "CREATE TABLE public.users") {
		t.Fatalf("dump-schema: exit %d/%d, stdout and file differ or lack users:\n%s", a.code, b.code, a.stdout)
	}
	r = runIn(t, dir, env, "backup", "-o", "db.dump")
	if st, err := os.Stat(filepath.Join(dir, "db.dump")); r.code != 0 || err != nil || st.Size() == 0 || !strings.Contains(r.stdout, "pg_restore") {
		t.Fatalf("backup: exit %d %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestHelpVersionAndUsage(t *testing.T) {
	dir := t.TempDir()
	if r := runIn(t, dir, nil, "--help"); r.code != 0 || !strings.Contains(r.stdout, "ps-migrate verify --rollback") || !strings.Contains(r.stdout, "create-schema") {
		t.Errorf("--help: exit %d\n%s", r.code, r.stdout)
	}
	if r := runIn(t, dir, nil, "up", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--target") {
		t.Errorf("up --help: exit %d\n%s", r.code, r.stdout)
	}
	if r := runIn(t, dir, nil, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "ps-migrate ") {
		t.Errorf("--version: exit %d %q", r.code, r.stdout)
	}
	for _, args := range [][]string{{"frobnicate"}, {"up", "--frobnicate"}, {"up", "extra-arg"}, {"new"}} {
		if r := runIn(t, dir, []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/x"}, args...); r.code != 2 || !strings.HasPrefix(r.stderr, "ps-migrate: ") {
			t.Errorf("%v: exit %d, want 2 with a message: %q", args, r.code, r.stderr)
		}
	}
}
