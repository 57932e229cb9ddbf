package migrate

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/progress"
)

var threeMigrations = map[string]string{
	"0001_users.sql":          "-- Description: users\ncreate table users (id int primary key, email text);\n",
	"0001_users.rollback.sql": "drop table users;\n",
	"0002_posts.sql":          "create table posts (id int primary key, user_id int references users);\ncreate index posts_user on posts (user_id);\n",
	"0002_posts.rollback.sql": "drop table posts;\n",
	"0003_tags.sql":           "create table tags (name text primary key);\ninsert into tags values ('a'), ('b');\n",
	"0003_tags.rollback.sql":  "drop table tags;\n",
}

func versions(rs []Result) []int64 {
	out := []int64{}
	for _, r := range rs {
		out = append(out, r.Version)
	}
	return out
}

func TestUpDownStatusVerify(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	var events []string
	m := newMigrator(t, conn, load(t, threeMigrations), WithAppliedBy("tester@ci"), WithProgress(func(pe progress.Event) {
		e := pe.Data.(Event)
		events = append(events, fmt.Sprintf("%s %s %d", e.Kind, e.Direction, e.Version))
	}))

	st, err := m.Status(ctx)
	if err != nil {
		t.Fatalf("Status before anything: %v", err)
	}
	if len(st) != 3 || st[0].Status != StatusPending || st[0].Description != "users" {
		t.Fatalf("Status = %+v", st)
	}
	plan, err := m.Plan(ctx, 2)
	if err != nil || len(plan) != 2 || tableExists(t, conn, "poststack.schema_migrations") {
		t.Fatalf("Plan(2) = %d migrations, %v; the dry run must not create the ledger", len(plan), err)
	}

	res, err := m.Up(ctx, 2)
	if err != nil || !reflect.DeepEqual(versions(res), []int64{1, 2}) {
		t.Fatalf("Up(2) = %v, %v", versions(res), err)
	}
	if tableExists(t, conn, "tags") || !tableExists(t, conn, "posts") {
		t.Fatal("Up(2) applied the wrong set")
	}
	res, err = m.Up(ctx, 0)
	if err != nil || !reflect.DeepEqual(versions(res), []int64{3}) {
		t.Fatalf("Up(0) = %v, %v", versions(res), err)
	}
	wantEvents := []string{
		"lock-acquired  0", "start up 1", "done up 1", "start up 2", "done up 2",
		"lock-acquired  0", "start up 3", "done up 3",
	}
	if !reflect.DeepEqual(events, wantEvents) {
		t.Errorf("events\n got %q\nwant %q", events, wantEvents)
	}

	var name, checksum, by, rollback string
	var ms float64
	err = conn.QueryRow(ctx, `select name, checksum, applied_by, rollback_sql, extract(epoch from execution_time)*1000
		from poststack.schema_migrations where version = 2`).Scan(&name, &checksum, &by, &rollback, &ms)
	if err != nil {
		t.Fatalf("ledger row: %v", err)
	}
	if name != "posts" || checksum != m.Migrations()[1].Checksum || by != "tester@ci" || rollback != "drop table posts;\n" || ms < 0 {
		t.Errorf("ledger row = %q %q %q %q %v", name, checksum, by, rollback, ms)
	}

	st, err = m.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st {
		if s.Status != StatusApplied || s.AppliedBy != "tester@ci" || s.AppliedAt.IsZero() {
			t.Errorf("state %+v", s)
		}
	}
	if ds, err := m.Verify(ctx); err != nil || len(ds) != 0 {
		t.Errorf("Verify = %v, %v", ds, err)
	}
	if res, err := m.Up(ctx, 0); err != nil || len(res) != 0 {
		t.Errorf("second Up = %v, %v", res, err)
	}

	steps, err := m.PlanDown(ctx, Steps(2))
	if err != nil || len(steps) != 2 || steps[0].Version != 3 || steps[1].Version != 2 {
		t.Fatalf("PlanDown(Steps(2)) = %+v, %v", steps, err)
	}
	res, err = m.Down(ctx, Steps(1))
	if err != nil || !reflect.DeepEqual(versions(res), []int64{3}) || tableExists(t, conn, "tags") {
		t.Fatalf("Down(Steps(1)) = %v, %v", versions(res), err)
	}
	res, err = m.Down(ctx, ToVersion(0))
	if err != nil || !reflect.DeepEqual(versions(res), []int64{2, 1}) || tableExists(t, conn, "users") {
		t.Fatalf("Down(ToVersion(0)) = %v, %v", versions(res), err)
	}
	if vs := ledgerVersions(t, conn); len(vs) != 0 {
		t.Errorf("ledger after full rollback: %v", vs)
	}
	if res, err := m.Down(ctx, ToVersion(0)); err != nil || len(res) != 0 {
		t.Errorf("Down with nothing applied = %v, %v", res, err)
	}
}

func TestBadTargets(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, threeMigrations))
	for name, err := range map[string]error{
		"up unknown":      func() error { _, err := m.Up(ctx, 7); return err }(),
		"up negative":     func() error { _, err := m.Up(ctx, -1); return err }(),
		"down zero value": func() error { _, err := m.Down(ctx, DownTarget{}); return err }(),
		"down zero steps": func() error { _, err := m.Down(ctx, Steps(0)); return err }(),
		"down unknown":    func() error { _, err := m.Down(ctx, ToVersion(9)); return err }(),
	} {
		if exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%s: %v (exit %d), want exit 2", name, err, exitcode.Of(err))
		}
	}
	if _, err := New(conn, nil, WithLockTimeout(0)); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("WithLockTimeout(0) = %v", err)
	}
	if _, err := New(conn, nil, WithSchema("")); err == nil {
		t.Error("WithSchema(\"\") accepted")
	}
}

func TestFailingMigrationLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_a.sql": "create table a (id int);\n",
		"2_b.sql": "create table b (id int);\n",
		"3_c.sql": "create table c (id int);\ninsert into c values (1);\nselect 1/0;\n",
		"4_d.sql": "create table d (id int);\n",
	}))
	res, err := m.Up(ctx, 0)
	var pe *PartialError
	if !errors.As(err, &pe) {
		t.Fatalf("Up error = %v, want *PartialError", err)
	}
	if !reflect.DeepEqual(versions(res), []int64{1, 2}) || !reflect.DeepEqual(versions(pe.Applied), []int64{1, 2}) || pe.Failed == nil || pe.Failed.Version != 3 {
		t.Fatalf("results %v, partial %+v", versions(res), pe)
	}
	var me *MigrationError
	if !errors.As(err, &me) || me.Err.Code != "22012" || me.Line != 3 || me.Col != 1 {
		t.Fatalf("MigrationError = %+v", me)
	}
	if exitcode.Of(err) != exitcode.Failure {
		t.Errorf("exit code %d", exitcode.Of(err))
	}
	if !tableExists(t, conn, "a") || !tableExists(t, conn, "b") || tableExists(t, conn, "c") || tableExists(t, conn, "d") {
		t.Error("tables do not match: want a, b only")
	}
	if vs := ledgerVersions(t, conn); !reflect.DeepEqual(vs, []int64{1, 2}) {
		t.Errorf("ledger = %v", vs)
	}
	// The connection is usable and not left in a transaction.
	if conn.PgConn().TxStatus() != 'I' {
		t.Errorf("connection left in transaction state %c", conn.PgConn().TxStatus())
	}
}

func TestErrorPositions(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	tests := []struct {
		name, sql  string
		line, col  int
		code       string
		wantPrefix string
	}{
		{"syntax error on line 1", "selec 1;\n", 1, 1, "42601", "migrations/1_x.sql:1:1: ERROR: syntax error at or near \"selec\" (SQLSTATE 42601)"},
		{"syntax error in the middle", "create table t (a int);\n\ncreate table u (\n  a int,\n  b int,,\n);\n", 5, 9, "42601", ""},
		{"after a multi-line string", "create table t (a text);\ninsert into t values ('line one\nline two;\nline three');\nselect * fro t;\n", 5, 10, "42601", ""},
		{"after a dollar-quoted body", "create function f() returns int language plpgsql as $$\nbegin\n  return 1; -- ;\nend;\n$$;\n\nselect f() +;\n", 7, 13, "42601", ""},
		{"multi-byte characters before", "select 'ééé€€', 1; select 'ü' frm x;\n", 1, 35, "42601", ""},
		{"undefined table in a later statement", "create table t (a int);\n  insert into nope values (1);\n", 2, 15, "42P01", ""},
		{"runtime error without position", "create table t (a int primary key);\ninsert into t values (1);\n\n  insert into t\n  values (1);\n", 4, 3, "23505", ""},
		{"plpgsql body error", "create function g() returns int language plpgsql as $$\nbegin\n  retur 1;\nend $$;\n", 3, 3, "42601", ""},
		{"runtime error in a function", "create function h() returns int language sql as 'select 1/0';\nselect 1;\nselect h();\n", 3, 1, "22012", ""},
		{"tab-indented", "select 1;\n\tselect nope;\n", 2, 9, "42703", "migrations/1_x.sql:2:9: ERROR: column \"nope\" does not exist (SQLSTATE 42703)\n 2 | \tselect nope;\n   | \t       ^"},
		{"no-transaction statement", "-- poststack:no-transaction\ncreate table t (a int);\n\ncreate index concurrently i on t (nope);\n", 4, 1, "42703", ""},
		{"no-transaction position", "-- poststack:no-transaction\ncreate table t (a int);\n\n  select a, nope from t;\n", 4, 13, "42703", ""},
		{"no-transaction runtime", "-- poststack:no-transaction\ncreate table t (a int);\n  select 1/0;\n", 3, 3, "22012", ""},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			schema := fmt.Sprintf("s%d", i)
			if _, err := conn.Exec(ctx, "create schema "+schema+"; set search_path = "+schema); err != nil {
				t.Fatal(err)
			}
			m := newMigrator(t, conn, load(t, map[string]string{"1_x.sql": tc.sql}), WithTable(schema+"_ledger"))
			_, err := m.Up(ctx, 0)
			var me *MigrationError
			if !errors.As(err, &me) {
				t.Fatalf("Up error = %v, want *MigrationError", err)
			}
			if me.Line != tc.line || me.Col != tc.col || me.Err.Code != tc.code {
				t.Fatalf("got %d:%d %s, want %d:%d %s\n%v", me.Line, me.Col, me.Err.Code, tc.line, tc.col, tc.code, err)
			}
			if msg := err.Error() + "\n" + me.Detail(); tc.wantPrefix != "" && !strings.HasPrefix(msg, tc.wantPrefix) {
				t.Errorf("message\n%s\nwant prefix\n%s", msg, tc.wantPrefix)
			}
			var n int
			if err := conn.QueryRow(ctx, "select count(*) from poststack."+schema+"_ledger").Scan(&n); err != nil || n != 0 {
				t.Errorf("ledger rows %d, %v", n, err)
			}
			if !strings.Contains(tc.sql, "no-transaction") && tableExists(t, conn, schema+".t") {
				t.Error("the failed migration left table t")
			}
		})
	}
}

func TestMessageHasDetailHintAndCaret(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_x.sql": "create table p (id int primary key);\ncreate table c (p int references p);\ninsert into c values (5);\n",
	}))
	_, err := m.Up(ctx, 0)
	var me *MigrationError
	if !errors.As(err, &me) {
		t.Fatalf("Up = %v, want a *MigrationError", err)
	}
	wantErr := `migrations/1_x.sql:3:1: ERROR: insert or update on table "c" violates foreign key constraint "c_p_fkey" (SQLSTATE 23503)`
	wantDetail := `DETAIL: Key (p)=(5) is not present in table "p".
 3 | insert into c values (5);
   | ^`
	if err.Error() != wantErr || me.Detail() != wantDetail {
		t.Fatalf("message\n%v\ndetail\n%s\nwant\n%s\n%s", err, me.Detail(), wantErr, wantDetail)
	}
	m = newMigrator(t, conn, load(t, map[string]string{"1_x.sql": "create table q (a int);\ncreate index concurrently qi on q (a);\n"}))
	_, err = m.Up(ctx, 0)
	if !errors.As(err, &me) || err.Error() != "migrations/1_x.sql:2:1: ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block (SQLSTATE 25001)" ||
		!strings.Contains(me.Detail(), `NOTE: this statement cannot run in a transaction; put it in its own file that starts with "-- poststack:no-transaction"`) {
		t.Fatalf("message\n%v", err)
	}
}

func TestDeferredConstraintFailsAtCommit(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_x.sql": "create table p (id int primary key);\ncreate table c (p int references p deferrable initially deferred);\ninsert into c values (5);\n",
	}))
	_, err := m.Up(ctx, 0)
	var me *MigrationError
	if !errors.As(err, &me) || me.Err.Code != "23503" || me.Line != 0 {
		t.Fatalf("error = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "migrations/1_x.sql: ERROR: ") || tableExists(t, conn, "p") {
		t.Fatalf("message %v / table p left behind", err)
	}
}

func TestDrift(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	if _, err := newMigrator(t, conn, load(t, threeMigrations)).Up(ctx, 2); err != nil {
		t.Fatal(err)
	}
	changed := map[string]string{}
	for k, v := range threeMigrations {
		changed[k] = v
	}
	changed["0002_posts.sql"] += "-- edited\n"
	migs := load(t, changed)
	m := newMigrator(t, conn, migs)
	_, err := m.Up(ctx, 0)
	var de *DriftError
	if !errors.As(err, &de) || len(de.Drifts) != 1 || de.Drifts[0].Version != 2 || exitcode.Of(err) != exitcode.Check {
		t.Fatalf("Up with drift = %v", err)
	}
	wantMsg := "1 applied migration(s) changed since they were applied (checksum drift):\n  migrations/0002_posts.sql: version 2: content changed since it was applied"
	if err.Error() != wantMsg {
		t.Errorf("message\n%s\nwant\n%s", err, wantMsg)
	}
	if tableExists(t, conn, "tags") {
		t.Fatal("drift did not stop Up")
	}
	if _, err := m.Plan(ctx, 0); !errors.As(err, &de) {
		t.Errorf("Plan with drift = %v", err)
	}
	if _, err := m.Down(ctx, Steps(1)); !errors.As(err, &de) {
		t.Errorf("Down with drift = %v", err)
	}
	ds, err := m.Verify(ctx)
	if len(ds) != 1 || exitcode.Of(err) != exitcode.Check {
		t.Errorf("Verify = %v, %v", ds, err)
	}
	st, _ := m.Status(ctx)
	if st[1].Status != StatusChanged || st[0].Status != StatusApplied || st[2].Status != StatusPending {
		t.Errorf("Status = %+v", st)
	}
	var allowed []int64
	m = newMigrator(t, conn, migs, WithAllowDrift(true), WithProgress(func(pe progress.Event) {
		e := pe.Data.(Event)
		if e.Kind == EventDriftAllowed {
			allowed = append(allowed, e.Version)
		}
	}))
	res, err := m.Up(ctx, 0)
	if err != nil || !reflect.DeepEqual(versions(res), []int64{3}) || !reflect.DeepEqual(allowed, []int64{2}) {
		t.Fatalf("Up with allowed drift = %v, %v, events %v", versions(res), err, allowed)
	}
}

func TestMissingFileAndLedgerRollback(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	if _, err := newMigrator(t, conn, load(t, threeMigrations)).Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	// Version 3's files are deleted: status says missing-file, and down uses the ledger's copy.
	two := map[string]string{}
	for k, v := range threeMigrations {
		if !strings.HasPrefix(k, "0003") {
			two[k] = v
		}
	}
	var missing []int64
	m := newMigrator(t, conn, load(t, two), WithProgress(func(pe progress.Event) {
		e := pe.Data.(Event)
		if e.Kind == EventMissingFile {
			missing = append(missing, e.Version)
		}
	}))
	if res, err := m.Up(ctx, 0); err != nil || len(res) != 0 || !reflect.DeepEqual(missing, []int64{3}) {
		t.Fatalf("Up = %v, %v, missing events %v", res, err, missing)
	}
	st, err := m.Status(ctx)
	if err != nil || len(st) != 3 || st[2].Status != StatusMissingFile || st[2].Name != "tags" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	steps, err := m.PlanDown(ctx, Steps(1))
	if err != nil || !steps[0].FromLedger || steps[0].Script.File != "ledger copy of 3_tags.rollback.sql" {
		t.Fatalf("PlanDown = %+v, %v", steps, err)
	}
	if _, err := m.Down(ctx, Steps(1)); err != nil || tableExists(t, conn, "tags") {
		t.Fatalf("Down from ledger copy: %v", err)
	}
}

func TestDownChecksEveryStepFirst(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_a.sql": "create table a ();", "1_a.rollback.sql": "drop table a;",
		"2_b.sql": "create table b ();",
		"3_c.sql": "create table c ();", "3_c.rollback.sql": "drop table c;",
		"4_d.sql": "create table d ();",
	}))
	if _, err := m.Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	_, err := m.Down(ctx, ToVersion(1))
	var mr *MissingRollbackError
	if !errors.As(err, &mr) || exitcode.Of(err) != exitcode.Usage ||
		err.Error() != "no rollback SQL (no .rollback.sql file and none stored in the ledger) for: 4_d, 2_b" {
		t.Fatalf("Down = %v", err)
	}
	if !tableExists(t, conn, "c") || !reflect.DeepEqual(ledgerVersions(t, conn), []int64{1, 2, 3, 4}) {
		t.Fatal("Down changed something before failing its check")
	}
}

func TestFailingRollbackKeepsRow(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_a.sql": "create table a ();", "1_a.rollback.sql": "drop table a;",
		"2_b.sql": "create table b ();", "2_b.rollback.sql": "drop table b;\ndrop table nope;",
	}))
	if _, err := m.Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	_, err := m.Down(ctx, ToVersion(0))
	var me *MigrationError
	if !errors.As(err, &me) || me.File != "migrations/2_b.rollback.sql" || me.Line != 2 || me.Col != 1 || me.Direction != DirectionDown {
		t.Fatalf("Down = %v", err)
	}
	if !tableExists(t, conn, "b") || !reflect.DeepEqual(ledgerVersions(t, conn), []int64{1, 2}) {
		t.Fatal("failed rollback left a trace")
	}
}

func TestOutOfOrder(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	if _, err := newMigrator(t, conn, load(t, map[string]string{"1_a.sql": "", "3_c.sql": ""})).Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	migs := load(t, map[string]string{"1_a.sql": "", "2_b.sql": "", "3_c.sql": ""})
	_, err := newMigrator(t, conn, migs).Up(ctx, 0)
	var oe *OutOfOrderError
	if !errors.As(err, &oe) || !reflect.DeepEqual(oe.Versions, []int64{2}) || exitcode.Of(err) != exitcode.Check {
		t.Fatalf("Up = %v", err)
	}
	res, err := newMigrator(t, conn, migs, WithAllowOutOfOrder(true)).Up(ctx, 0)
	if err != nil || !reflect.DeepEqual(versions(res), []int64{2}) {
		t.Fatalf("Up allowing out of order = %v, %v", versions(res), err)
	}
}

func TestNoTransactionConcurrentIndex(t *testing.T) {
	ctx := context.Background()
	dbURL := freshDB(t)
	conn := connect(t, dbURL)
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_t.sql":            "create table t (a int);\ninsert into t select generate_series(1, 50000);\n",
		"2_idx.sql":          "-- poststack:no-transaction\ncreate index concurrently t_a on t (a);\ncreate index concurrently t_a2 on t ((a * 2));\n",
		"2_idx.rollback.sql": "-- poststack:no-transaction\ndrop index concurrently t_a;\ndrop index concurrently t_a2;\n",
	}))
	if _, err := m.Up(ctx, 0); err != nil {
		t.Fatalf("Up: %v", err)
	}
	var valid int
	if err := conn.QueryRow(ctx, "select count(*) from pg_index where indrelid = 't'::regclass and indisvalid").Scan(&valid); err != nil || valid != 2 {
		t.Fatalf("valid indexes %d, %v", valid, err)
	}
	var lt string
	if err := conn.QueryRow(ctx, "show lock_timeout").Scan(&lt); err != nil || lt != "0" {
		t.Errorf("lock_timeout not restored: %q %v", lt, err)
	}
	if _, err := m.Down(ctx, Steps(1)); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if tableExists(t, conn, "t_a") || !reflect.DeepEqual(ledgerVersions(t, conn), []int64{1}) {
		t.Fatal("rollback of the no-transaction migration did not happen")
	}
}

// holdLock takes the migrator's advisory lock on another connection.
func holdLock(t *testing.T, dbURL string, m *Migrator) (*pgx.Conn, int64) {
	t.Helper()
	ctx := context.Background()
	key, err := m.LockKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	other := connect(t, dbURL)
	if _, err := other.Exec(ctx, "select pg_advisory_lock($1)", key); err != nil {
		t.Fatal(err)
	}
	return other, key
}

func TestLockTimeout(t *testing.T) {
	ctx := context.Background()
	dbURL := freshDB(t)
	conn := connect(t, dbURL)
	var waits int
	m := newMigrator(t, conn, load(t, threeMigrations), WithLockTimeout(300*time.Millisecond), WithProgress(func(pe progress.Event) {
		e := pe.Data.(Event)
		if e.Kind == EventLockWait {
			waits++
		}
	}))
	other, key := holdLock(t, dbURL, m)
	start := time.Now()
	_, err := m.Up(ctx, 0)
	elapsed := time.Since(start)
	var le *LockTimeoutError
	if !errors.As(err, &le) || exitcode.Of(err) != exitcode.Timeout {
		t.Fatalf("Up = %v, want *LockTimeoutError", err)
	}
	if elapsed < 300*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("gave up after %s, want about 300ms", elapsed)
	}
	if waits != 1 || le.Key != key || !reflect.DeepEqual(le.Holders, []int32{int32(other.PgConn().PID())}) {
		t.Errorf("waits %d, error %+v (other pid %d)", waits, le, other.PgConn().PID())
	}
	if tableExists(t, conn, "users") || tableExists(t, conn, "poststack.schema_migrations") {
		t.Error("Up changed something without the lock")
	}
	// Once the lock is free, the same migrator proceeds.
	if _, err := other.Exec(ctx, "select pg_advisory_unlock($1)", key); err != nil {
		t.Fatal(err)
	}
	if res, err := m.Up(ctx, 0); err != nil || len(res) != 3 {
		t.Fatalf("Up after unlock = %v, %v", res, err)
	}
}

func TestNothingPendingTakesNoLock(t *testing.T) {
	ctx := context.Background()
	dbURL := freshDB(t)
	conn := connect(t, dbURL)
	migs := load(t, threeMigrations)
	if _, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	m := newMigrator(t, conn, migs, WithLockTimeout(time.Hour))
	holdLock(t, dbURL, m)
	done := make(chan error, 1)
	go func() {
		res, err := m.Up(ctx, 0)
		if err == nil && len(res) != 0 {
			err = fmt.Errorf("applied %d", len(res))
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Up with nothing pending waited for the lock")
	}
	var held bool
	if err := conn.QueryRow(ctx, "select count(*) > 0 from pg_locks where locktype = 'advisory' and pid = pg_backend_pid()").Scan(&held); err != nil || held {
		t.Errorf("this session holds an advisory lock: %v %v", held, err)
	}
}

func TestCancelRollsBackRunningMigration(t *testing.T) {
	dbURL := freshDB(t)
	conn := connect(t, dbURL)
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_a.sql":    "create table a ();",
		"2_slow.sql": "create table slow ();\nselect pg_sleep(20);\n",
		"3_c.sql":    "create table c ();",
	}))
	// One watching connection, opened here: the watcher goroutine must not
	// call t.Fatal, and it polls on this connection rather than opening one
	// per poll. A watcher error cancels Up too and is reported first.
	watch := connect(t, dbURL)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	watched := make(chan error, 1)
	go func() {
		watched <- func() error {
			defer cancel()
			// Cancel while 2_slow sleeps: a's transaction is long done by then.
			for {
				var n int
				err := watch.QueryRow(ctx, "select count(*) from pg_stat_activity where query like '%pg_sleep(20)%' and state = 'active' and pid <> pg_backend_pid()").Scan(&n)
				switch {
				case ctx.Err() != nil:
					return nil
				case err != nil:
					return err
				case n > 0:
					return nil
				}
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}()
	start := time.Now()
	res, err := m.Up(ctx, 0)
	cancel()
	if werr := <-watched; werr != nil {
		t.Fatalf("watching for the sleeping migration: %v", werr)
	}
	if !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Interrupted {
		t.Fatalf("Up = %v, want context.Canceled", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
	if !reflect.DeepEqual(versions(res), []int64{1}) {
		t.Errorf("applied %v, want [1]", versions(res))
	}
	bg := context.Background()
	if conn.IsClosed() || conn.PgConn().TxStatus() != 'I' {
		t.Fatal("connection not left usable")
	}
	if tableExists(t, conn, "slow") || tableExists(t, conn, "c") || !reflect.DeepEqual(ledgerVersions(t, conn), []int64{1}) {
		t.Fatal("the cancelled migration left a trace")
	}
	key, _ := m.LockKey(bg)
	var free bool
	other := connect(t, dbURL)
	if err := other.QueryRow(bg, "select pg_try_advisory_lock($1)", key).Scan(&free); err != nil || !free {
		t.Errorf("lock not released after cancel: %v %v", free, err)
	}
}

func TestConcurrentRunners(t *testing.T) {
	dbURL := freshDB(t)
	set := map[string]string{}
	for i := 1; i <= 50; i++ {
		set[fmt.Sprintf("%04d_t%d.sql", i, i)] = fmt.Sprintf("create table t%d (id int primary key);\ninsert into t%d values (1);\n", i, i)
	}
	set["0025_t25.sql"] = "-- poststack:no-transaction\ncreate table t25 (id int);\ncreate index concurrently t25_id on t25 (id);\n"
	migs := load(t, set)
	const runners = 8
	conns := make([]*pgx.Conn, runners)
	for i := range conns {
		conns[i] = connect(t, dbURL)
	}
	var wg sync.WaitGroup
	counts := make([]int, runners)
	errs := make([]error, runners)
	for i := range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := New(conns[i], migs, WithLockTimeout(2*time.Minute))
			if err != nil {
				errs[i] = err
				return
			}
			res, err := m.Up(context.Background(), 0)
			counts[i], errs[i] = len(res), err
		}()
	}
	wg.Wait()
	total := 0
	for i := range runners {
		if errs[i] != nil {
			t.Errorf("runner %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	if total != 50 {
		t.Errorf("applied %d migrations in total, want 50 (counts %v)", total, counts)
	}
	if vs := ledgerVersions(t, conns[0]); len(vs) != 50 {
		t.Errorf("ledger has %d rows", len(vs))
	}
}

func TestCreateSchemaAndCustomLedger(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, threeMigrations), WithSchema("My Schema"), WithTable("Ledger"))
	for range 2 {
		if err := m.CreateSchema(ctx); err != nil {
			t.Fatalf("CreateSchema: %v", err)
		}
	}
	if !tableExists(t, conn, `"My Schema"."Ledger"`) {
		t.Fatal("ledger not created with quoted identifiers")
	}
	if _, err := m.Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, `select count(*) from "My Schema"."Ledger"`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("rows %d, %v", n, err)
	}
}

func TestEmptyAndCommentOnlyMigrations(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	m := newMigrator(t, conn, load(t, map[string]string{
		"1_empty.sql":    "",
		"2_comment.sql":  "-- nothing here",
		"3_unclosed.sql": "select 1; /* not closed",
		"4_after.sql":    "create table after ();",
	}))
	_, err := m.Up(ctx, 0)
	var me *MigrationError
	if !errors.As(err, &me) || me.File != "migrations/3_unclosed.sql" || me.Line != 1 || me.Col != 11 {
		t.Fatalf("Up = %v", err)
	}
	if !reflect.DeepEqual(ledgerVersions(t, conn), []int64{1, 2}) {
		t.Fatalf("ledger = %v", ledgerVersions(t, conn))
	}
}
