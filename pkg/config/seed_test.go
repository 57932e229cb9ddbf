package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
)

// seedProject writes files under a new project directory and returns it.
func seedProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const seedHead = "environment: dev\nproject:\n  name: app\nenvironments:\n  dev:\n"

func TestSeedDecoded(t *testing.T) {
	dir := seedProject(t, map[string]string{
		FileName:       seedHead + "    seed:\n      - db/one.sql\n      - db/two.sql\n  test:\n    seed: [db/missing.sql]\n",
		"db/one.sql":   "insert into t values (1);\n",
		"db/two.sql":   "insert into t values (2);\n",
		"unrelated.md": "",
	})
	f, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	env, err := f.Environment("dev")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, FileName)
	want := []SeedFile{
		{Path: "db/one.sql", File: filepath.Join(dir, "db", "one.sql"), Pos: Pos{file, 7, 9}},
		{Path: "db/two.sql", File: filepath.Join(dir, "db", "two.sql"), Pos: Pos{file, 8, 9}},
	}
	if !reflect.DeepEqual(env.Seed, want) {
		t.Errorf("dev seed = %+v, want %+v", env.Seed, want)
	}
	// Only the selected environment's files must exist: test's missing seed is no problem for dev,
	// and is one for test.
	_, err = f.Environment("test")
	wantErr := file + ":10:12: seed file db/missing.sql does not exist"
	if err == nil || err.Error() != wantErr {
		t.Errorf("test environment: %v, want %q", err, wantErr)
	}
	if exitcode.Of(err) != exitcode.Usage {
		t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
	}
}

func TestSeedNone(t *testing.T) {
	dir := seedProject(t, map[string]string{FileName: seedHead + "    variables: {A: b}\n"})
	f, err := Load(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	env, err := f.Environment("")
	if err != nil {
		t.Fatal(err)
	}
	if env.Seed != nil {
		t.Errorf("seed = %+v, want none", env.Seed)
	}
}

func TestSeedBroken(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.sql")
	if err := os.WriteFile(outside, []byte("select 1;\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, yml string
		setup     func(t *testing.T, dir string)
		want      string // after the file's name
	}{
		{name: "scalar", yml: "    seed: db/seed.sql\n", want: ":6:11: seed must be a list of SQL files, got \"db/seed.sql\""},
		{name: "mapping entry", yml: "    seed:\n      - {file: db/seed.sql}\n", want: ":7:9: seed entry 1 of environment \"dev\" must be a string, got a mapping"},
		{name: "empty entry", yml: "    seed:\n      - \"\"\n", want: ":7:9: seed entry 1 of environment \"dev\" must not be empty"},
		{name: "null entry", yml: "    seed:\n      -\n", want: ":7:8: seed entry 1 of environment \"dev\" must be a string, got null"},
		{name: "misspelt key", yml: "    seeds: [db/seed.sql]\n", want: ":6:5: unknown key \"seeds\" in environment \"dev\" (did you mean \"seed\"?)"},
		{name: "missing", yml: "    seed: [db/nope.sql]\n", want: ":6:12: seed file db/nope.sql does not exist"},
		{name: "directory", yml: "    seed: [db]\n", want: ":6:12: seed file db is not a regular file"},
		{name: "absolute outside", yml: "    seed: [" + outside + "]\n", want: ":6:12: seed file " + outside + " is outside the project directory {dir}"},
		{
			name: "link outside", yml: "    seed: [db/link.sql]\n",
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink(outside, filepath.Join(dir, "db", "link.sql")); err != nil {
					t.Fatal(err)
				}
			},
			want: ":6:12: seed file db/link.sql is a symbolic link to \"" + outside + "\", outside the project directory {dir}",
		},
		{
			name: "fifo", yml: "    seed: [db/fifo.sql]\n",
			setup: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "db", "fifo.sql"), 0o644); err != nil {
					t.Skip(err)
				}
			},
			want: ":6:12: seed file db/fifo.sql is not a regular file",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := seedProject(t, map[string]string{FileName: seedHead + tc.yml, "db/seed.sql": "select 1;\n"})
			if tc.setup != nil {
				tc.setup(t, dir)
			}
			file := filepath.Join(dir, FileName)
			f, err := Load(file)
			if err == nil {
				_, err = f.Environment("")
			}
			want := file + strings.ReplaceAll(tc.want, "{dir}", dir)
			if err == nil || err.Error() != want {
				t.Fatalf("got %v\nwant %s", err, want)
			}
			if exitcode.Of(err) != exitcode.Usage {
				t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
			}
		})
	}
}
