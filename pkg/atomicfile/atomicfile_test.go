package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func put(s string) func(*os.File) error {
	return func(f *os.File) error { _, err := f.WriteString(s); return err }
}

func perm(t *testing.T, path string) os.FileMode {
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

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out")
	if err := Write(path, Private, put("one")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Fatalf("content %q", b)
	}
	if got := perm(t, path); got != 0o600 {
		t.Errorf("new private file mode %v, want 0600", got)
	}
	if err := Write(path, Private, put("two")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, Private, func(f *os.File) error {
		f.WriteString("half")
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two" {
		t.Errorf("a failed write changed the target: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if err := Write(dir, Private, put("x")); err == nil {
		t.Error("replacing a directory must fail")
	}
	if err := Write(filepath.Join(dir, "zero"), 0, put("x")); err == nil {
		t.Error("the zero Mode must be refused, not guessed")
	}
}

// TestAttackOldModeIsNotKept: a backup or a secret-holding output written
// over an existing world-readable file used to keep 0644, leaving the data
// readable by every local user; a public output over a 0600 file kept 0600.
// The mode now comes from the Mode alone. It runs under the umasks of the
// table in a child process each, because the umask is process-wide.
func TestAttackOldModeIsNotKept(t *testing.T) {
	if um := os.Getenv("ATOMICFILE_TEST_UMASK"); um != "" {
		childOldMode(t, um)
		return
	}
	for _, umask := range []int{0o022, 0o002, 0o077, 0o027, 0o277} {
		t.Run(fmt.Sprintf("umask %04o", umask), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestAttackOldModeIsNotKept$", "-test.v")
			cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_UMASK="+strconv.FormatInt(int64(umask), 8))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			if !strings.Contains(string(out), "--- PASS: TestAttackOldModeIsNotKept/public_over_0600") {
				t.Fatalf("the child did not run the cases:\n%s", out)
			}
		})
	}
}

func childOldMode(t *testing.T, um string) {
	umask, err := strconv.ParseInt(um, 8, 32)
	if err != nil {
		t.Fatal(err)
	}
	// The child runs this one test: nothing else creates files meanwhile.
	syscall.Umask(int(umask))
	tests := []struct {
		name string
		old  os.FileMode
		mode Mode
		want os.FileMode
	}{
		{"private over 0644", 0o644, Private, 0o600},
		{"private over 0666", 0o666, Private, 0o600},
		{"private over 0400", 0o400, Private, 0o600},
		{"public over 0600", 0o600, Public, 0o666 &^ os.FileMode(umask)},
		{"public over 0777", 0o777, Public, 0o666 &^ os.FileMode(umask)},
		{"public new", 0, Public, 0o666 &^ os.FileMode(umask)},
		{"private new", 0, Private, 0o600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "dump")
			if tt.old != 0 {
				if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, tt.old); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(path, tt.mode, put("new")); err != nil {
				t.Fatal(err)
			}
			if got := perm(t, path); got != tt.want {
				t.Errorf("umask %04o: mode %04o, want %04o", umask, got, tt.want)
			}
			if b, _ := os.ReadFile(path); string(b) != "new" {
				t.Errorf("content %q", b)
			}
		})
	}
	if umask == 0o022 {
		// The documented example: a public output under the usual umask.
		path := filepath.Join(t.TempDir(), "out")
		os.WriteFile(path, nil, 0o600)
		if err := Write(path, Public, put("x")); err != nil || perm(t, path) != 0o644 {
			t.Errorf("public output under umask 022: %v, mode %04o, want 0644", err, perm(t, path))
		}
	}
}

// TestAttackOutputIsSymlink: a repository ships out.yml -> a file of the
// user's; writing the output replaces the link and leaves its target as it
// was, content and modification time.
func TestAttackOutputIsSymlink(t *testing.T) {
	for _, mode := range []Mode{Public, Private} {
		t.Run(mode.String(), func(t *testing.T) {
			outside := t.TempDir()
			canary := filepath.Join(outside, "bashrc")
			if err := os.WriteFile(canary, []byte("canary\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(canary, old, old); err != nil {
				t.Fatal(err)
			}
			project := t.TempDir()
			out := filepath.Join(project, "out.yml")
			if err := os.Symlink(canary, out); err != nil {
				t.Fatal(err)
			}
			if err := Write(out, mode, put("rendered\n")); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(out); string(b) != "rendered\n" {
				t.Errorf("output = %q", b)
			}
			perm(t, out) // a regular file now, not the link
			b, err := os.ReadFile(canary)
			if err != nil || string(b) != "canary\n" {
				t.Errorf("link target changed: %q, %v", b, err)
			}
			if st, _ := os.Stat(canary); !st.ModTime().Equal(old) || st.Mode().Perm() != 0o644 {
				t.Errorf("link target touched: mtime %v (want %v), mode %v", st.ModTime(), old, st.Mode().Perm())
			}
		})
	}
	t.Run("dangling link is replaced", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		missing := filepath.Join(t.TempDir(), "would-be-created")
		if err := os.Symlink(missing, out); err != nil {
			t.Fatal(err)
		}
		if err := Write(out, Public, put("x")); err != nil {
			t.Fatal(err)
		}
		perm(t, out)
		if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the link's target was created: %v", err)
		}
	})
	t.Run("link to a directory is refused", func(t *testing.T) {
		dir := t.TempDir()
		out := filepath.Join(dir, "out")
		target := t.TempDir()
		if err := os.Symlink(target, out); err != nil {
			t.Fatal(err)
		}
		if err := Write(out, Public, put("x")); err == nil {
			t.Error("a link to a directory was replaced")
		}
		if st, err := os.Lstat(out); err != nil || st.Mode()&os.ModeSymlink == 0 {
			t.Errorf("link changed: %v", err)
		}
		if entries, _ := os.ReadDir(target); len(entries) != 0 {
			t.Errorf("written into the link's target: %v", entries)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 1 {
			t.Errorf("temporary files left behind: %v", entries)
		}
	})
	t.Run("fifo is refused without blocking", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(out, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := Write(out, Public, put("x")); err == nil {
			t.Error("a FIFO was replaced")
		}
	})
}
