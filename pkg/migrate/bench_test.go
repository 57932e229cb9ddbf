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

// Workloads of the acceptance figures, measured by `go test -bench . ./pkg/migrate/`:
// BenchmarkApply500 also reports its ratio to the psql floor. bench/migrate.sh compares the
// CLI with other tools.

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

// BenchmarkApply500 applies 500 small migrations to a fresh database per iteration, and runs
// the same files through psql (BEGIN/\i/COMMIT each) as the floor: "psql-ns/op" is the floor's
// time and "x-psql" the engine's time over it.
func BenchmarkApply500(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	writeSet(b, dir, 500, "small")
	var engine, floor time.Duration
	for b.Loop() {
		b.StopTimer()
		db, floorDB := freshDB(b), freshDB(b)
		floor += psqlFloor(b, floorDB, dir)
		b.StartTimer()
		start := time.Now()
		if n, err := engineUp(ctx, db, dir); err != nil || n != 500 {
			b.Fatal(n, err)
		}
		engine += time.Since(start)
	}
	b.ReportMetric(float64(floor.Nanoseconds())/float64(b.N), "psql-ns/op")
	b.ReportMetric(float64(engine)/float64(floor), "x-psql")
}
