package pgnative_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/pgnative"
	"github.com/poststack/poststack/pkg/progress"
)

// sharedCache is one data-directory cache for the whole test binary, so that only the first
// test pays for initdb; tests about the cache itself use their own.
var sharedCache string

func TestMain(m *testing.M) {
	if parent := os.Getenv(orphanEnv); parent != "" {
		orphan(parent)
		return
	}
	dir, err := os.MkdirTemp("", "pgnative-test-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sharedCache = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireBinaries skips (fails under CI) when the machine has no PostgreSQL server binaries.
func requireBinaries(t testing.TB) {
	t.Helper()
	testenv.PostgresBinaries(t)
}

// privateTempDir is a parent for server directories that the postgres user can traverse
// (t.TempDir is 0700 and owned by root), so that a test can see what Start leaves behind.
func privateTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "pgnt-")
	if err != nil {
		dir, err = os.MkdirTemp("/tmp", "pgnt-")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func start(t *testing.T, opts ...pgnative.Option) *pgnative.Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pgnative.Start(ctx, append([]pgnative.Option{pgnative.WithCacheDir(sharedCache)}, opts...)...)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	return srv
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(t *testing.T, conn *pgx.Conn, sql string, args ...any) string {
	t.Helper()
	var s string
	if err := conn.QueryRow(context.Background(), sql, args...).Scan(&s); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// leftovers lists processes working in, or started with, a path under dir.
func leftovers(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if strings.HasPrefix(cwd, dir) || strings.Contains(string(cmdline), dir) {
			found = append(found, fmt.Sprintf("pid %d cwd %s cmd %s", pid, cwd, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return found
}

// assertGone checks that nothing of a server remains: no postmaster, no process under its
// directory, no directory. Processes that were just killed may take a moment to be reaped.
func assertGone(t *testing.T, pid int, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var problems []string
		if pid != 0 {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				problems = append(problems, fmt.Sprintf("postmaster pid %d still exists (kill 0: %v)", pid, err))
			}
		}
		problems = append(problems, leftovers(dir)...)
		if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("%s still exists (%v)", dir, err))
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartConnectStopLeavesNothing(t *testing.T) {
	requireBinaries(t)
	ctx := context.Background()
	srv := start(t)
	pid, dir := srv.PID(), srv.Dir()
	if pid == 0 || dir == "" || srv.Port() == 0 {
		t.Fatalf("PID %d, Dir %q, Port %d: want all set", pid, dir, srv.Port())
	}
	if !strings.HasPrefix(srv.DataDir(), dir+string(filepath.Separator)) {
		t.Errorf("DataDir %s is not inside Dir %s", srv.DataDir(), dir)
	}
	if !strings.Contains(srv.URL(), srv.Password()) || !strings.Contains(srv.URL(), "sslmode=disable") ||
		!strings.Contains(srv.URL(), "127.0.0.1:"+strconv.Itoa(srv.Port())) {
		t.Errorf("URL %s lacks the password, address or sslmode", srv.URL())
	}

	conn := connect(t, srv.URL())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, name text); INSERT INTO t VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, conn, "SELECT name FROM t WHERE id = 1"); got != "one" {
		t.Errorf("select = %q, want one", got)
	}
	settings := map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_connections":    "200",
		"listen_addresses":   "127.0.0.1",
		"server_version":     srv.Version(),
		"TimeZone":           "UTC",
	}
	for name, want := range settings {
		if got := queryString(t, conn, "SELECT current_setting($1)", name); !strings.HasPrefix(got, want) || want == "" {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := queryString(t, conn, "SELECT current_user"); got != pgnative.Superuser {
		t.Errorf("current_user = %q", got)
	}
	if _, err := os.Stat(filepath.Join(srv.SocketDir(), ".s.PGSQL."+strconv.Itoa(srv.Port()))); err != nil {
		t.Errorf("unix socket not in the private directory: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("private directory mode: %v %v, want 0700", fi.Mode(), err)
	}

	// A wrong password is refused: the URL's password is what authenticates.
	bad := strings.Replace(srv.URL(), srv.Password(), "wrong", 1)
	if c, err := pgx.Connect(ctx, bad); err == nil {
		c.Close(ctx)
		t.Error("a wrong password was accepted")
	}

	conn.Close(ctx) // Stop must not wait for clients, but this one is ours
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertGone(t, pid, dir)
	if err := srv.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v, want nil (idempotent)", err)
	}
	if srv.PID() != 0 {
		t.Errorf("PID after Stop = %d, want 0", srv.PID())
	}
}

func TestStopWithOpenConnections(t *testing.T) {
	requireBinaries(t)
	srv := start(t)
	pid, dir := srv.PID(), srv.Dir()
	conn := connect(t, srv.URL())
	// An open transaction holding a lock must not delay Stop.
	if _, err := conn.Exec(context.Background(), "BEGIN; CREATE TABLE x (); LOCK x"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertGone(t, pid, dir)
	if err := conn.Ping(context.Background()); err == nil {
		t.Error("connection still works after Stop")
	}
}

func TestTwoServersAtOnce(t *testing.T) {
	requireBinaries(t)
	servers := make([]*pgnative.Server, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			servers[i], errs[i] = pgnative.Start(ctx, pgnative.WithCacheDir(sharedCache))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("server %d: %v", i, err)
		}
		srv := servers[i]
		t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	}
	a, b := servers[0], servers[1]
	if a.Port() == b.Port() || a.Dir() == b.Dir() || a.Password() == b.Password() {
		t.Fatalf("servers share port (%d, %d), dir (%s, %s) or password", a.Port(), b.Port(), a.Dir(), b.Dir())
	}
	ca, cb := connect(t, a.URL()), connect(t, b.URL())
	if _, err := ca.Exec(context.Background(), "CREATE TABLE only_in_a ()"); err != nil {
		t.Fatal(err)
	}
	if got := queryString(t, cb, "SELECT coalesce(to_regclass('only_in_a')::text, 'none')"); got != "none" {
		t.Errorf("server b sees server a's table: %s", got)
	}
	// Each server's password opens only that server.
	cross := strings.Replace(b.URL(), b.Password(), a.Password(), 1)
	if c, err := pgx.Connect(context.Background(), cross); err == nil {
		c.Close(context.Background())
		t.Error("server a's password opens server b")
	}
	for _, srv := range servers {
		pid, dir := srv.PID(), srv.Dir()
		if err := srv.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		assertGone(t, pid, dir)
	}
}

func TestCachedAndUncached(t *testing.T) {
	requireBinaries(t)
	cache := t.TempDir()
	entries := func() []string {
		des, err := os.ReadDir(cache)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names
	}
	tests := []struct {
		name        string
		opts        []pgnative.Option
		wantCached  bool
		wantEntries int
	}{
		{"uncached leaves the cache alone", []pgnative.Option{pgnative.WithoutCache()}, false, 0},
		{"first use fills the cache", []pgnative.Option{pgnative.WithCacheDir(cache)}, false, 1},
		{"second use copies from it", []pgnative.Option{pgnative.WithCacheDir(cache)}, true, 1},
		{"uncached still runs initdb", []pgnative.Option{pgnative.WithoutCache()}, false, 1},
	}
	var prevPassword string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			began := time.Now()
			var events []progress.Event
			srv, err := pgnative.Start(ctx, append(tc.opts, pgnative.WithProgress(func(e progress.Event) { events = append(events, e) }))...)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("Start took %v (cached %v)", time.Since(began), srv.Cached())
			defer srv.Stop(context.Background())
			if srv.Cached() != tc.wantCached {
				t.Errorf("Cached() = %v, want %v", srv.Cached(), tc.wantCached)
			}
			assertProgress(t, events, srv)
			if got := entries(); len(got) != tc.wantEntries {
				t.Errorf("cache holds %v, want %d entries", got, tc.wantEntries)
			}
			if srv.Version() == "" {
				t.Error("Version() is empty")
			}
			conn := connect(t, srv.URL())
			if got := queryString(t, conn, "SHOW server_version"); !strings.HasPrefix(got, srv.Version()) {
				t.Errorf("server_version %q, Version() %q", got, srv.Version())
			}
			// Servers made from one cache entry must not share a password.
			if srv.Password() == prevPassword {
				t.Error("password reused from the previous server")
			}
			prevPassword = srv.Password()
		})
	}
}

// assertProgress: a cold start reports initdb as a step, a cached one the
// copy; both report the postmaster's readiness with its port and
// directory, every event as Op "pgnative".
func assertProgress(t *testing.T, events []progress.Event, srv *pgnative.Server) {
	t.Helper()
	var lines []string
	var initdb, copied, ready bool
	for _, e := range events {
		lines = append(lines, progress.Line(e))
		switch {
		case e.Op != "pgnative":
			t.Errorf("event of op %q", e.Op)
		case e.Step == "initdb" && e.Kind == progress.Done && e.Elapsed > 0:
			initdb = true
		case e.Message == "data directory copied from the cache":
			copied = true
		case e.Message == "postgres accepts connections":
			ready = hasAttr(e, slog.Int("port", srv.Port())) && hasAttr(e, slog.String("dir", srv.Dir()))
		}
	}
	if initdb == srv.Cached() || copied != srv.Cached() || !ready {
		t.Errorf("cached %v: initdb step %v, copy %v, ready with port and dir %v; events:\n%s",
			srv.Cached(), initdb, copied, ready, strings.Join(lines, "\n"))
	}
}

func hasAttr(e progress.Event, want slog.Attr) bool {
	for _, a := range e.Attrs {
		if a.Equal(want) {
			return true
		}
	}
	return false
}

func TestStartErrors(t *testing.T) {
	requireBinaries(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	emptyBin := t.TempDir()

	tests := []struct {
		name      string
		opts      []pgnative.Option
		wantIs    error
		wantInErr []string
	}{
		{"bin dir without binaries", []pgnative.Option{pgnative.WithBinDir(emptyBin)}, pgnative.ErrNoBinaries,
			[]string{emptyBin, "initdb", "postgres"}},
		{"bin dir that does not exist", []pgnative.Option{pgnative.WithBinDir("/nonexistent/pg/bin")}, pgnative.ErrNoBinaries,
			[]string{"/nonexistent/pg/bin"}},
		{"fixed port taken", []pgnative.Option{pgnative.WithPort(busyPort)}, nil,
			[]string{"exited during startup", "server log", "Address already in use"}},
		{"setting the server rejects", []pgnative.Option{pgnative.WithSettings(map[string]string{"shared_buffers": "lots"})}, nil,
			[]string{"exited during startup", "server log", "shared_buffers"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := privateTempDir(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			opts := append([]pgnative.Option{pgnative.WithCacheDir(sharedCache), pgnative.WithTempDir(parent)}, tc.opts...)
			srv, err := pgnative.Start(ctx, opts...)
			if err == nil {
				srv.Stop(context.Background())
				t.Fatal("Start succeeded")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
			for _, want := range tc.wantInErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			assertEmpty(t, parent)
		})
	}
}

// assertEmpty checks that a failed or cancelled Start removed its directory and processes.
func assertEmpty(t *testing.T, parent string) {
	t.Helper()
	assertGone(t, 0, parent+"/pgnative-")
	des, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != 0 {
		t.Errorf("%s not empty after a failed Start: %v", parent, des)
	}
}

func TestCancelDuringStartCleansUp(t *testing.T) {
	requireBinaries(t)
	tests := []struct {
		name  string
		opts  []pgnative.Option
		delay time.Duration
	}{
		{"before anything", []pgnative.Option{pgnative.WithoutCache()}, 0},
		{"during initdb", []pgnative.Option{pgnative.WithoutCache()}, 150 * time.Millisecond},
		{"during copy", []pgnative.Option{pgnative.WithCacheDir(sharedCache)}, 10 * time.Millisecond},
		{"while the server starts", []pgnative.Option{pgnative.WithCacheDir(sharedCache)}, 120 * time.Millisecond},
	}
	warm(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := privateTempDir(t)
			ctx, cancel := context.WithCancel(context.Background())
			if tc.delay == 0 {
				cancel()
			} else {
				time.AfterFunc(tc.delay, cancel)
			}
			defer cancel()
			srv, err := pgnative.Start(ctx, append(tc.opts, pgnative.WithTempDir(parent))...)
			if err == nil {
				// The machine was faster than the delay; the cleanup check still applies.
				t.Logf("Start finished before the %v cancel", tc.delay)
				if err := srv.Stop(context.Background()); err != nil {
					t.Fatal(err)
				}
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("error %v, want context.Canceled", err)
			}
			assertEmpty(t, parent)
		})
	}
}

// orphanEnv makes the test binary start a server and exit without stopping it.
const orphanEnv = "PGNATIVE_TEST_ORPHAN_PARENT"

func orphan(parent string) {
	opts := []pgnative.Option{pgnative.WithTempDir(parent), pgnative.WithCacheDir(os.Getenv("PGNATIVE_TEST_CACHE"))}
	detach := os.Getenv("PGNATIVE_TEST_DETACH") != ""
	if detach {
		opts = append(opts, pgnative.WithDetach())
	}
	srv, err := pgnative.Start(context.Background(), opts...)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if detach {
		fmt.Println(srv.PID(), srv.Dir(), srv.URL())
		os.Exit(0)
	}
	fmt.Println(srv.PID(), srv.Dir())
	os.Exit(0) // no Stop: as if a test binary hit its timeout
}

func TestCreatorDiesWithoutStop(t *testing.T) {
	requireBinaries(t)
	warm(t)
	parent := privateTempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+parent, "PGNATIVE_TEST_CACHE="+sharedCache)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var pid int
	var dir string
	if _, err := fmt.Sscan(string(out), &pid, &dir); err != nil {
		t.Fatalf("helper printed %q: %v", out, err)
	}
	// The postmaster got Pdeathsig when its creator exited.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGQUIT)
			t.Fatalf("postmaster %d outlived its creator", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("the abandoned directory should still exist until a sweep: %v", err)
	}
	// The next Start in the same parent sweeps the abandoned directory.
	srv := start(t, pgnative.WithTempDir(parent))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("abandoned %s not swept: %v", dir, err)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	assertGone(t, pid, dir)
	assertEmpty(t, parent)
}

// warm fills the shared cache so that a test's timing is about copying, not initdb.
func warm(t *testing.T) {
	t.Helper()
	srv := start(t)
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestSettingsAreApplied(t *testing.T) {
	requireBinaries(t)
	srv := start(t, pgnative.WithSettings(map[string]string{
		"work_mem":         "7MB",
		"application_name": "it's quoted",
		"max_connections":  "50",
	}))
	conn := connect(t, srv.URL())
	for name, want := range map[string]string{"work_mem": "7MB", "application_name": "it's quoted", "max_connections": "50"} {
		got := queryString(t, conn, "SELECT setting FROM pg_file_settings WHERE name = $1 AND applied", name)
		if got != want {
			t.Errorf("%s = %q in postgresql.conf, want %q", name, got, want)
		}
	}
	if got := queryString(t, conn, "SHOW work_mem"); got != "7MB" {
		t.Errorf("work_mem = %q, want 7MB", got)
	}
}

func TestDatabaseURL(t *testing.T) {
	requireBinaries(t)
	srv := start(t)
	admin := connect(t, srv.URL())
	if _, err := admin.Exec(context.Background(), `CREATE DATABASE "with space"`); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, srv.DatabaseURL("with space"))
	if got := queryString(t, conn, "SELECT current_database()"); got != "with space" {
		t.Errorf("current_database = %q", got)
	}
}

func TestOptionsRejectNonsense(t *testing.T) {
	tests := []struct {
		name string
		opt  pgnative.Option
		want string
	}{
		{"empty bin dir", pgnative.WithBinDir(""), "WithBinDir"},
		{"port 0", pgnative.WithPort(0), "WithPort"},
		{"port too big", pgnative.WithPort(70000), "WithPort"},
		{"empty cache dir", pgnative.WithCacheDir(""), "WithoutCache"},
		{"empty temp dir", pgnative.WithTempDir(""), "WithTempDir"},
		{"reserved setting", pgnative.WithSettings(map[string]string{"port": "1"}), "WithPort"},
		{"reserved setting, other case", pgnative.WithSettings(map[string]string{"Listen_Addresses": "*"}), "127.0.0.1"},
		{"bad setting name", pgnative.WithSettings(map[string]string{"a b": "1"}), "not a setting name"},
		{"line break in value", pgnative.WithSettings(map[string]string{"work_mem": "1\nfsync=on"}), "line break"},
		{"nil log writer", pgnative.WithLogWriter(nil), "WithLogWriter"},
		{"nil getenv", pgnative.WithGetenv(nil), "WithGetenv"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			parent := privateTempDir(t)
			_, err := pgnative.Start(context.Background(), tc.opt, pgnative.WithTempDir(parent))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			assertEmpty(t, parent)
		})
	}
}

func TestLogWriterReceivesServerLog(t *testing.T) {
	requireBinaries(t)
	var buf syncBuffer
	srv := start(t, pgnative.WithLogWriter(&buf))
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); !strings.Contains(got, "database system is ready to accept connections") {
		t.Errorf("log writer got:\n%s", got)
	}
	if strings.Contains(buf.String(), srv.Password()) {
		t.Error("the server log contains the password")
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestTestenvNativePostgres(t *testing.T) {
	requireBinaries(t)
	var pid int
	var dir string
	t.Run("server for one test", func(t *testing.T) {
		srv := testenv.NativePostgres(t, pgnative.WithCacheDir(sharedCache))
		pid, dir = srv.PID(), srv.Dir()
		conn := connect(t, srv.URL())
		if got := queryString(t, conn, "SELECT 'ok'"); got != "ok" {
			t.Errorf("got %q", got)
		}
	})
	assertGone(t, pid, dir)
}

// BenchmarkStart measures Start with and without the data-directory cache, and reports Stop.
func BenchmarkStart(b *testing.B) {
	requireBinaries(b)
	cache := b.TempDir()
	variants := []struct {
		name string
		opts []pgnative.Option
	}{
		{"cold", []pgnative.Option{pgnative.WithoutCache()}},
		{"warm", []pgnative.Option{pgnative.WithCacheDir(cache)}},
	}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			ctx := context.Background()
			if srv, err := pgnative.Start(ctx, v.opts...); err != nil { // fills the cache
				b.Fatal(err)
			} else if err := srv.Stop(ctx); err != nil {
				b.Fatal(err)
			}
			var stopping time.Duration
			b.ResetTimer()
			for range b.N {
				srv, err := pgnative.Start(ctx, v.opts...)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				began := time.Now()
				if err := srv.Stop(ctx); err != nil {
					b.Fatal(err)
				}
				stopping += time.Since(began)
				b.StartTimer()
			}
			b.ReportMetric(float64(stopping.Milliseconds())/float64(b.N), "stop-ms/op")
		})
	}
}

func TestDetachedServerOutlivesCreatorAndStopDirRemovesIt(t *testing.T) {
	requireBinaries(t)
	warm(t)
	parent := privateTempDir(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"="+parent, "PGNATIVE_TEST_CACHE="+sharedCache, "PGNATIVE_TEST_DETACH=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	var pid int
	var dir, url string
	if _, err := fmt.Sscan(string(out), &pid, &dir, &url); err != nil {
		t.Fatalf("helper printed %q: %v", out, err)
	}
	t.Cleanup(func() { _ = pgnative.StopDir(context.Background(), dir) })
	// The creator has exited; the server must still answer, through its password.
	conn := connect(t, url)
	if got := queryString(t, conn, "select 'up'"); got != "up" {
		t.Fatalf("select: %q", got)
	}
	conn.Close(context.Background())
	if got, ok := pgnative.Running(dir); !ok || got != pid {
		t.Fatalf("Running(%s) = %d, %v; want %d, true", dir, got, ok, pid)
	}
	// Another Start in the same parent must not sweep a detached server that still runs.
	srv := start(t, pgnative.WithTempDir(parent))
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("a running detached server's directory was swept: %v", err)
	}
	if err := srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := pgnative.StopDir(context.Background(), dir); err != nil {
		t.Fatalf("StopDir: %v", err)
	}
	assertGone(t, pid, dir)
	if _, ok := pgnative.Running(dir); ok {
		t.Error("Running after StopDir")
	}
	if err := pgnative.StopDir(context.Background(), dir); err != nil {
		t.Errorf("second StopDir: %v", err)
	}
}

func TestStopDirRefusesOtherDirectories(t *testing.T) {
	for _, dir := range []string{t.TempDir(), filepath.Join(t.TempDir(), "pgnative-x")} {
		if dir == "" {
			continue
		}
		if strings.Contains(dir, "pgnative-") {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if err := pgnative.StopDir(context.Background(), dir); err == nil {
			t.Errorf("StopDir(%s) accepted a directory Start did not make", dir)
		}
		if _, err := os.Stat(dir); err != nil {
			t.Errorf("StopDir(%s) removed it: %v", dir, err)
		}
	}
}

// TestTakenPortIsRetried hands Start a port another listener holds, then free ones: Start must
// retry on the next port rather than fail.
func TestTakenPortIsRetried(t *testing.T) {
	requireBinaries(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	var picked []int
	pick := firstThenFree(busyPort, &picked)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pgnative.Start(ctx, pgnative.WithPortPicker(pick), pgnative.WithoutCache())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	if len(picked) != 2 || srv.Port() != picked[1] || srv.Port() == busyPort {
		t.Errorf("picked %v, server on %d: want a retry away from %d", picked, srv.Port(), busyPort)
	}
}

// forwardedPortEnv makes TestForwardedPortIsLeft run its inner half, in the network namespace
// where its outer half forwarded the port the value names elsewhere.
const forwardedPortEnv = "PGNATIVE_TEST_FORWARDED_PORT"

// TestForwardedPortIsLeft hands Start a port that is free to bind but that connections to
// 127.0.0.1 do not reach, as podman's port forwarding (an iptables DNAT rule, which outlives a
// container that was not torn down cleanly) leaves it: Start must move the server to another
// port rather than return a URL that is refused. The rule lives in a network namespace of the
// test's own, so that nothing outlives the test.
func TestForwardedPortIsLeft(t *testing.T) {
	requireBinaries(t)
	if v := os.Getenv(forwardedPortEnv); v != "" {
		forwardedPortIsLeft(t, v)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, for a network namespace and an iptables rule in it")
	}
	for _, prog := range []string{"unshare", "ip", "iptables"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s is not installed", prog)
		}
	}
	// Any port: the namespace has no other listener. Port 1 has none either, so a forwarded
	// connection is refused, as in a DNAT rule to a container that is gone.
	const port = "45432"
	script := `ip link set lo up &&
iptables -t nat -A OUTPUT -d 127.0.0.1 -p tcp --dport "$1" -j DNAT --to-destination 127.0.0.1:1 &&
exec "$2" -test.run='^TestForwardedPortIsLeft$' -test.count=1 -test.v`
	cmd := exec.Command("unshare", "--net", "--", "sh", "-c", script, "sh", port, os.Args[0])
	cmd.Env = append(os.Environ(), forwardedPortEnv+"="+port, "PGNATIVE_TEST_CACHE="+sharedCache)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
}

func forwardedPortIsLeft(t *testing.T, port string) {
	forwarded, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	// The rule is in place: a listener on the port is not reached.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", port))
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	l.Close()
	if err == nil {
		c.Close()
		t.Fatalf("a listener on 127.0.0.1:%s was reached: the forwarding rule is not in place", port)
	}
	var picked []int
	pick := firstThenFree(forwarded, &picked)
	cache := pgnative.WithCacheDir(os.Getenv("PGNATIVE_TEST_CACHE"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := pgnative.Start(ctx, pgnative.WithPortPicker(pick), cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(context.Background()) })
	if srv.Port() == forwarded {
		t.Fatalf("picked %v: the server stayed on the forwarded port %d", picked, forwarded)
	}
	queryString(t, connect(t, srv.URL()), "SELECT 'reached'")

	// A port fixed by WithPort is not moved: Start says why it cannot serve it.
	parent := privateTempDir(t)
	_, err = pgnative.Start(ctx, pgnative.WithPort(forwarded), cache, pgnative.WithTempDir(parent))
	if err == nil || !strings.Contains(err.Error(), "do not reach it") {
		t.Errorf("Start WithPort(%d): %v, want an error saying connections do not reach the server", forwarded, err)
	}
	assertEmpty(t, parent)
}

// firstThenFree is a port picker that offers first, then ports the kernel says are free,
// recording each offer in picked.
func firstThenFree(first int, picked *[]int) func() (int, error) {
	return func() (int, error) {
		p := first
		if len(*picked) > 0 {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, err
			}
			p = l.Addr().(*net.TCPAddr).Port
			if err := l.Close(); err != nil {
				return 0, err
			}
		}
		*picked = append(*picked, p)
		return p, nil
	}
}
