package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// TestHostileProjectFile: a checkout whose .poststack.yml is a symbolic link to a file of the
// user's, to /dev/zero, a FIFO or a huge file. Load and ProjectName refuse it at once with
// exit 2, naming the file and quoting nothing of what it leads to.
func TestHostileProjectFile(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "id_ed25519")
	// It parses as YAML whose error would quote it, were it read.
	if err := os.WriteFile(secret, []byte("project: {name: TOPSECRET-key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		make   func(path string) error
		reason string
	}{
		{"symlink to a secret outside", func(p string) error { return os.Symlink(secret, p) }, "outside the project directory"},
		{"symlink to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "outside the project directory"},
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "is a named pipe (FIFO), not a regular file"},
		{"huge file", func(p string) error { return os.WriteFile(p, make([]byte, safefile.DefaultMaxSize+1), 0o644) }, "is larger than 16 MiB"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o755) }, "is a directory, not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), FileName)
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			for name, read := range map[string]func() error{
				"Load":        func() error { _, err := Load(path); return err },
				"ProjectName": func() error { _, err := ProjectName(path); return err },
			} {
				err := within(t, read)
				if err == nil || exitcode.Of(err) != exitcode.Usage {
					t.Fatalf("%s: err = %v (exit %d), want exit 2", name, err, exitcode.Of(err))
				}
				if !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), tt.reason) {
					t.Errorf("%s: err = %q, want it to name %s and say %q", name, err, path, tt.reason)
				}
				if strings.Contains(err.Error(), "TOPSECRET") {
					t.Errorf("%s: err = %q holds the secret", name, err)
				}
			}
		})
	}
}

// TestProjectFileSymlinkInside: a project file linked from elsewhere in its directory is read.
func TestProjectFileSymlinkInside(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "real.yml"), []byte("project: {name: linked}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real.yml", filepath.Join(dir, FileName)); err != nil {
		t.Fatal(err)
	}
	if name, err := ProjectName(filepath.Join(dir, FileName)); err != nil || name != "linked" {
		t.Fatalf("ProjectName = %q, %v", name, err)
	}
	// A dangling link is a missing file, which ps-build treats as "no project file".
	if err := os.Symlink("nowhere.yml", filepath.Join(dir, "dangling.yml")); err != nil {
		t.Fatal(err)
	}
	if _, err := ProjectName(filepath.Join(dir, "dangling.yml")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dangling link: err = %v, want fs.ErrNotExist", err)
	}
}

// within runs read and fails the test when it blocks (a FIFO) or lasts (/dev/zero).
func within(t *testing.T, read func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- read() }()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Second):
		t.Fatal("blocked for more than a second")
		return nil
	}
}
