package main

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/internal/testenv"
)

// runCtx is runIn under ctx.
func runCtx(ctx context.Context, t *testing.T, dir string, environ []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{Environ: environ, Dir: dir, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code := runEnv(ctx, args, env)
	return result{code, out.String(), errb.String()}
}

// ledgerRows is the ledger as text, to compare before and after.
func ledgerRows(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	err := conn.QueryRow(context.Background(),
		"SELECT coalesce(string_agg(version || ':' || checksum || ':' || applied_at, ',' ORDER BY version), '') FROM poststack.schema_migrations").Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestHostileVerifyRollbackScratchWithData is the reported attack: `verify --rollback
// --scratch-url` at a database with applied migrations and data rolled back the newest
// migration (its table and rows dropped). It must refuse, exit 2, and change nothing.
func TestHostileVerifyRollbackScratchWithData(t *testing.T) {
	ctx := context.Background()
	db := testenv.Database(t)
	dir := project(t, basic)
	env := []string{"DATABASE_URL=" + db}
	if r := runIn(t, dir, env, "up"); r.code != 0 {
		t.Fatalf("up: exit %d %s", r.code, r.stderr)
	}
	conn := connect(t, db)
	if _, err := conn.Exec(ctx, "CREATE TABLE canary (id int); INSERT INTO canary SELECT generate_series(1, 5); INSERT INTO users VALUES (1, 'a@example.com')"); err != nil {
		t.Fatal(err)
	}
	before := ledgerRows(t, conn)

	for _, args := range [][]string{
		{"verify", "--rollback", "--scratch-url", db},
		// The target itself as scratch, through --database-url.
		{"--database-url", db, "verify", "--rollback", "--scratch-url", db},
	} {
		r := runIn(t, dir, env, args...)
		if r.code != 2 {
			t.Fatalf("%v: exit %d, want 2\nstdout %s\nstderr %s", args, r.code, r.stdout, r.stderr)
		}
		for _, want := range []string{"holds poststack.schema_migrations (a migration ledger)", "table public.canary", "give an empty database"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v: stderr does not say %q:\n%s", args, want, r.stderr)
			}
		}
	}
	var canary, users int
	var index bool
	if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM canary), (SELECT count(*) FROM users), to_regclass('users_email') IS NOT NULL").Scan(&canary, &users, &index); err != nil {
		t.Fatalf("after verify: %v", err)
	}
	if canary != 5 || users != 1 || !index {
		t.Errorf("after verify: canary %d rows (want 5), users %d rows (want 1), index users_email kept %v", canary, users, index)
	}
	if after := ledgerRows(t, conn); after != before {
		t.Errorf("ledger changed:\n%s\nwas\n%s", after, before)
	}
}

// TestVerifyRollbackScratchBlamesTheMiddleFile: in an empty scratch database given by URL,
// a wrong rollback in the middle of a set is reported for its own file.
func TestVerifyRollbackScratchBlamesTheMiddleFile(t *testing.T) {
	target, scratch := testenv.Database(t), testenv.Database(t)
	dir := project(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (id int);\n", "0001_a.rollback.sql": "DROP TABLE a;\n",
		"0002_b.sql": "CREATE TABLE b (id int);\nCREATE INDEX b_id ON b (id);\nCREATE TABLE b2 (id int);\n", "0002_b.rollback.sql": "DROP TABLE b2;\n",
		"0003_c.sql": "CREATE TABLE c (id int);\n", "0003_c.rollback.sql": "DROP TABLE c;\n",
	})
	r := runIn(t, dir, []string{"DATABASE_URL=" + target}, "verify", "--rollback", "--scratch-url", scratch)
	if r.code != 3 || !strings.Contains(r.stdout, "2_b: its rollback does not restore the schema") || strings.Contains(r.stdout, "1_a:") || strings.Contains(r.stdout, "3_c:") {
		t.Fatalf("exit %d, want 3 blaming 0002_b only\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
}

// hostileURLs carry the password "s3cr3t-pw" in forms that pgx refuses or half-redacts, or
// that only reach a connection error; code is the exit code each must give.
var hostileURLs = []struct {
	name, url string
	code      int
}{
	{"upper-case scheme", "POSTGRES://app:s3cr3t-pw@127.0.0.1:1/db", 2},
	{"mixed-case scheme", "PostgreSQL://app:s3cr3t-pw@127.0.0.1:1/db", 2},
	{"bad port", "postgres://app:s3cr3t-pw@127.0.0.1:abc/db", 2},
	{"unescaped slash", "postgres://app:s3cr3t/-pw@127.0.0.1:1/db", 2},
	{"unescaped slash, upper-case scheme", "POSTGRES://app:s3cr3t/-pw@127.0.0.1:1/db", 2},
	{"query password, bad port", "postgres://app@127.0.0.1:abc/db?password=s3cr3t-pw", 2},
	{"keyword/value, bad port", "host=127.0.0.1 password=s3cr3t-pw port=abc", 2},
	{"spaces around =", "host=127.0.0.1 password = s3cr3t-pw port=abc", 2},
	{"quoted", "host=127.0.0.1 password='s3cr3t -pw' port=abc", 2},
	{"escaped space", `host=127.0.0.1 password=s3cr3t\ -pw port=abc`, 2},
	{"bad sslmode", "host=127.0.0.1 password=s3cr3t-pw sslmode=bogus", 2},
	{"unterminated quote", "host=127.0.0.1 port=1 password='s3cr3t-pw", 2},
	{"nothing listening, URL", "postgres://app:s3cr3t-pw@127.0.0.1:1/db", 1},
	{"nothing listening, keyword/value", "host=127.0.0.1 port=1 user=app password=s3cr3t-pw", 1},
}

// TestHostileURLsNeverPrintThePassword: whatever form the database URL takes and wherever
// it comes from, no part of its password reaches stdout, stderr or the log file.
func TestHostileURLsNeverPrintThePassword(t *testing.T) {
	const fragment = "s3cr3t"
	for _, tt := range hostileURLs {
		for _, via := range []string{"--database-url", "POSTSTACK_DATABASE_URL", "DATABASE_URL"} {
			for _, cmd := range []string{"dump-schema", "status", "up"} {
				t.Run(tt.name+"/"+via+"/"+cmd, func(t *testing.T) {
					dir := project(t, basic)
					var env []string
					args := []string{"--log-level", "debug", cmd}
					if via == "--database-url" {
						args = append([]string{"--database-url", tt.url}, args...)
					} else {
						env = []string{via + "=" + tt.url}
					}
					r := runIn(t, dir, env, args...)
					if r.code != tt.code {
						t.Errorf("exit %d, want %d: %s", r.code, tt.code, r.stderr)
					}
					if strings.Contains(r.stdout+r.stderr, fragment) {
						t.Errorf("the password is in the output:\nstdout %s\nstderr %s", r.stdout, r.stderr)
					}
					if tt.code == 2 && !strings.Contains(r.stderr, "invalid database URL: ") {
						t.Errorf("stderr does not say the URL is invalid: %s", r.stderr)
					}
					filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
						if err == nil && d.Type().IsRegular() {
							if data, _ := os.ReadFile(path); bytes.Contains(data, []byte(fragment)) {
								t.Errorf("the password is in %s", path)
							}
						}
						return nil
					})
				})
			}
		}
	}
}

// TestHostileInterruptedNoTransactionMigration: an interrupted `up` in the middle of a
// no-transaction file exits 130 and says which statements ran and that the file is
// half-applied, rather than only "interrupted".
func TestHostileInterruptedNoTransactionMigration(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (id int);\n",
		"0002_idx.sql": "-- poststack:no-transaction\nCREATE TABLE b (id int);\nSELECT pg_sleep(30);\n" +
			"CREATE INDEX CONCURRENTLY a_id ON a (id);\nCREATE TABLE c (id int);\n",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		wctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
		defer stop()
		watcher, err := pgx.Connect(wctx, db)
		if err != nil {
			t.Errorf("watcher: %v", err)
			return
		}
		defer watcher.Close(context.Background())
		for wctx.Err() == nil {
			var n int
			if err := watcher.QueryRow(wctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE 'SELECT pg_sleep%'").Scan(&n); err == nil && n > 0 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	r := runCtx(ctx, t, dir, []string{"DATABASE_URL=" + db}, "up")
	if time.Since(start) > 20*time.Second {
		t.Fatalf("up took %v: the interruption did not stop pg_sleep", time.Since(start))
	}
	want := "ps-migrate: interrupted: migrations/0002_idx.sql is half-applied: statement 1 of 4 ran (up to line 2) and stays in effect; statement 2 (line 3:1) was cancelled"
	if r.code != 130 || !strings.Contains(r.stderr, want) || !strings.Contains(r.stdout, "applied 0001_a") {
		t.Fatalf("exit %d, want 130 and %q\nstdout %s\nstderr %s", r.code, want, r.stdout, r.stderr)
	}
	conn := connect(t, db)
	var b, c bool
	if err := conn.QueryRow(context.Background(), "SELECT to_regclass('b') IS NOT NULL, to_regclass('c') IS NOT NULL").Scan(&b, &c); err != nil || !b || c {
		t.Errorf("b exists %v (want true), c exists %v (want false), %v", b, c, err)
	}
	if got := strings.Join(appliedVersions(t, db), ","); got != "1" {
		t.Errorf("ledger %q, want only 1", got)
	}
}

// TestHostileHugeLineError: a failing migration whose statement is one 10 MB line must not
// put 10 MB on stderr; the message still names file:line:col.
func TestHostileHugeLineError(t *testing.T) {
	db := testenv.Database(t)
	huge := strings.Repeat("x", 10<<20)
	dir := project(t, map[string]string{
		"0001_big.sql": "-- a long line follows\nSELECT '" + huge + "'::int;\n",
	})
	r := runIn(t, dir, []string{"DATABASE_URL=" + db}, "up")
	if r.code != 1 || len(r.stderr) > 4<<10 || len(r.stdout) > 4<<10 {
		t.Fatalf("exit %d (want 1), stderr %d bytes, stdout %d bytes (want under 4 KiB):\n%.2000s", r.code, len(r.stderr), len(r.stdout), r.stderr)
	}
	if !strings.Contains(r.stderr, "ps-migrate: migrations/0001_big.sql:2:8: ERROR: invalid input syntax for type integer") {
		t.Errorf("stderr does not name file:line:col:\n%s", r.stderr)
	}
}
