package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

func modeOf(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() {
		t.Fatalf("%s is %v, want a regular file", path, st.Mode())
	}
	return st.Mode().Perm()
}

// TestAttackOutputKeepsOldMode: -o over an existing file used to keep that
// file's mode, so rendered secrets landed in a world-readable file. Output
// holding secrets (--env) is 0600; other output is 0666 masked by the umask,
// however the old file was set.
func TestAttackOutputKeepsOldMode(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".poststack.yml"), `environment: dev
project:
  name: shop
environments:
  dev:
    postgres:
      database: shop
      user: shop
      password: "s3cret-pw"
`)
	secretOut := filepath.Join(dir, "app.env")
	writeFile(t, secretOut, "old\n")
	if err := os.Chmod(secretOut, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runIn(t, dir, nil, "DB_PASSWORD=$DB_PASSWORD\n", "--env", "dev", "-o", "app.env"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got := readFile(t, secretOut); got != "DB_PASSWORD=s3cret-pw\n" {
		t.Fatalf("output %q", got)
	}
	if got := modeOf(t, secretOut); got != 0o600 {
		t.Errorf("output with secrets over a 0644 file has mode %04o, want 0600", got)
	}

	publicOut := filepath.Join(dir, "plain.txt")
	writeFile(t, publicOut, "old\n")
	if err := os.Chmod(publicOut, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runIn(t, dir, []string{"X=1"}, "x=$X\n", "-o", "plain.txt"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if got, want := modeOf(t, publicOut), testenv.UmaskedMode(t, dir); got != want {
		t.Errorf("output without secrets over a 0600 file has mode %04o, want 0666 masked by the umask, %04o", got, want)
	}
}

// TestAttackOutputIsSymlink: the repository ships the output name as a link
// to a file of the user's; -o replaces the link and leaves the file alone.
func TestAttackOutputIsSymlink(t *testing.T) {
	canary := filepath.Join(t.TempDir(), "bashrc")
	writeFile(t, canary, "canary\n")
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(canary, old, old); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "pod.yaml")
	if err := os.Symlink(canary, out); err != nil {
		t.Fatal(err)
	}
	if r := runIn(t, dir, []string{"X=1"}, "x: $X\n", "-o", "pod.yaml"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	modeOf(t, out)
	if got := readFile(t, out); got != "x: 1\n" {
		t.Errorf("output %q", got)
	}
	if got := readFile(t, canary); got != "canary\n" {
		t.Errorf("the link's target was written: %q", got)
	}
	if st, _ := os.Stat(canary); !st.ModTime().Equal(old) {
		t.Errorf("the link's target was modified at %v", st.ModTime())
	}
}

// TestAttackLogsSymlink: the repository ships logs/ or logs/poststack.log
// as a link out of the project. The default log dir is then skipped with a
// warning naming the problem and the fix; an explicit --log-dir is exit 2.
// Either way nothing is written through the link.
func TestAttackLogsSymlink(t *testing.T) {
	tests := []struct {
		name     string
		plant    func(t *testing.T, dir, outside string) string // returns the refused path
		explicit bool
	}{
		{"logs is a symlink", func(t *testing.T, dir, outside string) string {
			link := filepath.Join(dir, "logs")
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			return "log dir " + link
		}, false},
		{"logs is a symlink, --log-dir logs", func(t *testing.T, dir, outside string) string {
			link := filepath.Join(dir, "logs")
			if err := os.Symlink(outside, link); err != nil {
				t.Fatal(err)
			}
			return "log dir " + link
		}, true},
		{"poststack.log is a symlink", func(t *testing.T, dir, outside string) string {
			link := filepath.Join(dir, "logs", "poststack.log")
			if err := os.Mkdir(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(outside, "poststack.log"), link); err != nil {
				t.Fatal(err)
			}
			return "log file " + link
		}, false},
		{"poststack.log is a symlink, --log-dir logs", func(t *testing.T, dir, outside string) string {
			link := filepath.Join(dir, "logs", "poststack.log")
			if err := os.Mkdir(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(filepath.Join(outside, "poststack.log"), link); err != nil {
				t.Fatal(err)
			}
			return "log file " + link
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outside := t.TempDir()
			canary := filepath.Join(outside, "poststack.log")
			writeFile(t, canary, "canary\n")
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(canary, old, old); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			refused := tt.plant(t, dir, outside)
			args := []string{"--log-level", "debug"}
			if tt.explicit {
				args = append(args, "--log-dir", "logs")
			}
			r := runIn(t, dir, []string{"X=1"}, "x=$X\n", args...)
			if tt.explicit {
				want := "log: " + refused + " is a symlink; remove it"
				if r.code != 2 || !strings.Contains(r.stderr, want) || r.stdout != "" {
					t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", r.code, r.stdout, r.stderr, want)
				}
			} else {
				want := "warn: file log disabled: " + refused + " is a symlink; remove it, or pass --log-dir DIR\n"
				if r.code != 0 || !strings.Contains(r.stderr, want) || r.stdout != "x=1\n" {
					t.Errorf("exit %d, stdout %q, stderr %q; want exit 0 and %q", r.code, r.stdout, r.stderr, want)
				}
			}
			if got := readFile(t, canary); got != "canary\n" {
				t.Errorf("written through the link: %q", got)
			}
			if st, _ := os.Stat(canary); !st.ModTime().Equal(old) {
				t.Errorf("the link's target was modified at %v", st.ModTime())
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 1 {
				t.Errorf("files created outside the project: %v", entries)
			}
		})
	}
}
