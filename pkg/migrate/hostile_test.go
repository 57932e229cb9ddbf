package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
)

// canary creates a table holding rows in the database and returns a check that it still
// holds them.
func canary(t *testing.T, conn *pgx.Conn) func() {
	t.Helper()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "CREATE TABLE canary (id int PRIMARY KEY); INSERT INTO canary SELECT generate_series(1, 3)"); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM canary").Scan(&n); err != nil || n != 3 {
			t.Errorf("canary table: %d rows, %v; want its 3 rows untouched", n, err)
		}
	}
}

var twoTables = map[string]string{
	"1_users.sql": "CREATE TABLE users (id int PRIMARY KEY);\nINSERT INTO users VALUES (1), (2);\n", "1_users.rollback.sql": "DROP TABLE users;\n",
	"2_posts.sql": "CREATE TABLE posts (id int PRIMARY KEY);\nINSERT INTO posts VALUES (1);\n", "2_posts.rollback.sql": "DROP TABLE posts;\n",
}

// TestHostileVerifyRollbackRefusesADatabaseWithALedger is the reported attack: verify
// --rollback pointed at a database with applied migrations rolled the newest one back,
// dropping its table and rows. It must refuse before running anything.
func TestHostileVerifyRollbackRefusesADatabaseWithALedger(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	check := canary(t, conn)
	migs := load(t, twoTables)
	if _, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var before string
	if err := conn.QueryRow(ctx, "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',' ORDER BY version) FROM poststack.schema_migrations").Scan(&before); err != nil {
		t.Fatal(err)
	}

	problems, err := VerifyRollback(ctx, conn, migs)
	var ne *NotEmptyError
	if !errors.As(err, &ne) || exitcode.Of(err) != exitcode.Usage || len(problems) != 0 {
		t.Fatalf("VerifyRollback = %v, %v; want a *NotEmptyError (exit 2)", problems, err)
	}
	for _, want := range []string{"poststack.schema_migrations (a migration ledger)", "table public.canary", "give an empty database"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	check()
	var after string
	if err := conn.QueryRow(ctx, "SELECT string_agg(version || ':' || checksum || ':' || applied_at, ',' ORDER BY version) FROM poststack.schema_migrations").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("ledger changed: %s, was %s", after, before)
	}
	for _, table := range []string{"users", "posts"} {
		if !tableExists(t, conn, table) {
			t.Errorf("table %s was dropped", table)
		}
	}
}

// TestHostileCheckEmptyFindsAnyObject: whatever a database holds outside the system
// schemas makes it unfit for the round trip; a new database, the public schema itself and
// other sessions' temporary tables do not.
func TestHostileCheckEmptyFindsAnyObject(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, setup, want string
	}{
		{"empty", "", ""},
		{"public schema recreated", "DROP SCHEMA public; CREATE SCHEMA public", ""},
		{"table with rows", "CREATE TABLE t (id int); INSERT INTO t VALUES (1)", "table public.t"},
		{"view", "CREATE VIEW v AS SELECT 1 AS one", "view public.v"},
		{"sequence", "CREATE SEQUENCE s", "sequence public.s"},
		{"function", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "function public.f()"},
		{"enum type", "CREATE TYPE mood AS ENUM ('ok')", "type public.mood"},
		{"domain", "CREATE DOMAIN posint AS int CHECK (VALUE > 0)", "type public.posint"},
		{"empty schema", "CREATE SCHEMA app", "schema app"},
		{"leftover ledger schema", "CREATE SCHEMA poststack", "schema poststack"},
		{"table in another schema", "CREATE SCHEMA app; CREATE TABLE app.t (id int)", "table app.t"},
		{"ledger only", "CREATE SCHEMA poststack; CREATE TABLE poststack.schema_migrations (version bigint)", "poststack.schema_migrations (a migration ledger)"},
		{"extension", "CREATE EXTENSION hstore", "extension hstore"},
		{"extension in pg_catalog", "CREATE EXTENSION hstore SCHEMA pg_catalog", "extension hstore"},
		{"large object", "SELECT lo_create(424242)", "large object 424242"},
		{"event trigger", "CREATE FUNCTION x() RETURNS event_trigger LANGUAGE plpgsql AS 'BEGIN END'; CREATE EVENT TRIGGER et ON ddl_command_start EXECUTE FUNCTION x(); ALTER EVENT TRIGGER et DISABLE", "event trigger et"},
		{"publication", "CREATE PUBLICATION pub", "publication pub"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := freshDB(t)
			conn := connect(t, url)
			if strings.Contains(tt.setup, "EXTENSION") {
				var ok bool
				if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'hstore')").Scan(&ok); err != nil || !ok {
					t.Skipf("hstore is not installed on the test server (%v)", err)
				}
			}
			if tt.setup != "" {
				if _, err := conn.Exec(ctx, tt.setup); err != nil {
					t.Fatalf("setup: %v", err)
				}
			}
			// Another session's temporary table never counts.
			other := connect(t, url)
			if _, err := other.Exec(ctx, "CREATE TEMP TABLE scratch_tmp (id int)"); err != nil {
				t.Fatal(err)
			}
			err := CheckEmpty(ctx, conn)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("CheckEmpty = %v, want nil", err)
				}
				return
			}
			var ne *NotEmptyError
			if !errors.As(err, &ne) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckEmpty = %v, want a *NotEmptyError naming %q", err, tt.want)
			}
		})
	}
}

func TestNotEmptyErrorListsAFewAndCountsTheRest(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	for i := range 8 {
		if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE TABLE t%d ()", i)); err != nil {
			t.Fatal(err)
		}
	}
	err := CheckEmpty(ctx, conn)
	var ne *NotEmptyError
	if !errors.As(err, &ne) || len(ne.Objects) != listedObjects || ne.More != 8-listedObjects || !strings.Contains(err.Error(), "and 3 more") {
		t.Fatalf("CheckEmpty = %#v (%v)", ne, err)
	}
}

// TestVerifyRollbackBlamesTheRightMigration: from an empty database, a wrong rollback in
// the middle of a set is reported for its own file, and the check stops there.
func TestVerifyRollbackBlamesTheRightMigration(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	migs := load(t, map[string]string{
		"1_a.sql": "CREATE TABLE a (id int);\n", "1_a.rollback.sql": "DROP TABLE a;\n",
		// The rollback forgets the column.
		"2_b.sql": "ALTER TABLE a ADD COLUMN b int;\nCREATE TABLE b (id int);\n", "2_b.rollback.sql": "DROP TABLE b;\n",
		"3_c.sql": "CREATE TABLE c (id int);\n", "3_c.rollback.sql": "DROP TABLE c;\n",
	})
	problems, err := VerifyRollback(ctx, conn, migs)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Version != 2 || problems[0].Stage != "rollback" || !strings.Contains(problems[0].String(), "2_b: its rollback does not restore the schema") {
		t.Fatalf("problems = %+v, want one for 2_b's rollback", problems)
	}
	if tableExists(t, conn, "c") {
		t.Error("the check went on after the wrong rollback")
	}
}

// TestHostileLedgerWritingMigrationIsNotBlamedOnAnother: a migration that writes the ledger
// row of a later one would make "roll back the newest" run the later file's rollback; the
// check must stop instead of reporting about the wrong file.
func TestHostileLedgerWritingMigrationIsNotBlamedOnAnother(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	second := map[string]string{"2_b.sql": "CREATE TABLE b (id int);\n", "2_b.rollback.sql": "SELECT 1;\n"}
	sum := load(t, second)[0].Checksum
	set := map[string]string{
		"1_a.sql":          fmt.Sprintf("CREATE TABLE a (id int);\nINSERT INTO poststack.schema_migrations (version, name, checksum) VALUES (2, 'b', '%s');\n", sum),
		"1_a.rollback.sql": "DROP TABLE a;\n",
	}
	for k, v := range second {
		set[k] = v
	}
	problems, err := VerifyRollback(ctx, conn, load(t, set))
	if err == nil || !strings.Contains(err.Error(), "rolling back migrations/1_a.sql ran version(s) [2] instead") || len(problems) != 0 {
		t.Fatalf("VerifyRollback = %+v, %v; want it to stop on the ledger write", problems, err)
	}
}

// TestHostileInterruptedNoTransactionMigrationSaysWhatRan: cancelling a file that runs
// without a transaction leaves its first statements in effect; the error must say which
// ran and that the file is half-applied.
func TestHostileInterruptedNoTransactionMigrationSaysWhatRan(t *testing.T) {
	url := freshDB(t)
	conn := connect(t, url)
	migs := load(t, map[string]string{
		"1_a.sql": "CREATE TABLE a (id int);\n",
		"2_idx.sql": "-- poststack:no-transaction\nCREATE TABLE b (id int);\n" +
			"SELECT pg_sleep(30);\nCREATE INDEX CONCURRENTLY a_id ON a (id);\nCREATE TABLE c (id int);\n",
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go cancelWhenSleeping(t, url, cancel)
	start := time.Now()
	_, err := newMigrator(t, conn, migs).Up(ctx, 0)
	if time.Since(start) > 20*time.Second {
		t.Fatalf("the cancel did not stop pg_sleep: %v", time.Since(start))
	}
	var he *HalfAppliedError
	if !errors.As(err, &he) || !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Interrupted {
		t.Fatalf("Up = %v; want a *HalfAppliedError that is context.Canceled (exit 130)", err)
	}
	if he.Ran != 1 || he.Total != 4 || he.RanToLine != 2 || he.Line != 3 || !he.Running {
		t.Errorf("HalfAppliedError = %+v", he)
	}
	want := "migrations/2_idx.sql is half-applied: statement 1 of 4 ran (up to line 2) and stays in effect; statement 2 (line 3:1) was cancelled and the rest did not run"
	if !strings.HasPrefix(he.HalfDone(), want) || !strings.Contains(he.HalfDone(), "not recorded as applied") {
		t.Errorf("HalfDone() = %q, want it to start %q", he.HalfDone(), want)
	}
	if !tableExists(t, conn, "b") || tableExists(t, conn, "c") {
		t.Error("want b (statement 1) in place and c (statement 4) not created")
	}
	if got := ledgerVersions(t, conn); len(got) != 1 || got[0] != 1 {
		t.Errorf("ledger = %v, want only version 1", got)
	}
}

// cancelWhenSleeping calls cancel once a session of the database at url runs pg_sleep.
func cancelWhenSleeping(t *testing.T, url string, cancel func()) {
	defer cancel()
	ctx, stop := context.WithTimeout(context.Background(), 20*time.Second)
	defer stop()
	watcher, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Errorf("watcher: %v", err)
		return
	}
	defer watcher.Close(context.Background())
	for ctx.Err() == nil {
		var n int
		err := watcher.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'").Scan(&n)
		if err == nil && n > 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostileHugeLineErrorIsCapped: a 10 MB line in a failing migration must not become
// 10 MB of error text, and the excerpt keeps the caret under the failing character.
func TestHostileHugeLineErrorIsCapped(t *testing.T) {
	huge := strings.Repeat("x", 10<<20)
	tests := []struct {
		name, line string
		col        int
		near       string // the excerpt must hold it, with the caret under its first character
	}{
		{"error at the start", "SELECT '" + huge + "'::int;", 8, "'xxx"},
		{"error at the end", "SELECT length('" + huge + "') +;", len("SELECT length('"+huge+"') +") + 1, ";"},
		{"error in the middle", huge + "ERR" + huge, len(huge) + 1, "ERR"},
		{"tabs before the caret", "\t\tSELECT\tbad", 10, "bad"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			me := &MigrationError{File: "migrations/1_big.sql", Line: 1, Col: tt.col, Source: tt.line,
				Err: &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: "invalid input syntax: \"" + huge + "\"", Detail: huge, Where: huge}}
			msg, detail := me.Error(), me.Detail()
			if len(msg) > 2<<10 || len(detail) > 8<<10 || strings.Contains(msg, "\n") {
				t.Fatalf("message is %d bytes (%d lines), detail %d bytes", len(msg), strings.Count(msg, "\n")+1, len(detail))
			}
			if !strings.HasPrefix(msg, fmt.Sprintf("migrations/1_big.sql:1:%d: ERROR: invalid input syntax", tt.col)) {
				t.Errorf("message does not start with file:line:col: %.200q", msg)
			}
			lines := strings.Split(detail, "\n")
			src, caret := lines[len(lines)-2], lines[len(lines)-1]
			at := strings.Index(caret, "^")
			if at < 0 || !strings.HasPrefix(string([]rune(src)[len([]rune(caret[:at])):]), tt.near) {
				t.Errorf("caret not under %q:\n%s\n%s", tt.near, src, caret)
			}
		})
	}
}
