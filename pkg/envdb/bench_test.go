package envdb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/envdb"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgnative"
)

// The figure, measured by bench/dbreset.sh: with 50 migrations, a reset (clone of the
// template) ≤ 100 ms and ≥ 10× faster than BenchmarkRemigrate, dropping the database and
// running the migrations again.

// benchWorld is an environment with 50 migrations of a table, an index and three rows each, on
// a server as durable as the environment's container (PostgreSQL's defaults: fsync,
// synchronous_commit and full_page_writes on), or the one POSTSTACK_TEST_DATABASE_URL names.
func benchWorld(b *testing.B) *world {
	admin := os.Getenv(testenv.DatabaseURLEnv)
	if admin == "" {
		admin = testenv.NativePostgres(b, pgnative.WithSettings(map[string]string{
			"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on",
		})).URL()
	}
	w := newWorldOn(b, admin, "")
	files := map[string]string{}
	for i := 1; i <= 50; i++ {
		files[fmt.Sprintf("migrations/%04d_t%d.sql", i+2, i)] = fmt.Sprintf(
			"create table t%[1]d (id int primary key, name text not null, created timestamptz default now());\n"+
				"create index t%[1]d_name on t%[1]d (name);\ninsert into t%[1]d (id, name) values (1, 'a'), (2, 'b'), (3, 'c');\n", i)
	}
	w.write(b, files)
	w.load(b)
	if n := len(w.target.Migrations); n != 52 {
		b.Fatalf("%d migrations", n)
	}
	return w
}

// BenchmarkReset is a reset between two tests: the time until the database is ready. The
// background clone of the next spare is waited for outside the timer, as the test that runs
// meanwhile would.
func BenchmarkReset(b *testing.B) {
	w := benchWorld(b)
	ctx := context.Background()
	if res := reset(b, w, envdb.ResetOptions{}); !res.Built {
		b.Fatal("the first reset did not build the template")
	}
	settle(b, w)
	for b.Loop() {
		res, err := envdb.Reset(ctx, w.target, envdb.ResetOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if !res.Swapped {
			b.Fatal("no spare was swapped in")
		}
		b.StopTimer()
		settle(b, w)
		b.StartTimer()
	}
}

// BenchmarkResetBackToBack is resets with nothing between them: each waits for the spare the
// previous one left to the server, so it costs a clone of the template.
func BenchmarkResetBackToBack(b *testing.B) {
	w := benchWorld(b)
	ctx := context.Background()
	reset(b, w, envdb.ResetOptions{})
	for b.Loop() {
		if _, err := envdb.Reset(ctx, w.target, envdb.ResetOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	settle(b, w)
}

func settle(b *testing.B, w *world) {
	if err := envdb.Settle(context.Background(), w.target); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRemigrate is the slow way: drop, create, migrate (and seed) the database.
func BenchmarkRemigrate(b *testing.B) {
	w := benchWorld(b)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, w.admin)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	db, owner := pgx.Identifier{w.target.Database}.Sanitize(), pgx.Identifier{w.target.Owner}.Sanitize()
	seed := filepath.Join(w.dir, "db", "seed.sql")
	for b.Loop() {
		for _, q := range []string{"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)", "CREATE DATABASE " + db + " OWNER " + owner} {
			if _, err := admin.Exec(ctx, q); err != nil {
				b.Fatal(err)
			}
		}
		conn, err := pgx.Connect(ctx, w.url(b))
		if err != nil {
			b.Fatal(err)
		}
		m, err := migrate.New(conn, w.target.Migrations)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := m.Up(ctx, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Exec(ctx, readFile(b, seed)); err != nil {
			b.Fatal(err)
		}
		conn.Close(ctx)
	}
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
