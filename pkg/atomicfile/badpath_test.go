package atomicfile

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
)

// TestWriteBadPathIsUsage: an output path that cannot name a file to
// replace (its directory missing or a file, a directory or FIFO at the path)
// is a bad file name: exit code 2, one line naming the path, write never
// called, nothing created.
func TestWriteBadPathIsUsage(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "plain.txt"), []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, says string }{
		{"missing directory", "nodir/out.txt", "the directory " + filepath.Join(root, "nodir") + " does not exist"},
		{"missing directories", "no/dir/out.txt", "the directory " + filepath.Join(root, "no/dir") + " does not exist"},
		{"file as directory", "plain.txt/out.txt", filepath.Join(root, "plain.txt") + " is not a directory"},
		{"path through a file", "plain.txt/sub/out.txt", "a parent of the directory " + filepath.Join(root, "plain.txt/sub") + " is not a directory"},
		{"directory", "sub", "not a regular file"},
		{"FIFO", "fifo", "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(root, filepath.FromSlash(tc.path))
			called := false
			err := Write(path, Public, func(f *os.File) error { called = true; return nil })
			if err == nil {
				t.Fatal("Write succeeded")
			}
			msg := err.Error()
			if exitcode.Of(err) != exitcode.Usage || !strings.HasPrefix(msg, path+": ") || !strings.Contains(msg, tc.says) || strings.Contains(msg, "\n") {
				t.Errorf("err = %q (exit %d), want exit 2 and one line %q", msg, exitcode.Of(err), path+": … "+tc.says)
			}
			if called {
				t.Error("write was called")
			}
		})
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "fifo plain.txt sub" {
		t.Errorf("the directory holds %q, want only what the test made", names)
	}
	if sub, _ := os.ReadDir(filepath.Join(root, "sub")); len(sub) != 0 {
		t.Errorf("written into sub: %v", sub)
	}
}
