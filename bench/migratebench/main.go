// Command migratebench measures ps-migrate in one run against the floor of
// one psql session and against goose, and prints ratios (issues 3 and 10):
//   - 500 small migrations (table + index + 3 rows each) applied by
//     `ps-migrate up`, against one `psql` session running the same files each
//     in BEGIN/COMMIT (target ≤ 1.10×);
//   - a no-op `ps-migrate up` with 5,000 applied (target ≤ 50 ms wall), and,
//     with -goose, against a no-op `goose up` with the same 5,000 migrations
//     in goose's layout applied by goose, the two run alternately (target:
//     ps-migrate ≤ goose, although it checks every applied file's checksum
//     and goose checks none);
//   - planning 10,000 files (5,000 migrations and their rollbacks) against
//     an empty database, `ps-migrate up --dry-run` (target ≤ 200 ms).
//
// Each time is the wall time of one process, start to exit; "cpu" is the
// user and system time it used, which a busy machine disturbs less.
//
// With -baseline BIN (repeatable), another ps-migrate (an earlier build)
// takes turns with the first and psql in the 500-migration comparison, to
// tell a regression from the machine's load; -apply-only stops after it, -v
// prints every run.
//
// Usage: go run ./bench/migratebench -ps-migrate bin/ps-migrate [-goose bin/bench/goose]
// [-baseline BIN]... [-apply-only] [-rounds N] [-v] [-admin URL]
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
	rounds := flag.Int("rounds", 5, "rounds of the 500-migration comparison; the best of each side is kept")
	goose := flag.String("goose", "", "goose v3 binary to compare the no-op up with (bench/migrate.sh installs one)")
	noopRuns := flag.Int("noop-runs", 21, "runs of each side of the no-op comparison")
	var baselines []string
	flag.Func("baseline", "another ps-migrate binary (an earlier build) that takes turns with -ps-migrate in the 500-migration comparison; may be repeated", func(v string) error {
		abs, err := filepath.Abs(v)
		baselines = append(baselines, abs)
		return err
	})
	applyOnly := flag.Bool("apply-only", false, "run only the 500-migration comparison")
	verbose := flag.Bool("v", false, "print every run of the 500-migration comparison")
	flag.Parse()
	ctx := context.Background()
	// The no-op runs start in a directory of their own: the binaries are named absolutely.
	for _, p := range []*string{bin, goose} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}
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
	// The sides run in turn, each on a fresh database, their order rotated
	// every round: a change in the machine's load hits every side alike.
	// Each binary keeps its own file cache: two builds may not agree on its format.
	apply := []side{{name: "psql"}, {name: "ps-migrate", bin: *bin}}
	for i, b := range baselines {
		name := fmt.Sprintf("baseline%d", i+1)
		apply = append(apply, side{name: name, bin: b, env: []string{"XDG_CACHE_HOME=" + filepath.Join(work, "cache-"+name)}})
	}
	// The databases are dropped after the last round, not after each run: ext4 skips the inodes
	// of files deleted in the last seconds when it allocates new ones, so a run just after a
	// drop (thousands of files) took 3-4 times as long as one after a pause (measured:
	// psql 3.7-5.8 s against 1.3-1.7 s), whichever side it was.
	var drops []func() error
	dropAll := func() error {
		var first error
		for _, drop := range drops {
			if err := drop(); first == nil {
				first = err
			}
		}
		drops = nil
		return first
	}
	defer dropAll()
	for r := range *rounds {
		for k := range apply {
			s := &apply[(k+r)%len(apply)]
			db, drop, err := createDB(ctx, *admin, fmt.Sprintf("bench_%s_%d", strings.ReplaceAll(s.name, "-", "_"), r))
			if err != nil {
				return err
			}
			drops = append(drops, drop)
			var wall, cpu time.Duration
			if s.bin == "" {
				wall, cpu, err = psqlFloor(work, psql, db, small)
			} else {
				wall, cpu, err = runCmd(work, s.env, s.bin, "up", "--database-url", db, "--migrations-path", small, "--log-dir", "", "--quiet")
			}
			s.wall, s.cpu = append(s.wall, wall), append(s.cpu, cpu)
			if err != nil {
				return err
			}
			if *verbose {
				fmt.Fprintf(os.Stderr, "round %d %-11s wall %v cpu %v\n", r, s.name, wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
			}
		}
	}
	if err := dropAll(); err != nil {
		return err
	}
	floor, ours := slices.Min(apply[0].wall), slices.Min(apply[1].wall)
	fmt.Printf("500 small migrations (table + index + 3 rows), best of %d:\n", *rounds)
	fmt.Printf("  psql, one session, BEGIN/COMMIT per file: %v\n", floor.Round(time.Millisecond))
	fmt.Printf("  ps-migrate up:                            %v\n", ours.Round(time.Millisecond))
	if len(baselines) > 0 {
		fmt.Printf("  every side, %d runs taking turns; ratios to psql of the best, and paired:\n", *rounds)
		for _, s := range apply {
			fmt.Printf("    %-11s best %7v  median %7v  cpu median %6v  ratio best %.2fx  paired %.2fx  %s\n", s.name+":",
				slices.Min(s.wall).Round(time.Millisecond), mid(s.wall).Round(time.Millisecond), mid(s.cpu).Round(time.Millisecond),
				slices.Min(s.wall).Seconds()/floor.Seconds(), paired(s, apply[0]), s.bin)
		}
	}
	fmt.Printf("  ratio ps-migrate/psql: %.2fx  (target <= 1.10)\n", ours.Seconds()/floor.Seconds())
	// On a shared machine the best of a few runs can come from a quiet moment on one side only.
	fmt.Printf("  paired ratio (median over the rounds of ps-migrate/psql in one round): %.2fx\n", paired(apply[1], apply[0]))
	if *applyOnly {
		return nil
	}

	big := filepath.Join(work, "big")
	if err := generate(big, 5000); err != nil {
		return err
	}
	db, drop, err := createDB(ctx, *admin, "bench_noop")
	if err != nil {
		return err
	}
	defer drop()
	psUp := []string{"up", "--database-url", db, "--migrations-path", big, "--log-dir", "", "--quiet"}
	if _, err := timeCmd(*bin, psUp...); err != nil {
		return err
	}
	sides := []side{{name: "ps-migrate up", bin: *bin, args: psUp}}
	if *goose != "" {
		gdir := filepath.Join(work, "goose")
		if err := generateGoose(gdir, 5000); err != nil {
			return err
		}
		gdb, gdrop, err := createDB(ctx, *admin, "bench_noop_goose")
		if err != nil {
			return err
		}
		defer gdrop()
		gUp := []string{"-dir", gdir, "postgres", gdb, "up"}
		if _, err := timeCmd(*goose, gUp...); err != nil {
			return err
		}
		sides = append(sides, side{name: "goose up", bin: *goose, args: gUp})
	}
	// Alternating runs: a change in the machine's load hits both sides alike.
	for range *noopRuns {
		for i := range sides {
			wall, cpu, err := runCmd(work, nil, sides[i].bin, sides[i].args...)
			if err != nil {
				return err
			}
			sides[i].wall = append(sides[i].wall, wall)
			sides[i].cpu = append(sides[i].cpu, cpu)
		}
	}
	fmt.Printf("no-op up with 5,000 applied, median of %d runs each:\n", *noopRuns)
	for i := range sides {
		fmt.Printf("  %-14s wall %8v  cpu %8v\n", sides[i].name+":", mid(sides[i].wall).Round(100*time.Microsecond), mid(sides[i].cpu).Round(100*time.Microsecond))
	}
	fmt.Printf("  target: ps-migrate wall <= 50ms\n")
	if len(sides) == 2 {
		fmt.Printf("  ratio ps-migrate/goose: wall %.2fx, cpu %.2fx  (target <= 1.00)\n",
			mid(sides[0].wall).Seconds()/mid(sides[1].wall).Seconds(), mid(sides[0].cpu).Seconds()/mid(sides[1].cpu).Seconds())
	}

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

// generateGoose writes the migrations of generate in goose's layout: one file
// per version, "-- +goose Up" and "-- +goose Down" sections.
func generateGoose(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		sql := fmt.Sprintf("-- +goose Up\n"+
			"CREATE TABLE t_%05d (id int PRIMARY KEY, name text NOT NULL, created timestamptz DEFAULT now());\n"+
			"CREATE INDEX t_%05d_name ON t_%05d (name);\n"+
			"INSERT INTO t_%05d (id, name) VALUES (1, 'a'), (2, 'b'), (3, 'c');\n"+
			"\n-- +goose Down\nDROP TABLE t_%05d;\n", i, i, i, i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%05d_table_%d.sql", i, i)), []byte(sql), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// side is one command of the no-op comparison and its times.
type side struct {
	name      string
	bin       string
	args      []string
	env       []string // added to the environment
	wall, cpu []time.Duration
}

// runCmd runs a command in dir (where neither tool finds a project's
// configuration or .env file) and returns its wall time and the CPU time
// (user and system) it used; env is added to the environment.
func runCmd(dir string, env []string, name string, args ...string) (wall, cpu time.Duration, err error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	wall = time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// paired is the median over the rounds of s's time over floor's in the same round, where
// the sides ran in turn: the load a round ran under cancels out.
func paired(s, floor side) float64 {
	rs := make([]float64, len(s.wall))
	for r := range s.wall {
		rs[r] = s.wall[r].Seconds() / floor.wall[r].Seconds()
	}
	slices.Sort(rs)
	return rs[len(rs)/2]
}

// mid is the median of ds.
func mid(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// psqlFloor runs every file of dir in one psql session, each between
// BEGIN and COMMIT: what a hand-rolled migration script costs at least.
func psqlFloor(work, psql, db, dir string) (wall, cpu time.Duration, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*[0-9]_table_*[0-9].sql"))
	if err != nil {
		return 0, 0, err
	}
	slices.Sort(files)
	var script strings.Builder
	for _, f := range files {
		fmt.Fprintf(&script, "BEGIN;\n\\i %s\nCOMMIT;\n", f)
	}
	path := filepath.Join(dir, "..", "floor.psql")
	if err := os.WriteFile(path, []byte(script.String()), 0o644); err != nil {
		return 0, 0, err
	}
	return runCmd(work, nil, psql, "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", path)
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
