// Package pgtest gives each Go test a PostgreSQL database of its own, migrated, in milliseconds.
//
//	func TestOrders(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.NewPool(t, pgtest.WithMigrations("../../migrations"))
//		…
//	}
//
// The migrations run once per migration set into a template database named after their
// checksums (so an edited file builds a new template); each test gets `CREATE DATABASE …
// TEMPLATE` of it, taken from a few clones prepared ahead in the background, and the database
// is dropped when the test ends — or kept, with its name logged, when the test failed and
// POSTSTACK_KEEP_FAILED=1.
//
// The server is the one of POSTSTACK_TEST_DATABASE_URL (or WithURL), which parallel test
// binaries may share: an advisory lock keeps them from building the same template twice, and
// each process's databases carry an owner id whose lock tells the next process which leftovers
// belong to dead processes. Without a URL, pgtest starts a throwaway server once per test
// binary through pkg/ephemeral. A TestMain that calls Run drops the clones still prepared and
// stops that server when the tests are done; without it the leftovers are swept by the next
// run and a native server dies with the test binary.
//
// Where the server comes from (the databases, templates and clones are the same on each):
//   - URL: POSTSTACK_TEST_DATABASE_URL or WithURL, a server someone else runs (CI's service
//     container, `ps-env`, the Action's ephemeral database); Open for a Server of your own.
//   - native: WithProvider(ephemeral.Native), the host's initdb and postgres, the default when
//     they are installed; the fastest start.
//   - container: WithProvider(ephemeral.Container) with WithImage, a container run on podman
//     or docker through the engine's CLI (pkg/engine).
//   - testcontainers-go: package pgtest/pgtesttc, for suites that already use it:
//     pgtesttc.Start runs the postgres module's container, pgtesttc.FromContainer takes one the
//     test already runs; only the test binaries that import it link testcontainers-go.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Timeouts of the test helpers: building a template may run many migrations and start a
// server; a cleanup should never hang a test binary.
const (
	setupTimeout   = 5 * time.Minute
	cleanupTimeout = time.Minute
)

// servers is the one piece of package state: New must find the Server of its test binary from
// a testing.TB alone, and a Server per test would rebuild the template and restart the server
// for every test, which is exactly the cost pgtest exists to avoid. It is keyed by admin URL
// (or provider and image), only ever grows, and Run closes what it holds. Code that can pass a
// *Server around should use Open or Start and Server.New instead.
var servers = struct {
	mu sync.Mutex
	m  map[string]*serverEntry
}{m: map[string]*serverEntry{}}

type serverEntry struct {
	once sync.Once
	srv  *Server
	err  error
}

// New returns the URL of a database of t's own: a clone of the template of the migrations that
// opts name (none: an empty database), on the server of WithURL, else POSTSTACK_TEST_DATABASE_URL,
// else a server started once per test binary. The database is dropped at t's cleanup.
func New(t testing.TB, opts ...Option) string {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := shared(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return srv.newFor(t, cfg)
}

// NewPool is New as a pgxpool.Pool, closed at t's cleanup before the database is dropped.
func NewPool(t testing.TB, opts ...Option) *pgxpool.Pool {
	t.Helper()
	return poolFor(t, New(t, opts...))
}

// New is the package-level New on this server; the server-level options are ignored.
func (s *Server) New(t testing.TB, opts ...Option) string {
	t.Helper()
	cfg, err := newConfig(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s.newFor(t, cfg)
}

// NewPool is the package-level NewPool on this server.
func (s *Server) NewPool(t testing.TB, opts ...Option) *pgxpool.Pool {
	t.Helper()
	return poolFor(t, s.New(t, opts...))
}

func poolFor(t testing.TB, dbURL string) *pgxpool.Pool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("pgtest: open a pool: %v", err)
	}
	// Registered after New's cleanup, so it runs first: the drop finds no session of ours.
	t.Cleanup(pool.Close)
	return pool
}

func (s *Server) newFor(t testing.TB, cfg *config) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	db, err := s.database(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release(t, db, cfg.getenv) })
	return db.URL
}

// release drops a test's database, or keeps it when the test failed and the user asked to.
func release(t testing.TB, db *Database, getenv func(string) string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if t.Failed() && getenv(KeepFailedEnv) == "1" {
		if err := db.Keep(ctx, t.Name()); err != nil {
			t.Errorf("%v", err)
			return
		}
		t.Logf("pgtest: kept database %s of the failed test (%s=1) on %s; drop it with: DROP DATABASE %s",
			db.Name, KeepFailedEnv, redact(db.srv.adminURL), ident(db.Name))
		return
	}
	if err := db.Drop(ctx); err != nil {
		t.Errorf("%v", err)
	}
}

// shared returns the Server of this process for cfg's server, opening or starting it once.
func shared(cfg *config) (*Server, error) {
	adminURL := cfg.adminURL
	if adminURL == "" {
		adminURL = cfg.getenv(DatabaseURLEnv)
	}
	key := "url " + adminURL
	if adminURL == "" {
		key = "start " + cfg.provider + " " + cfg.image
	}
	servers.mu.Lock()
	e := servers.m[key]
	if e == nil {
		e = &serverEntry{}
		servers.m[key] = e
	}
	servers.mu.Unlock()
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		if adminURL != "" {
			e.srv, e.err = open(ctx, adminURL, cfg)
		} else {
			e.srv, e.err = start(ctx, cfg)
		}
	})
	return e.srv, e.err
}

// Run runs the tests of m and then closes the Servers that New and NewPool opened: the clones
// still prepared are dropped and a server pgtest started is stopped. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }
//
// Cleanup errors are not reported (pkg/ code does not print, and a test binary's result should
// not turn on them): the next run sweeps whatever is left. Call CloseAll to see them.
func Run(m interface{ Run() int }) int {
	code := m.Run()
	_ = CloseAll(context.Background())
	return code
}

// CloseAll closes every Server that New and NewPool opened in this process.
func CloseAll(ctx context.Context) error {
	servers.mu.Lock()
	entries := make([]*serverEntry, 0, len(servers.m))
	for k, e := range servers.m {
		entries = append(entries, e)
		delete(servers.m, k)
	}
	servers.mu.Unlock()
	var errs []error
	for _, e := range entries {
		e.once.Do(func() { e.err = errors.New("pgtest: closed") })
		if e.srv != nil {
			if err := e.srv.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("pgtest: close %s: %w", redact(e.srv.adminURL), err))
			}
		}
	}
	return errors.Join(errs...)
}
