// Command pgtestbench measures how fast pkg/pgtest hands a test its migrated database, in one
// run, against issue 5's targets, with 50 migrations:
//   - from the pool (a clone prepared ahead): median ≤ 5 ms;
//   - a cold clone (pool size 0: CREATE DATABASE … TEMPLATE while the test waits): ≤ 60 ms;
//   - the baseline, running the 50 migrations into a new empty database: pgtest from the pool
//     must be ≥ 10× faster.
//
// Each measured call includes what a test pays: loading and checksumming the migration files.
//
// Usage: go run ./bench/pgtestbench [-admin URL] [-n 40]
// Without -admin (or POSTSTACK_TEST_DATABASE_URL) it starts a native throwaway server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "pgtestbench:", err)
		os.Exit(1)
	}
}

func run() error {
	admin := flag.String("admin", os.Getenv(pgtest.DatabaseURLEnv), "a superuser URL; empty: start a native throwaway server")
	provider := flag.String("provider", ephemeral.Native, "provider of the server started without -admin")
	n := flag.Int("n", 40, "samples per measurement (the baseline takes a quarter)")
	migrations := flag.Int("migrations", 50, "number of migrations")
	flag.Parse()
	ctx := context.Background()

	work, err := os.MkdirTemp("", "pgtestbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	dir := filepath.Join(work, "migrations")
	if err := generate(dir, *migrations); err != nil {
		return err
	}

	var srv *pgtest.Server
	if *admin == "" {
		began := time.Now()
		srv, err = pgtest.Start(ctx, pgtest.WithProvider(*provider))
		if err != nil {
			return err
		}
		fmt.Printf("started a %s server in %v\n", *provider, time.Since(began).Round(time.Millisecond))
	} else if srv, err = pgtest.Open(ctx, *admin); err != nil {
		return err
	}
	defer srv.Close(context.Background())

	// The first request builds the template: not measured, but shown.
	began := time.Now()
	db, err := srv.Database(ctx, pgtest.WithMigrations(dir), pgtest.WithPoolSize(0))
	if err != nil {
		return err
	}
	fmt.Printf("template with %d migrations built in %v\n", *migrations, time.Since(began).Round(time.Millisecond))
	if err := db.Drop(ctx); err != nil {
		return err
	}

	cold, err := sample(*n, 0, func() (time.Duration, *pgtest.Database, error) {
		began := time.Now()
		db, err := srv.Database(ctx, pgtest.WithMigrations(dir), pgtest.WithPoolSize(0))
		return time.Since(began), db, err
	})
	if err != nil {
		return fmt.Errorf("cold clone: %w", err)
	}

	// A second Server, so that this set has a pool (the first request fixes the pool size).
	pooled, err := pgtest.Open(ctx, srv.URL())
	if err != nil {
		return err
	}
	defer pooled.Close(context.Background())
	first, err := pooled.Database(ctx, pgtest.WithMigrations(dir))
	if err != nil {
		return err
	}
	if err := first.Drop(ctx); err != nil {
		return err
	}
	// Between samples, time for the filler to refill the one taken, as between tests.
	refill := max(3*median(cold), 100*time.Millisecond)
	fromPool, err := sample(*n, refill, func() (time.Duration, *pgtest.Database, error) {
		began := time.Now()
		db, err := pooled.Database(ctx, pgtest.WithMigrations(dir))
		return time.Since(began), db, err
	})
	if err != nil {
		return fmt.Errorf("from the pool: %w", err)
	}

	baseline, err := baselineSamples(ctx, srv.URL(), dir, max(*n/4, 3))
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}

	mp, mc, mb := median(fromPool), median(cold), median(baseline)
	fmt.Println()
	fmt.Printf("%-44s %12s %12s  %s\n", "measurement (median)", "result", "target", "")
	row := func(name string, got time.Duration, target string, ok bool) {
		fmt.Printf("%-44s %12s %12s  %s\n", name, fmtDur(got), target, verdict(ok))
	}
	row("pgtest from the pool", mp, "≤ 5ms", mp <= 5*time.Millisecond)
	row("pgtest cold clone (empty pool)", mc, "≤ 60ms", mc <= 60*time.Millisecond)
	row(fmt.Sprintf("baseline: %d migrations into an empty db", *migrations), mb, "", true)
	ratio := float64(mb) / float64(mp)
	fmt.Printf("%-44s %11.1f× %12s  %s\n", "baseline / pool", ratio, "≥ 10×", verdict(ratio >= 10))
	fmt.Printf("%-44s %11.1f× %12s\n", "baseline / cold clone", float64(mb)/float64(mc), "")
	if mp > 5*time.Millisecond || mc > 60*time.Millisecond || ratio < 10 {
		return fmt.Errorf("a target was missed")
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

// sample takes n measurements of get, dropping each database outside the measured time and
// pausing between them.
func sample(n int, pause time.Duration, get func() (time.Duration, *pgtest.Database, error)) ([]time.Duration, error) {
	ctx := context.Background()
	out := make([]time.Duration, 0, n)
	for range n {
		time.Sleep(pause)
		d, db, err := get()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
		if err := db.Drop(ctx); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// baselineSamples times what a test does without pgtest: create an empty database, connect,
// and apply the migrations.
func baselineSamples(ctx context.Context, adminURL, dir string, n int) ([]time.Duration, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	out := make([]time.Duration, 0, n)
	for i := range n {
		name := fmt.Sprintf("pgtestbench_baseline_%d_%d", os.Getpid(), i)
		began := time.Now()
		migs, err := migrate.LoadDir(dir)
		if err != nil {
			return nil, err
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return nil, err
		}
		dbCfg := cfg.Copy()
		dbCfg.Database = name
		dbConn, err := pgx.ConnectConfig(ctx, dbCfg)
		if err != nil {
			return nil, err
		}
		m, err := migrate.New(dbConn, migs)
		if err == nil {
			_, err = m.Up(ctx, 0)
		}
		out = append(out, time.Since(began))
		dbConn.Close(ctx)
		if _, derr := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); derr != nil && err == nil {
			err = derr
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// generate writes n migrations shaped like an application's: a table with a few columns, a
// foreign key to the previous one, an index and a few rows, each with its rollback.
func generate(dir string, n int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		up := fmt.Sprintf(`-- Description: table %[1]d
CREATE TABLE t%[1]d (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    payload jsonb%[2]s
);
CREATE INDEX t%[1]d_name ON t%[1]d (name);
INSERT INTO t%[1]d (name) VALUES ('a'), ('b'), ('c');
`, i, ref(i))
		down := fmt.Sprintf("DROP TABLE t%d;\n", i)
		base := fmt.Sprintf("%04d_table_%d", i, i)
		if err := os.WriteFile(filepath.Join(dir, base+".sql"), []byte(up), 0o644); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, base+".rollback.sql"), []byte(down), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func ref(i int) string {
	if i == 1 {
		return ""
	}
	return fmt.Sprintf(",\n    parent_id bigint REFERENCES t%d (id)", i-1)
}
