package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/internal/testenv"
)

// TestEphemeralUpShowsMigrations: `ephemeral up --migrate` shows the server's start and, inside
// it, each migration as `ps-migrate up` does (plain lines off a terminal), and nothing else;
// the URL alone is on stdout. The cache is the test's own, so that the migrations run rather
// than come with a cached data directory. (A wait for the migration lock, rendered by the same
// App.Report, is asserted by pkg/ephemeral: only there can a test hold the lock of a server
// that is still starting.)
func TestEphemeralUpShowsMigrations(t *testing.T) {
	testenv.PostgresBinaries(t)
	tmp, err := os.MkdirTemp("/dev/shm", "psenv-")
	if err != nil {
		tmp, err = os.MkdirTemp("", "psenv-")
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil { // the postgres user traverses it when we are root
		t.Fatal(err)
	}
	dir := t.TempDir()
	migs := filepath.Join(dir, "migrations")
	for name, sql := range map[string]string{
		"0001_users.sql": "create table users (id int primary key);\n",
		"0002_seed.sql":  "insert into users values (1);\n",
	} {
		if err := os.MkdirAll(migs, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(migs, name), []byte(sql), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	environ := append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir(), "TMPDIR="+tmp,
		"GITHUB_ACTIONS=", "POSTSTACK_LOG_LEVEL=")
	run := func(args ...string) (string, string, int) {
		var stdout, stderr bytes.Buffer
		code := runEnv(context.Background(), args, cli.Env{Environ: environ, Dir: dir, Stdout: &stdout, Stderr: &stderr})
		return stdout.String(), stderr.String(), code
	}
	stdout, stderr, code := run("ephemeral", "up", "--migrate", "migrations")
	t.Cleanup(func() {
		if _, errOut, code := run("ephemeral", "down", "--all"); code != 0 {
			t.Errorf("down --all: exit %d\n%s", code, errOut)
		}
	})
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, stderr)
	}
	want := "start native server ...\n" +
		"initdb ...\n" +
		"initdb: done\n" +
		"up 0001_users ...\n" +
		"up 0001_users: done\n" +
		"up 0002_seed ...\n" +
		"up 0002_seed: done\n" +
		"start native server: done\n"
	if stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr, want)
	}
	if !strings.HasPrefix(stdout, "postgres://") || strings.Count(stdout, "\n") != 1 {
		t.Errorf("stdout = %q, want the URL alone", stdout)
	}
}
