package pgtest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/pgtest"
	"github.com/poststack/poststack/pkg/progress"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func writeMigrations(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func connect(t testing.TB, dbURL string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// databaseExists asks the admin server whether name exists, and returns its comment.
func databaseExists(t testing.TB, adminURL, name string) (bool, string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), adminURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	var comment *string
	err = conn.QueryRow(context.Background(),
		"select shobj_description(oid, 'pg_database') from pg_database where datname = $1", name).Scan(&comment)
	if err == pgx.ErrNoRows {
		return false, ""
	}
	if err != nil {
		t.Fatal(err)
	}
	if comment == nil {
		return true, ""
	}
	return true, *comment
}

func templates(t testing.TB, adminURL string) []string {
	t.Helper()
	return databases(t, adminURL, `pgtest\_t\_%`)
}

func databases(t testing.TB, adminURL, like string) []string {
	t.Helper()
	conn := connect(t, adminURL)
	rows, err := conn.Query(context.Background(), `select datname from pg_database where datname like $1 order by 1`, like)
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

const itemsSQL = "CREATE TABLE items (id serial PRIMARY KEY, owner text NOT NULL);\n"

// Each of 200 parallel tests writes into its own migrated database and sees only its own row.
func TestParallelIsolation(t *testing.T) {
	admin := testenv.Postgres(t)
	dir := writeMigrations(t, map[string]string{
		"0001_items.sql":          itemsSQL,
		"0001_items.rollback.sql": "DROP TABLE items;\n",
		"0002_index.sql":          "CREATE INDEX items_owner ON items (owner);\n",
	})
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	t.Run("group", func(t *testing.T) {
		for i := range 200 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				dbURL := pgtest.New(t, pgtest.WithURL(admin), pgtest.WithMigrations(dir))
				conn := connect(t, dbURL)
				ctx := context.Background()
				var db string
				if err := conn.QueryRow(ctx, "select current_database()").Scan(&db); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				dup := names[db]
				names[db] = true
				mu.Unlock()
				if dup {
					t.Fatalf("database %s handed out twice", db)
				}
				var applied int
				if err := conn.QueryRow(ctx, "select count(*) from poststack.schema_migrations").Scan(&applied); err != nil {
					t.Fatalf("ledger: %v", err)
				}
				if applied != 2 {
					t.Fatalf("ledger has %d rows, want 2", applied)
				}
				if _, err := conn.Exec(ctx, "insert into items (owner) values ($1)", t.Name()); err != nil {
					t.Fatalf("insert: %v", err)
				}
				rows, err := conn.Query(ctx, "select owner from items")
				if err != nil {
					t.Fatal(err)
				}
				owners, err := pgx.CollectRows(rows, pgx.RowTo[string])
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(owners, []string{t.Name()}) {
					t.Fatalf("items = %q, want only this test's row", owners)
				}
			})
		}
	})
	if len(names) != 200 {
		t.Fatalf("%d distinct databases, want 200", len(names))
	}
	for db := range names {
		if ok, _ := databaseExists(t, admin, db); ok {
			t.Errorf("database %s still exists after its test", db)
		}
	}
}

func columns(t testing.TB, dbURL, table string) []string {
	t.Helper()
	conn := connect(t, dbURL)
	rows, err := conn.Query(context.Background(),
		"select column_name::text from information_schema.columns where table_name = $1 order by ordinal_position", table)
	if err != nil {
		t.Fatal(err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

// Editing a migration builds a new template; the outdated one goes once nothing uses it.
func TestChangedMigrationRebuildsTemplate(t *testing.T) {
	admin := testenv.Postgres(t)
	// Templates are named by content and outlive a run on a shared server: a comment unique to
	// this run makes both versions new to it (go test -count=2, POSTSTACK_TEST_DATABASE_URL).
	nonce := fmt.Sprintf("-- run %d\n", time.Now().UnixNano())
	dir := writeMigrations(t, map[string]string{"0001_items.sql": nonce + itemsSQL})
	before := templates(t, admin)
	var first []string
	t.Run("original", func(t *testing.T) {
		first = columns(t, pgtest.New(t, pgtest.WithURL(admin), pgtest.WithMigrations(dir)), "items")
	})
	if want := []string{"id", "owner"}; !slices.Equal(first, want) {
		t.Fatalf("columns = %q, want %q", first, want)
	}
	afterFirst := templates(t, admin)
	if len(afterFirst) != len(before)+1 {
		t.Fatalf("templates %q after the first build, had %q", afterFirst, before)
	}
	edited := nonce + "CREATE TABLE items (id serial PRIMARY KEY, owner text NOT NULL, note text);\n"
	if err := os.WriteFile(filepath.Join(dir, "0001_items.sql"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	var second []string
	t.Run("edited", func(t *testing.T) {
		second = columns(t, pgtest.New(t, pgtest.WithURL(admin), pgtest.WithMigrations(dir)), "items")
	})
	if want := []string{"id", "owner", "note"}; !slices.Equal(second, want) {
		t.Fatalf("columns after the edit = %q, want %q", second, want)
	}
	afterSecond := templates(t, admin)
	if len(afterSecond) != len(afterFirst) || slices.Equal(afterSecond, afterFirst) {
		t.Fatalf("templates %q after the edit, want the old one (of %q) replaced", afterSecond, afterFirst)
	}
}

// fakeT records what pgtest does with a test, so that a failed test can be simulated.
type fakeT struct {
	testing.TB
	name     string
	failed   bool
	cleanups []func()
	logs     []string
	errs     []string
}

func (f *fakeT) Helper()           {}
func (f *fakeT) Name() string      { return f.name }
func (f *fakeT) Failed() bool      { return f.failed }
func (f *fakeT) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }
func (f *fakeT) Logf(format string, args ...any) {
	f.logs = append(f.logs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Errorf(format string, args ...any) {
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeT) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (f *fakeT) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

func (f *fakeT) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

func TestKeepFailed(t *testing.T) {
	admin := testenv.Postgres(t)
	ctx := context.Background()
	srv, err := pgtest.Open(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(context.Background()); err != nil {
			t.Error(err)
		}
	})
	tests := []struct {
		name   string
		failed bool
		keep   string
		kept   bool
	}{
		{"passed", false, "1", false},
		{"failed without the variable", true, "", false},
		{"failed with another value", true, "yes", false},
		{"failed and kept", true, "1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{pgtest.KeepFailedEnv: tt.keep}
			ft := &fakeT{TB: t, name: "TestFake/" + tt.name}
			dbURL := srv.New(ft, pgtest.WithGetenv(func(k string) string { return env[k] }))
			conn := connect(t, dbURL)
			var db string
			if err := conn.QueryRow(ctx, "select current_database()").Scan(&db); err != nil {
				t.Fatal(err)
			}
			ft.failed = tt.failed
			ft.runCleanups()
			if len(ft.errs) > 0 {
				t.Fatalf("cleanup errors: %q", ft.errs)
			}
			exists, comment := databaseExists(t, admin, db)
			if exists != tt.kept {
				t.Fatalf("database %s exists = %v after cleanup, want %v", db, exists, tt.kept)
			}
			logged := strings.Contains(strings.Join(ft.logs, "\n"), db)
			if logged != tt.kept {
				t.Fatalf("name logged = %v, want %v; logs: %q", logged, tt.kept, ft.logs)
			}
			if tt.kept {
				if !strings.Contains(comment, ft.name) {
					t.Errorf("comment %q does not name the test", comment)
				}
				// A new process's sweep leaves a kept database alone.
				other, err := pgtest.Open(ctx, admin)
				if err != nil {
					t.Fatal(err)
				}
				if err := other.Close(ctx); err != nil {
					t.Fatal(err)
				}
				if ok, _ := databaseExists(t, admin, db); !ok {
					t.Fatalf("the sweep dropped the kept database %s", db)
				}
				conn.Close(ctx)
				if _, err := connect(t, admin).Exec(ctx, "DROP DATABASE "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)"); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// The databases of a process that ended without cleaning up are dropped by the next Open,
// which reports it through WithProgress; those of a live process are not.
func TestSweepDeadOwners(t *testing.T) {
	admin := testenv.Postgres(t)
	ctx := context.Background()
	dead, err := pgtest.Open(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	alive, err := pgtest.Open(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close(ctx)
	leftover, err := dead.Database(ctx, pgtest.WithPoolSize(0))
	if err != nil {
		t.Fatal(err)
	}
	inUse, err := alive.Database(ctx, pgtest.WithPoolSize(0))
	if err != nil {
		t.Fatal(err)
	}
	defer inUse.Drop(ctx)
	// Close releases the owner lock as a dead process's ended session would, and leaves the
	// database it handed out.
	if err := dead.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, _ := databaseExists(t, admin, leftover.Name); !ok {
		t.Fatalf("%s vanished before the sweep", leftover.Name)
	}
	var reported []string
	next, err := pgtest.Open(ctx, admin, pgtest.WithProgress(func(e progress.Event) {
		for _, a := range e.Attrs {
			if dbs, _ := a.Value.Any().([]string); e.Op == "pgtest" && e.Kind == progress.Info && a.Key == "databases" && slices.Contains(dbs, leftover.Name) {
				reported = append(reported, progress.Line(e))
			}
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close(ctx)
	if len(reported) != 1 || !strings.Contains(reported[0], "pgtest: dropped ") {
		t.Errorf("the sweep reported %q; want one Info event naming %s", reported, leftover.Name)
	}
	if ok, _ := databaseExists(t, admin, leftover.Name); ok {
		t.Errorf("the sweep left %s of a dead owner", leftover.Name)
	}
	if ok, _ := databaseExists(t, admin, inUse.Name); !ok {
		t.Errorf("the sweep dropped %s of a live owner", inUse.Name)
	}
}

// Two processes (two Servers) building the same template at once both succeed.
func TestConcurrentTemplateBuild(t *testing.T) {
	admin := testenv.Postgres(t)
	ctx := context.Background()
	fsys := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x int);\n")},
		"m/0002_b.sql": {Data: []byte("SELECT pg_sleep(0.2);\nCREATE TABLE b (y int);\n")},
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			srv, err := pgtest.Open(ctx, admin)
			if err != nil {
				errs[i] = err
				return
			}
			defer srv.Close(ctx)
			db, err := srv.Database(ctx, pgtest.WithMigrationsFS(fsys, "m"))
			if err != nil {
				errs[i] = err
				return
			}
			defer db.Drop(ctx)
			conn, err := pgx.Connect(ctx, db.URL)
			if err != nil {
				errs[i] = err
				return
			}
			defer conn.Close(ctx)
			_, errs[i] = conn.Exec(ctx, "insert into b values (1)")
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
}

func TestNewPoolAndEmptyDatabase(t *testing.T) {
	admin := testenv.Postgres(t)
	pool := pgtest.NewPool(t, pgtest.WithURL(admin))
	var tables int
	if err := pool.QueryRow(context.Background(),
		"select count(*) from pg_tables where schemaname not in ('pg_catalog', 'information_schema')").Scan(&tables); err != nil {
		t.Fatal(err)
	}
	if tables != 0 {
		t.Fatalf("an empty database has %d tables", tables)
	}
}

func TestBadMigrationFailsClearly(t *testing.T) {
	admin := testenv.Postgres(t)
	ctx := context.Background()
	srv, err := pgtest.Open(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close(ctx)
	dir := writeMigrations(t, map[string]string{"0001_bad.sql": "CREATE TABLE ok (x int);\nCREATE TABLE broken (;\n"})
	for range 2 { // the second time from the remembered failure
		_, err := srv.Database(ctx, pgtest.WithMigrations(dir))
		if err == nil || !strings.Contains(err.Error(), "0001_bad.sql") {
			t.Fatalf("err = %v, want one naming the file", err)
		}
	}
	if left := databases(t, admin, `pgtest\_b\_%`); len(left) > 0 {
		t.Errorf("half-built templates left behind: %q", left)
	}
}

func TestOptionsReject(t *testing.T) {
	tests := []struct {
		name string
		opt  pgtest.Option
	}{
		{"empty dir", pgtest.WithMigrations("")},
		{"nil fs", pgtest.WithMigrationsFS(nil, "x")},
		{"empty url", pgtest.WithURL("")},
		{"unknown provider", pgtest.WithProvider("vm")},
		{"negative pool", pgtest.WithPoolSize(-1)},
		{"huge pool", pgtest.WithPoolSize(1000)},
		{"empty ledger", pgtest.WithLedger("", "t")},
		{"nil getenv", pgtest.WithGetenv(nil)},
		{"empty image", pgtest.WithImage("")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := pgtest.Open(context.Background(), "postgres://127.0.0.1:1/x", tt.opt); err == nil || !strings.Contains(err.Error(), "pgtest: With") {
				t.Fatalf("err = %v, want the option's error", err)
			}
		})
	}
}

// Without a URL, New starts a server once for the test binary (pkg/ephemeral, native here)
// and reuses it; Run in TestMain stops it.
func TestDefaultServerStartedOnce(t *testing.T) {
	testenv.Postgres(t) // skips (or fails under CI) where the host has no server binaries
	noEnv := pgtest.WithGetenv(func(string) string { return "" })
	var hosts []string
	for range 2 {
		t.Run("", func(t *testing.T) {
			conn := connect(t, pgtest.New(t, noEnv, pgtest.WithProvider(ephemeral.Native)))
			hosts = append(hosts, conn.Config().Host+":"+fmt.Sprint(conn.Config().Port))
		})
	}
	if len(hosts) != 2 || hosts[0] != hosts[1] {
		t.Fatalf("servers %q, want one server for both tests", hosts)
	}
}
