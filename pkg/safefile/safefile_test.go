package safefile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

const secret = "TOPSECRET"

// hostileProject is a project directory holding every kind of entry a
// checkout can carry, and a secret file outside it.
func hostileProject(t *testing.T) (root string) {
	t.Helper()
	outside := t.TempDir()
	secretFile := filepath.Join(outside, "secret.txt")
	write(t, secretFile, secret+"\n")
	root = t.TempDir()
	write(t, filepath.Join(root, "ok.txt"), "hello\n")
	must(t, os.Mkdir(filepath.Join(root, "sub"), 0o755))
	write(t, filepath.Join(root, "sub", "inner.txt"), "inner\n")
	must(t, os.Symlink("sub/inner.txt", filepath.Join(root, "link-inside")))
	must(t, os.Symlink(secretFile, filepath.Join(root, "link-outside")))
	must(t, os.Symlink("../"+filepath.Base(outside)+"/secret.txt", filepath.Join(root, "link-outside-relative")))
	must(t, os.Symlink(outside, filepath.Join(root, "dir-outside")))
	must(t, os.Symlink("/dev/zero", filepath.Join(root, "zero")))
	must(t, os.Symlink("missing.txt", filepath.Join(root, "dangling")))
	must(t, os.Symlink("loop-b", filepath.Join(root, "loop-a")))
	must(t, os.Symlink("loop-a", filepath.Join(root, "loop-b")))
	must(t, syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return root
}

func TestHostileReadFile(t *testing.T) {
	root := hostileProject(t)
	tests := []struct {
		name     string
		root     string // "" trusts the path; "project" is the project directory
		path     string
		want     string // content; "" when refused
		reason   string // part of the refusal
		notExist bool
	}{
		{"regular file", "project", "ok.txt", "hello\n", "", false},
		{"regular file, trusted", "", "ok.txt", "hello\n", "", false},
		{"symlink inside the project", "project", "link-inside", "inner\n", "", false},
		{"symlink to a secret outside", "project", "link-outside", "", "outside the project directory", false},
		{"relative symlink to a secret outside", "project", "link-outside-relative", "", "outside the project directory", false},
		{"file under a directory symlink outside", "project", "dir-outside/secret.txt", "", "outside the project directory", false},
		{"user-named symlink outside is followed", "", "link-outside", secret + "\n", "", false},
		{"symlink to /dev/zero", "project", "zero", "", "outside the project directory", false},
		{"symlink to /dev/zero, trusted", "", "zero", "", "is a character device, not a regular file", false},
		{"FIFO", "project", "fifo", "", "is a named pipe (FIFO), not a regular file", false},
		{"FIFO, trusted", "", "fifo", "", "is a named pipe (FIFO), not a regular file", false},
		{"directory", "project", "sub", "", "is a directory, not a regular file", false},
		{"dangling symlink", "project", "dangling", "", `is a symbolic link to "missing.txt", which does not exist`, true},
		{"dangling symlink, trusted", "", "dangling", "", `is a symbolic link to "missing.txt", which does not exist`, true},
		{"missing file", "project", "nope.txt", "", "no such file or directory", true},
		{"symlink loop", "project", "loop-a", "", "symbolic link loop", false},
		{"symlink loop, trusted", "", "loop-a", "", "symbolic link loop", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ""
			if tt.root == "project" {
				r = root
			}
			path := filepath.Join(root, tt.path)
			for _, read := range []struct {
				name string
				fn   func() ([]byte, error)
			}{
				{"ReadFile", func() ([]byte, error) { return ReadFile(r, path) }},
				{"Open", func() ([]byte, error) {
					f, err := Open(r, path)
					if err != nil {
						return nil, err
					}
					defer f.Close()
					return io.ReadAll(f)
				}},
			} {
				data, err := withTimeout(t, read.fn)
				if tt.reason == "" {
					if err != nil || string(data) != tt.want {
						t.Fatalf("%s = %q, %v; want %q", read.name, data, err, tt.want)
					}
					continue
				}
				assertRefused(t, err, path, tt.reason)
				if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
					t.Errorf("%s: errors.Is(err, fs.ErrNotExist) = %v, want %v", read.name, got, tt.notExist)
				}
			}
		})
	}
}

func TestHostileSize(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "big")
	write(t, path, strings.Repeat("x", 1025))
	if _, err := ReadFile(root, path, WithMaxSize(1025)); err != nil {
		t.Fatalf("a file of exactly the cap: %v", err)
	}
	_, err := ReadFile(root, path, WithMaxSize(1024))
	assertRefused(t, err, path, "is larger than 1 KiB")
	_, err = Open(root, path, WithMaxSize(1024))
	assertRefused(t, err, path, "is larger than 1 KiB")

	big := filepath.Join(root, "default")
	f, err := os.Create(big)
	must(t, err)
	must(t, f.Truncate(DefaultMaxSize+1))
	must(t, f.Close())
	_, err = ReadFile("", big)
	assertRefused(t, err, big, "is larger than 16 MiB")
}

// TestHostileGrowing reads a file whose stat says it is small while it holds
// more (as /proc files do): reading stops at the cap.
func TestHostileGrowing(t *testing.T) {
	const limit = 64
	r := strings.NewReader(strings.Repeat("y", 10*limit))
	_, err := ReadAll("grows", r, 1, limit)
	assertRefused(t, err, "grows", "is larger than 64 bytes")

	path := filepath.Join(t.TempDir(), "f")
	write(t, path, "small")
	rc, err := Open("", path, WithMaxSize(limit))
	must(t, err)
	defer rc.Close()
	write(t, path, strings.Repeat("z", 2*limit)) // grows after the open
	_, err = io.ReadAll(rc)
	assertRefused(t, err, path, "is larger than 64 bytes")
}

// TestHostileProc reads a /proc file, whose stat says 0 bytes, with a cap it exceeds.
func TestHostileProc(t *testing.T) {
	if _, err := os.Stat("/proc/self/maps"); err != nil {
		t.Skip("no /proc")
	}
	data, err := ReadFile("", "/proc/self/maps", WithMaxSize(1<<20))
	if err != nil || len(data) == 0 {
		t.Fatalf("ReadFile(/proc/self/maps) = %d bytes, %v", len(data), err)
	}
	_, err = ReadFile("", "/proc/self/maps", WithMaxSize(16))
	assertRefused(t, err, "/proc/self/maps", "is larger than 16 bytes")
}

func TestWithMaxSize(t *testing.T) {
	for _, n := range []int64{0, -1} {
		_, err := ReadFile("", "whatever", WithMaxSize(n))
		if err == nil || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("WithMaxSize(%d): err = %v (exit %d), want a usage error", n, err, exitcode.Of(err))
		}
	}
}

func assertRefused(t *testing.T, err error, path, reason string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want *safefile.Error", err, err)
	}
	if e.Path != path || !strings.HasPrefix(err.Error(), path+": ") {
		t.Errorf("err = %q names %q, want %q", err, e.Path, path)
	}
	if !strings.Contains(e.Reason, reason) {
		t.Errorf("err = %q, want %q in it", err, reason)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("err = %q holds the secret", err)
	}
	if got := exitcode.Of(err); got != exitcode.Usage {
		t.Errorf("exit code %d, want %d", got, exitcode.Usage)
	}
}

// withTimeout fails the test when fn blocks (a FIFO opened or read without
// O_NONBLOCK waits for a writer forever) or takes long (/dev/zero read to the cap).
func withTimeout(t *testing.T, fn func() ([]byte, error)) ([]byte, error) {
	t.Helper()
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		data, err := fn()
		done <- result{data, err}
	}()
	select {
	case r := <-done:
		return r.data, r.err
	case <-time.After(time.Second):
		t.Fatal("blocked for more than a second")
		return nil, nil
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	must(t, os.WriteFile(path, []byte(content), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestContains(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want bool
	}{
		{root, true},
		{filepath.Join(root, "logs"), true},
		{filepath.Join(root, "not", "yet", "there"), true},
		{filepath.Join(root, "..", filepath.Base(outside)), false},
		{outside, false},
		{filepath.Join(root, "out"), false},
		{filepath.Join(root, "out", "new", "dir"), false},
		{"/etc", false},
	}
	for _, tt := range tests {
		if got := Contains(root, tt.path); got != tt.want {
			t.Errorf("Contains(%s, %s) = %v, want %v", root, tt.path, got, tt.want)
		}
	}
}
