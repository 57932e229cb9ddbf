package gittree

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs git in dir and fails the test on error.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newRepo(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	write(t, filepath.Join(dir, "migrations", "0001_a.sql"), "CREATE TABLE a (id int);\n")
	write(t, filepath.Join(dir, "migrations", "sub", "x.txt"), "x")
	write(t, filepath.Join(dir, "other.sql"), "outside")
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "base")
	return dir
}

func TestReadGivesTheCommitNotTheWorkTree(t *testing.T) {
	dir := newRepo(t)
	git(t, dir, "checkout", "-q", "-b", "feature")
	write(t, filepath.Join(dir, "migrations", "0001_a.sql"), "CHANGED IN THE WORK TREE\n")
	write(t, filepath.Join(dir, "migrations", "0002_b.sql"), "CREATE TABLE b (id int);\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "migrations", "0003_c.sql")); err != nil {
		t.Fatal(err)
	}
	git(t, dir, "add", "migrations/0003_c.sql")
	git(t, dir, "commit", "-q", "-m", "link")

	base, err := Read(context.Background(), dir, "main", filepath.Join(dir, "migrations"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if base.Dir != "migrations" || !base.Exists || len(base.Commit) < 40 {
		t.Fatalf("tree = %+v", base)
	}
	entries, err := fs.ReadDir(base.FS, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "0001_a.sql,sub" {
		t.Fatalf("entries at main = %s", got)
	}
	data, err := fs.ReadFile(base.FS, "migrations/0001_a.sql")
	if err != nil || string(data) != "CREATE TABLE a (id int);\n" {
		t.Fatalf("0001_a.sql at main = %q, %v", data, err)
	}
	if _, err := fs.Stat(base.FS, "other.sql"); err == nil {
		t.Fatal("a file outside the directory was read")
	}

	head, err := Read(context.Background(), dir, "HEAD", "migrations", Options{})
	if err != nil {
		t.Fatal(err)
	}
	entries, _ = fs.ReadDir(head.FS, "migrations")
	for _, e := range entries {
		if e.Name() == "0003_c.sql" && e.Type()&fs.ModeSymlink == 0 {
			t.Fatalf("a link in the tree came out as %v, not a link", e.Type())
		}
	}
	if target, err := fs.ReadLink(head.FS, "migrations/0003_c.sql"); target != "/etc/passwd" {
		t.Fatalf("the link's target = %q, %v", target, err)
	}
	if _, err := fs.ReadFile(head.FS, "migrations/0003_c.sql"); err == nil {
		t.Fatal("reading through a link to outside the tree worked")
	}
}

func TestReadRefusesBadInput(t *testing.T) {
	dir := newRepo(t)
	for _, tc := range []struct {
		rev, dir, want string
	}{
		{"nope", "migrations", "no such commit"},
		{"--output=/tmp/x", "migrations", "not a revision"},
		{"", "migrations", "not a revision"},
		{"main", "/", "outside the repository"},
		{"main", "../elsewhere", "outside the repository"},
	} {
		_, err := Read(context.Background(), dir, tc.rev, tc.dir, Options{})
		var ge *Error
		if !errors.As(err, &ge) || !strings.Contains(err.Error(), tc.want) || ge.ExitCode() != 2 {
			t.Errorf("Read(%q, %q) = %v, want an *Error with %q", tc.rev, tc.dir, err, tc.want)
		}
	}
	tree, err := Read(context.Background(), dir, "main", "db/migrations", Options{})
	if err != nil || tree.Exists {
		t.Fatalf("a directory the commit lacks: %+v, %v; want Exists false and no error", tree, err)
	}
	if _, err := Read(context.Background(), t.TempDir(), "main", "migrations", Options{}); err == nil || !strings.Contains(err.Error(), "not in a git repository") {
		t.Fatalf("outside a repository: %v", err)
	}
	big := strings.Repeat("x", 2000)
	write(t, filepath.Join(dir, "migrations", "0009_big.sql"), big)
	git(t, dir, "add", ".")
	git(t, dir, "commit", "-q", "-m", "big")
	if _, err := Read(context.Background(), dir, "HEAD", "migrations", Options{MaxSize: 1000}); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("a file over the limit: %v", err)
	}
}
