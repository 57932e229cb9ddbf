// Command migratebench measures ps-migrate in one run against the floor of
// one psql session, and prints ratios (issue 3's targets):
//   - 500 small migrations (table + index + 3 rows each) applied by
//     `ps-migrate up`, against one `psql` session running the same files each
//     in BEGIN/COMMIT (target ≤ 1.10×);
//   - a no-op `ps-migrate up` with 5,000 applied (target ≤ 50 ms wall);
//   - planning 10,000 files (5,000 migrations and their rollbacks) against
//     an empty database, `ps-migrate up --dry-run` (target ≤ 200 ms).
//
// Usage: go run ./bench/migratebench -ps-migrate bin/ps-migrate [-admin URL]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "migratebench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("ps-migrate", "bin/ps-migrate", "ps-migrate binary to measure")
	adminDefault := os.Getenv("POSTSTACK_TEST_DATABASE_URL")
	if adminDefault == "" {
		adminDefault = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	admin := flag.String("admin", adminDefault, "a superuser URL; the benchmark creates and drops its own databases")
	rounds := flag.Int("rounds", 3, "rounds of the 500-migration comparison; the best of each side is kept")
	flag.Parse()
	ctx := context.Background()
	psql, err := exec.LookPath("psql")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "migratebench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	// ps-migrate keeps a per-directory cache under XDG_CACHE_HOME; keep
	// this run's with its files, so that repeated runs leave nothing behind.
	os.Setenv("XDG_CACHE_HOME", filepath.Join(work, "cache"))

	small := filepath.Join(work, "small")
	if err := generate(small, 500); err != nil {
		return err
	}
	var floor, ours []time.Duration
	for r := range *rounds {
		for _, side := range []string{"psql", "ps-migrate"} {
			db, drop, err := createDB(ctx, *admin, fmt.Sprintf("bench_%s_%d", strings.ReplaceAll(side, "-", "_"), r))
			if err != nil {
				return err
			}
			var d time.Duration
			if side == "psql" {
				d, err = psqlFloor(psql, db, small)
				floor = append(floor, d)
			} else {
				d, err = timeCmd(*bin, "up", "--database-url", db, "--migrations-path", small, "--log-dir", "", "--quiet")
				ours = append(ours, d)
			}
			if derr := drop(); err == nil {
				err = derr
			}
			if err != nil {
				return err
			}
		}
	}
	slices.Sort(floor)
	slices.Sort(ours)
	fmt.Printf("500 small migrations (table + index + 3 rows), best of %d:\n", *rounds)
	fmt.Printf("  psql, one session, BEGIN/COMMIT per file: %v\n", floor[0].Round(time.Millisecond))
	fmt.Printf("  ps-migrate up:                            %v\n", ours[0].Round(time.Millisecond))
	fmt.Printf("  ratio ps-migrate/psql: %.2fx  (target <= 1.10)\n", ours[0].Seconds()/floor[0].Seconds())

	big := filepath.Join(work, "big")
	if err := generate(big, 5000); err != nil {
		return err
	}
	db, drop, err := createDB(ctx, *admin, "bench_noop")
	if err != nil {
		return err
	}
	defer drop()
	if _, err := timeCmd(*bin, "up", "--database-url", db, "--migrations-path", big, "--log-dir", "", "--quiet"); err != nil {
		return err
	}
	noop, err := median(11, func() (time.Duration, error) {
		return timeCmd(*bin, "up", "--database-url", db, "--migrations-path", big, "--log-dir", "", "--quiet")
	})
	if err != nil {
		return err
	}
	fmt.Printf("no-op up with 5,000 applied: median %v over 11 runs (target <= 50ms)\n", noop.Round(100*time.Microsecond))

	// 10,000 files: 5,000 migrations and their rollbacks, none applied.
	empty, dropEmpty, err := createDB(ctx, *admin, "bench_plan")
	if err != nil {
		return err
	}
	defer dropEmpty()
	plan, err := median(5, func() (time.Duration, error) {
		return timeCmd(*bin, "up", "--dry-run", "--database-url", empty, "--migrations-path", big, "--log-dir", "", "--quiet")
	})
	if err != nil {
		return err
	}
	fmt.Printf("planning 10,000 files (up --dry-run): median %v over 5 runs (target <= 200ms)\n", plan.Round(100*time.Microsecond))
	return nil
}

// generate writes n small migrations: a table, an index and three rows.
func generate(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		sql := fmt.Sprintf("CREATE TABLE t_%05d (id int PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());\n"+
			"CREATE INDEX t_%05d_name ON t_%05d (name);\n"+
			"INSERT INTO t_%05d (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');\n", i, i, i, i)
		name := fmt.Sprintf("%05d_table_%d", i, i)
		if err := os.WriteFile(filepath.Join(dir, name+".sql"), []byte(sql), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name+".rollback.sql"), []byte(fmt.Sprintf("DROP TABLE t_%05d;\n", i)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// psqlFloor runs every file of dir in one psql session, each between
// BEGIN and COMMIT: what a hand-rolled migration script costs at least.
func psqlFloor(psql, db, dir string) (time.Duration, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*[0-9]_table_*[0-9].sql"))
	if err != nil {
		return 0, err
	}
	slices.Sort(files)
	var script strings.Builder
	for _, f := range files {
		fmt.Fprintf(&script, "BEGIN;\n\\i %s\nCOMMIT;\n", f)
	}
	path := filepath.Join(dir, "..", "floor.psql")
	if err := os.WriteFile(path, []byte(script.String()), 0o644); err != nil {
		return 0, err
	}
	return timeCmd(psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", path)
}

func timeCmd(name string, args ...string) (time.Duration, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = os.Environ()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return d, nil
}

func median(n int, f func() (time.Duration, error)) (time.Duration, error) {
	var ds []time.Duration
	for range n {
		d, err := f()
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}

// createDB creates a fresh database and returns its URL and a dropper.
func createDB(ctx context.Context, admin, name string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connect %s: %w", admin, err)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u, err := url.Parse(admin)
	if err != nil {
		conn.Close(ctx)
		return "", nil, err
	}
	u.Path = "/" + name
	drop := func() error {
		defer conn.Close(ctx)
		_, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		return err
	}
	return u.String(), drop, nil
}
