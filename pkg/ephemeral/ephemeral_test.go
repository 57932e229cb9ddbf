package ephemeral_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/exitcode"
)

func requireNative(t *testing.T) {
	t.Helper()
	testenv.PostgresBinaries(t)
}

// env is the process environment with server directories in a private parent that the
// postgres user can traverse, so that a test sees exactly what Start left behind.
func env(t *testing.T) (environ []string, parent string) {
	t.Helper()
	parent, err := os.MkdirTemp("/dev/shm", "epht-")
	if err != nil {
		parent, err = os.MkdirTemp("/tmp", "epht-")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	return append(os.Environ(), "TMPDIR="+parent), parent
}

func ping(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("select 1: %v %d", err, one)
	}
}

// assertEmpty fails unless dir holds nothing (no server directory, no record).
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, _ := os.ReadDir(dir)
		if len(entries) == 0 {
			return
		}
		if time.Now().After(deadline) {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("%s still holds %v", dir, names)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func assertDead(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); strings.Contains(string(b), ") Z ") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("postmaster %d still runs", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeMigrations(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"0001_users.sql":          "create table users (id int primary key, name text not null);",
		"0001_users.rollback.sql": "drop table users;",
		"0002_seed.sql":           "insert into users values (1, 'ada');",
	}
	for name, sql := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(sql+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestNativeStartMigrateStop(t *testing.T) {
	requireNative(t)
	environ, parent := env(t)
	ctx := context.Background()
	inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: "", Environ: environ, Migrate: writeMigrations(t)})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before any assertion: a failing one must not leave the server running.
	t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
	if inst.Provider != ephemeral.Native || inst.Dir == "" || inst.PID == 0 || inst.Migrations != 2 {
		t.Errorf("instance = %+v; want native with dir, pid and 2 migrations", inst)
	}
	if !strings.HasPrefix(inst.Dir, parent+"/") {
		t.Errorf("dir %s not under TMPDIR %s", inst.Dir, parent)
	}
	conn, err := pgx.Connect(ctx, inst.URL)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	if err := conn.QueryRow(ctx, "select name from users where id = 1").Scan(&name); err != nil || name != "ada" {
		t.Errorf("migrated row: %q, %v", name, err)
	}
	conn.Close(ctx)
	if err := ephemeral.Stop(ctx, inst); err != nil {
		t.Fatal(err)
	}
	assertDead(t, inst.PID)
	assertEmpty(t, parent)
}

func TestDetachedRecordedListedLoadedStopped(t *testing.T) {
	requireNative(t)
	environ, parent := env(t)
	state := t.TempDir()
	ctx := context.Background()
	inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: ephemeral.Native, Detach: true, StateDir: state, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
	ping(t, inst.URL)
	st, err := os.Stat(filepath.Join(state, inst.ID+".json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("record: %v, mode %v; want 0600", err, st)
	}
	list, err := ephemeral.PruneAndList(context.Background(), state)
	if err != nil || len(list) != 1 || list[0].ID != inst.ID || list[0].URL != inst.URL || list[0].Dir != inst.Dir {
		t.Fatalf("List = %+v, %v; want the started instance", list, err)
	}
	loaded, err := ephemeral.Load(context.Background(), state, inst.ID[:4])
	if err != nil || loaded.ID != inst.ID {
		t.Fatalf("Load by prefix = %+v, %v", loaded, err)
	}
	// Stop through the loaded record, as `ps-env ephemeral down` in another process does.
	if err := ephemeral.Stop(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	assertDead(t, inst.PID)
	assertEmpty(t, parent)
	assertEmpty(t, state)
	if list, err := ephemeral.PruneAndList(context.Background(), state); err != nil || len(list) != 0 {
		t.Errorf("List after Stop = %+v, %v", list, err)
	}
	if _, err := ephemeral.Load(context.Background(), state, inst.ID); !errors.Is(err, ephemeral.ErrNotFound) || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("Load after Stop: %v (exit %d); want ErrNotFound, exit 2", err, exitcode.Of(err))
	}
}

// TestStateDirComesFromTheGivenEnvironment: with no state directory, Start, PruneAndList and
// Load find the default one through the environment they are given, never the process's: a
// record made under one XDG_STATE_HOME is invisible under another.
func TestStateDirComesFromTheGivenEnvironment(t *testing.T) {
	requireNative(t)
	environ, parent := env(t)
	home, elsewhere := t.TempDir(), t.TempDir()
	environ = append(environ, "XDG_STATE_HOME="+home)
	ctx := context.Background()
	inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: ephemeral.Native, Detach: true, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
	if _, err := os.Stat(filepath.Join(home, "poststack", "ephemeral", inst.ID+".json")); err != nil {
		t.Fatalf("record not under the given XDG_STATE_HOME: %v", err)
	}
	list, err := ephemeral.PruneAndList(ctx, "", ephemeral.WithEnviron(environ))
	if err != nil || len(list) != 1 || list[0].ID != inst.ID {
		t.Fatalf("PruneAndList with the environment = %+v, %v; want the instance", list, err)
	}
	other := []string{"XDG_STATE_HOME=" + elsewhere}
	if list, err := ephemeral.PruneAndList(ctx, "", ephemeral.WithEnviron(other)); err != nil || len(list) != 0 {
		t.Errorf("PruneAndList under another XDG_STATE_HOME = %+v, %v; want nothing", list, err)
	}
	if _, err := ephemeral.Load(ctx, "", inst.ID, ephemeral.WithEnviron(other)); !errors.Is(err, ephemeral.ErrNotFound) {
		t.Errorf("Load under another XDG_STATE_HOME: %v; want ErrNotFound", err)
	}
	loaded, err := ephemeral.Load(ctx, "", inst.ID, ephemeral.WithEnviron(environ))
	if err != nil {
		t.Fatal(err)
	}
	if err := ephemeral.Stop(ctx, loaded); err != nil {
		t.Fatal(err)
	}
	assertDead(t, inst.PID)
	assertEmpty(t, parent)
	assertEmpty(t, filepath.Join(home, "poststack", "ephemeral"))
	assertEmpty(t, elsewhere)
}

func TestListForgetsDeadServers(t *testing.T) {
	requireNative(t)
	environ, parent := env(t)
	state := t.TempDir()
	ctx := context.Background()
	inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: ephemeral.Native, Detach: true, StateDir: state, Environ: environ})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
	if err := syscall.Kill(inst.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	assertDead(t, inst.PID)
	// The killed postmaster's backends notice and exit on their own; give them a moment.
	time.Sleep(200 * time.Millisecond)
	list, err := ephemeral.PruneAndList(context.Background(), state)
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %+v, %v; want the dead server forgotten", list, err)
	}
	assertEmpty(t, state)
	assertEmpty(t, parent)
}

func TestBadOptionsAreUsageErrorsAndStartNothing(t *testing.T) {
	environ, parent := env(t)
	state := t.TempDir()
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "stray.txt.sql"), []byte("select 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		o         ephemeral.Options
		noEnviron bool
	}{
		{"no environment", ephemeral.Options{Provider: ephemeral.Native}, true},
		{"provider", ephemeral.Options{Provider: "vm"}, false},
		{"port", ephemeral.Options{Port: 70000}, false},
		{"negative port", ephemeral.Options{Port: -1}, false},
		{"missing migrations", ephemeral.Options{Migrate: filepath.Join(broken, "nope")}, false},
		{"broken migrations", ephemeral.Options{Provider: ephemeral.Native, Migrate: broken}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Environ, tt.o.StateDir, tt.o.Detach = environ, state, true
			if tt.noEnviron {
				tt.o.Environ = nil
			}
			inst, err := ephemeral.Start(context.Background(), tt.o)
			if err == nil {
				_ = ephemeral.Stop(context.Background(), inst)
				t.Fatal("Start succeeded")
			}
			if code := exitcode.Of(err); code != exitcode.Usage {
				t.Errorf("exit code %d, want 2: %v", code, err)
			}
			assertEmpty(t, parent)
			assertEmpty(t, state)
		})
	}
}

func TestCancelledStartLeavesNothing(t *testing.T) {
	requireNative(t)
	environ, parent := env(t)
	state := t.TempDir()
	migs := writeMigrations(t)
	for _, delay := range []time.Duration{0, 5 * time.Millisecond, 30 * time.Millisecond, 80 * time.Millisecond, 150 * time.Millisecond, 300 * time.Millisecond} {
		ctx, cancel := context.WithTimeout(context.Background(), delay)
		inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: ephemeral.Native, Detach: true, StateDir: state, Environ: environ, Migrate: migs})
		cancel()
		if err == nil {
			// Finished before the deadline: a normal instance, stopped normally.
			if err := ephemeral.Stop(context.Background(), inst); err != nil {
				t.Fatal(err)
			}
		} else if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("delay %v: %v; want a context error", delay, err)
		}
		assertEmpty(t, parent)
		assertEmpty(t, state)
	}
}

func TestLoadRejectsBadIDs(t *testing.T) {
	state := t.TempDir()
	for _, id := range []string{"", "../x", "ABC", "zz"} {
		if _, err := ephemeral.Load(context.Background(), state, id); !errors.Is(err, ephemeral.ErrNotFound) || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("Load(%q) = %v; want ErrNotFound, exit 2", id, err)
		}
	}
}

func TestDefaultStateDir(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_STATE_HOME": "/x", "HOME": "/h"}, "/x/poststack/ephemeral"},
		{map[string]string{"XDG_STATE_HOME": "rel", "HOME": "/h"}, "/h/.local/state/poststack/ephemeral"},
		{map[string]string{}, ""},
	}
	for _, tt := range tests {
		got, err := ephemeral.DefaultStateDir(func(k string) string { return tt.env[k] })
		if got != tt.want || (err != nil) != (tt.want == "") {
			t.Errorf("DefaultStateDir(%v) = %q, %v; want %q", tt.env, got, err, tt.want)
		}
	}
}

// TestNativeMigratedCache: the second start with the same migrations copies the migrated data
// directory; a changed migration makes (and then uses) a new one; the schema is right each time.
func TestNativeMigratedCache(t *testing.T) {
	requireNative(t)
	environ, _ := env(t)
	environ = append(environ, "XDG_CACHE_HOME="+t.TempDir())
	migs := writeMigrations(t)
	changed := func() {
		sql := "insert into users values (1, 'grace');\n"
		if err := os.WriteFile(filepath.Join(migs, "0002_seed.sql"), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name      string
		before    func()
		wantCache bool
		wantName  string
	}{
		{"cold start applies", nil, false, "ada"},
		{"start from the base entry applies and keeps the result", nil, false, "ada"},
		{"third start copies", nil, true, "ada"},
		{"changed migration applies again", changed, false, "grace"},
		{"and is cached in turn", nil, true, "grace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			ctx := context.Background()
			inst, err := ephemeral.Start(ctx, ephemeral.Options{Provider: ephemeral.Native, Environ: environ, Migrate: migs})
			if err != nil {
				t.Fatal(err)
			}
			defer ephemeral.Stop(ctx, inst)
			if inst.MigratedFromCache != tc.wantCache || inst.Migrations != 2 {
				t.Errorf("MigratedFromCache = %v, Migrations = %d; want %v, 2", inst.MigratedFromCache, inst.Migrations, tc.wantCache)
			}
			conn, err := pgx.Connect(ctx, inst.URL)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var name string
			var ledger int
			if err := conn.QueryRow(ctx, "select (select name from users where id = 1), (select count(*) from poststack.schema_migrations)").Scan(&name, &ledger); err != nil {
				t.Fatal(err)
			}
			if name != tc.wantName || ledger != 2 {
				t.Errorf("users row %q, ledger rows %d; want %q, 2", name, ledger, tc.wantName)
			}
		})
	}
}
