package migrate

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Workloads of the acceptance figures. TestBenchReport prints them as ratios from one
// run (POSTSTACK_BENCH=1 go test -run TestBenchReport -v ./pkg/migrate/); the Benchmark
// functions measure the same things for `go test -bench`.

// writeSet writes n migrations into dir: "small" ones (a table, an index, three rows: the
// apply workload) or "tiny" ones (a select).
func writeSet(tb testing.TB, dir string, n int, kind string) {
	tb.Helper()
	for i := 1; i <= n; i++ {
		var body string
		switch kind {
		case "small":
			body = fmt.Sprintf("-- Description: table %[1]d\ncreate table t%[1]d (id int primary key, name text not null, created timestamptz default now());\n"+
				"create index t%[1]d_name on t%[1]d (name);\ninsert into t%[1]d (id, name) values (1, 'a'), (2, 'b'), (3, 'c');\n", i)
		default:
			body = fmt.Sprintf("select %d;\n", i)
		}
		name := filepath.Join(dir, fmt.Sprintf("%05d_m%d.sql", i, i))
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
		if kind == "small" {
			rb := fmt.Sprintf("drop table t%d;\n", i)
			if err := os.WriteFile(strings.TrimSuffix(name, ".sql")+".rollback.sql", []byte(rb), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// engineUp is what `ps-migrate up` does: connect, load, migrate.
func engineUp(ctx context.Context, dbURL, dir string) (int, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	migs, err := LoadDir(dir)
	if err != nil {
		return 0, err
	}
	m, err := New(conn, migs)
	if err != nil {
		return 0, err
	}
	res, err := m.Up(ctx, 0)
	return len(res), err
}

// psqlFloor runs every forward file of dir in one psql session, each in BEGIN/COMMIT.
func psqlFloor(tb testing.TB, dbURL, dir string) time.Duration {
	tb.Helper()
	migs, err := LoadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var script strings.Builder
	for _, m := range migs {
		fmt.Fprintf(&script, "BEGIN;\n\\i %s\nCOMMIT;\n", m.Up.File)
	}
	path := filepath.Join(tb.TempDir(), "all.sql")
	if err := os.WriteFile(path, []byte(script.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	out, err := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", path, dbURL).CombinedOutput()
	if err != nil {
		tb.Fatalf("psql: %v: %s", err, out)
	}
	return time.Since(start)
}

func timeIt(tb testing.TB, f func() error) time.Duration {
	tb.Helper()
	start := time.Now()
	if err := f(); err != nil {
		tb.Fatal(err)
	}
	return time.Since(start)
}

func TestBenchReport(t *testing.T) {
	if os.Getenv("POSTSTACK_BENCH") == "" {
		t.Skip("set POSTSTACK_BENCH=1 to measure")
	}
	ctx := context.Background()
	const rounds = 3

	small := t.TempDir()
	writeSet(t, small, 500, "small")
	var best, floor time.Duration
	for range rounds {
		a, b := freshDB(t), freshDB(t)
		d := timeIt(t, func() error {
			n, err := engineUp(ctx, a, small)
			if err == nil && n != 500 {
				err = fmt.Errorf("applied %d", n)
			}
			return err
		})
		p := psqlFloor(t, b, small)
		if best == 0 || d < best {
			best = d
		}
		if floor == 0 || p < floor {
			floor = p
		}
	}
	fmt.Printf("apply 500 small migrations: engine %s, psql BEGIN/\\i/COMMIT %s, ratio %.2f (target <= 1.10)\n",
		best.Round(time.Millisecond), floor.Round(time.Millisecond), float64(best)/float64(floor))

	tiny := t.TempDir()
	writeSet(t, tiny, 5000, "tiny")
	db := freshDB(t)
	if n, err := engineUp(ctx, db, tiny); err != nil || n != 5000 {
		t.Fatalf("apply 5000: %d, %v", n, err)
	}
	conn := connect(t, db)
	var noop time.Duration
	for range 5 {
		d := timeIt(t, func() error {
			migs, err := LoadDir(tiny)
			if err != nil {
				return err
			}
			m, err := New(conn, migs)
			if err != nil {
				return err
			}
			res, err := m.Up(ctx, 0)
			if err == nil && len(res) != 0 {
				err = fmt.Errorf("applied %d", len(res))
			}
			return err
		})
		if noop == 0 || d < noop {
			noop = d
		}
	}
	fmt.Printf("no-op up with 5000 applied (Load+New+Up): %s (target <= 50ms)\n", noop.Round(100*time.Microsecond))

	big := t.TempDir()
	writeSet(t, big, 10000, "tiny")
	var load time.Duration
	for range 5 {
		d := timeIt(t, func() error { _, err := LoadDir(big); return err })
		if load == 0 || d < load {
			load = d
		}
	}
	fmt.Printf("Load of 10000 files: %s (target <= 200ms)\n", load.Round(100*time.Microsecond))
}

func BenchmarkLoad10000(b *testing.B) {
	dir := b.TempDir()
	writeSet(b, dir, 10000, "tiny")
	b.ResetTimer()
	for b.Loop() {
		if _, err := LoadDir(dir); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNoopUp5000(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	writeSet(b, dir, 5000, "tiny")
	db := freshDB(b)
	if _, err := engineUp(ctx, db, dir); err != nil {
		b.Fatal(err)
	}
	conn := connect(b, db)
	b.ResetTimer()
	for b.Loop() {
		migs, err := LoadDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		m, err := New(conn, migs)
		if err != nil {
			b.Fatal(err)
		}
		if res, err := m.Up(ctx, 0); err != nil || len(res) != 0 {
			b.Fatal(res, err)
		}
	}
}

func BenchmarkApply500(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	writeSet(b, dir, 500, "small")
	for b.Loop() {
		b.StopTimer()
		db := freshDB(b)
		b.StartTimer()
		if n, err := engineUp(ctx, db, dir); err != nil || n != 500 {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkPsqlFloor500(b *testing.B) {
	dir := b.TempDir()
	writeSet(b, dir, 500, "small")
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		db := freshDB(b)
		total += psqlFloor(b, db, dir)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "psql-ns/op")
}
