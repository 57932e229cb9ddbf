package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
)

// writeMigrations writes n migrations into a new directory: migration i
// creates table t_<i> with rows rows and, when slow, sleeps a little so
// that a run lasts long enough to be interrupted.
func writeMigrations(t *testing.T, n, rows int, slow time.Duration) string {
	t.Helper()
	dir := t.TempDir()
	for i := 1; i <= n; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "-- Description: table %d\nCREATE TABLE t_%04d (id int PRIMARY KEY, v text NOT NULL);\n", i, i)
		fmt.Fprintf(&b, "CREATE INDEX t_%04d_v ON t_%04d (v);\n", i, i)
		fmt.Fprintf(&b, "INSERT INTO t_%04d SELECT g, 'row ' || g FROM generate_series(1, %d) g;\n", i, rows)
		if slow > 0 {
			fmt.Fprintf(&b, "SELECT pg_sleep(%g);\n", slow.Seconds())
		}
		name := fmt.Sprintf("%04d_table_%d", i, i)
		if err := os.WriteFile(filepath.Join(dir, name+".sql"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		rollback := fmt.Sprintf("DROP TABLE t_%04d;\n", i)
		if err := os.WriteFile(filepath.Join(dir, name+".rollback.sql"), []byte(rollback), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// ledgerAndTables returns the versions in the ledger and the versions whose
// table exists, both sorted.
func ledgerAndTables(t *testing.T, ctx context.Context, dbURL string) (ledger, tables []int) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "select to_regclass('poststack.schema_migrations') is not null").Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		rows, err := conn.Query(ctx, "select version from poststack.schema_migrations order by version")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v int
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			ledger = append(ledger, v)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := conn.Query(ctx, "select tablename from pg_tables where schemaname = 'public' and tablename ~ '^t_[0-9]+$' order by 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		v, err := strconv.Atoi(strings.TrimPrefix(name, "t_"))
		if err != nil {
			t.Fatal(err)
		}
		tables = append(tables, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ledger, tables
}

func upCommand(ctx context.Context, bin, dbURL, dir string, extra ...string) *exec.Cmd {
	args := append([]string{"up", "--database-url", dbURL, "--migrations-path", dir, "--log-dir", ""}, extra...)
	return exec.CommandContext(ctx, bin, args...)
}

// TestMigrateConcurrentUp starts 16 `ps-migrate up` processes together on
// 200 pending migrations: all must succeed and every migration must be
// applied exactly once (a second CREATE TABLE would fail its run).
func TestMigrateConcurrentUp(t *testing.T) {
	bin := binary(t, "ps-migrate")
	dbURL := testenv.Database(t)
	dir := writeMigrations(t, 200, 3, 0)
	ctx := testContext(t, 5*time.Minute)

	var wg sync.WaitGroup
	errs := make([]error, 16)
	outs := make([][]byte, 16)
	for i := range errs {
		wg.Go(func() {
			outs[i], errs[i] = upCommand(ctx, bin, dbURL, dir, "--lock-timeout", "4m").CombinedOutput()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("runner %d: %v\n%s", i, err, outs[i])
		}
	}
	ledger, tables := ledgerAndTables(t, ctx, dbURL)
	want := make([]int, 200)
	for i := range want {
		want[i] = i + 1
	}
	if !slices.Equal(ledger, want) || !slices.Equal(tables, want) {
		t.Fatalf("after 16 concurrent runs: ledger %v\ntables %v", ledger, tables)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows int
	if err := conn.QueryRow(ctx, "select count(*) from t_0200").Scan(&rows); err != nil || rows != 3 {
		t.Fatalf("t_0200 has %d rows (%v), want 3", rows, err)
	}
}

// TestMigrateSurvivesSIGKILL kills `ps-migrate up` at 20 random moments of
// a long run; after each kill the ledger and the schema must agree exactly
// (no table without its row, no row without its table), and a last run
// must finish the job.
func TestMigrateSurvivesSIGKILL(t *testing.T) {
	bin := binary(t, "ps-migrate")
	dbURL := testenv.Database(t)
	// Enough work that 20 runs killed after at most 270 ms each cannot finish it: at about 7 ms
	// a migration, 400 was just enough, and a fast machine ran out before the 20th kill.
	const n = 1000
	dir := writeMigrations(t, n, 20, 5*time.Millisecond)
	ctx := testContext(t, 10*time.Minute)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 2))

	progressed := 0
	for kill := 1; kill <= 20; kill++ {
		cmd := upCommand(ctx, bin, dbURL, dir, "--lock-timeout", "2m")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		delay := time.Duration(20+rng.IntN(250)) * time.Millisecond
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		select {
		case err := <-exited:
			t.Fatalf("kill %d: the run ended before it was killed (after < %v): %v; make the run longer", kill, delay, err)
		case <-time.After(delay):
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exited
		// The killed client's backend may still be finishing the
		// statement it was sent; what matters is that whatever it
		// commits, it commits whole. Check once it is gone.
		waitForIdle(t, ctx, dbURL)
		ledger, tables := ledgerAndTables(t, ctx, dbURL)
		if !slices.Equal(ledger, tables) {
			t.Fatalf("kill %d after %v: ledger and schema disagree:\nledger %v\ntables %v", kill, delay, ledger, tables)
		}
		progressed = len(ledger)
	}
	t.Logf("%d of %d migrations applied across 20 killed runs", progressed, n)
	if out, err := upCommand(ctx, bin, dbURL, dir).CombinedOutput(); err != nil {
		t.Fatalf("the run after the kills: %v\n%s", err, out)
	}
	ledger, tables := ledgerAndTables(t, ctx, dbURL)
	if len(ledger) != n || !slices.Equal(ledger, tables) {
		t.Fatalf("after the final run: %d in the ledger, %d tables", len(ledger), len(tables))
	}
}

// waitForIdle waits until no other session is connected to the database.
func waitForIdle(t *testing.T, ctx context.Context, dbURL string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for {
		var others int
		err := conn.QueryRow(ctx, "select count(*) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()").Scan(&others)
		if err != nil {
			t.Fatal(err)
		}
		if others == 0 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("sessions of killed runs never ended: %v", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
