package logging

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// canary is a file outside the project that an attack aims at.
type canary struct {
	path    string
	content string
	mtime   time.Time
}

func newCanary(t *testing.T, name string) canary {
	t.Helper()
	c := canary{path: filepath.Join(t.TempDir(), name), content: "canary " + name + "\n"}
	if err := os.WriteFile(c.path, []byte(c.content), 0o644); err != nil {
		t.Fatal(err)
	}
	c.mtime = time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(c.path, c.mtime, c.mtime); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c canary) assertUntouched(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(c.path)
	if err != nil || string(b) != c.content {
		t.Errorf("canary %s changed: %q, %v", c.path, b, err)
	}
	if st, err := os.Stat(c.path); err != nil || !st.ModTime().Equal(c.mtime) {
		t.Errorf("canary %s modified (mtime %v, want %v): %v", c.path, st.ModTime(), c.mtime, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(c.path)); len(entries) != 1 {
		t.Errorf("files created beside the canary: %v", entries)
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

// TestAttackSymlinkedLogDir: a repository ships logs -> a directory of the
// user's. The file log is refused, whether the directory is the default
// (present) one or was named explicitly, and nothing is written there.
func TestAttackSymlinkedLogDir(t *testing.T) {
	for _, explicit := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "explicit"}[explicit], func(t *testing.T) {
			c := newCanary(t, FileName) // the link's target already holds a poststack.log
			logs := filepath.Join(t.TempDir(), "logs")
			symlink(t, filepath.Dir(c.path), logs)
			_, _, err := New(Options{Dir: logs, DirExplicit: explicit})
			var unsafe *UnsafePathError
			if !errors.As(err, &unsafe) || !strings.Contains(err.Error(), logs+" is a symlink; remove it") {
				t.Fatalf("err = %v, want the symlinked log dir refused", err)
			}
			c.assertUntouched(t)
		})
	}
	t.Run("dangling link", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "made-by-us")
		logs := filepath.Join(t.TempDir(), "logs")
		symlink(t, missing, logs)
		if _, _, err := New(Options{Dir: logs, DirExplicit: true}); err == nil {
			t.Fatal("a dangling logs link was accepted")
		}
		if _, err := os.Lstat(missing); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the link's target was created: %v", err)
		}
	})
}

// TestAttackSymlinkedLogFile: a repository ships logs/poststack.log -> a
// file of the user's (~/.bashrc). Opening the log must not append to it.
func TestAttackSymlinkedLogFile(t *testing.T) {
	c := newCanary(t, "bashrc")
	logs := t.TempDir()
	link := filepath.Join(logs, FileName)
	symlink(t, c.path, link)
	l, closer, err := New(Options{Dir: logs})
	if err == nil {
		l.Info("written through the link")
		closer.Close()
	}
	var unsafe *UnsafePathError
	if !errors.As(err, &unsafe) || err.Error() != "log file "+link+" is a symlink; remove it" {
		t.Fatalf("err = %v, want the symlinked log file refused", err)
	}
	c.assertUntouched(t)
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the planted link was changed: %v", err)
	}
}

// TestAttackLogFileFIFO: a FIFO named poststack.log would block opening
// for writing until someone reads it: refused at once instead.
func TestAttackLogFileFIFO(t *testing.T) {
	logs := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(logs, FileName), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, _, err := New(Options{Dir: logs}); done <- err }()
	select {
	case err := <-done:
		if !strings.Contains(err.Error(), "is not a regular file; remove it") {
			t.Errorf("err = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("opening a FIFO as the log blocked")
	}
}

// TestAttackRotationPlantedBackups: old logs planted as links
// (poststack.log.1 -> ~/.bashrc, …) are renamed or replaced as directory
// entries by rotation; their targets are neither written, truncated nor
// moved, and the log goes on in a regular file.
func TestAttackRotationPlantedBackups(t *testing.T) {
	for _, backups := range []int{0, 2} {
		t.Run(map[int]string{0: "no backups", 2: "two backups"}[backups], func(t *testing.T) {
			logs := t.TempDir()
			path := filepath.Join(logs, FileName)
			var canaries []canary
			for _, suffix := range []string{".1", ".2", ".3"} {
				c := newCanary(t, "target"+suffix)
				canaries = append(canaries, c)
				symlink(t, c.path, path+suffix)
			}
			r, err := OpenRotatingFile(path, 10, backups)
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range []string{"first!\n", "second\n", "third!\n", "fourth\n"} {
				if _, err := r.Write([]byte(line)); err != nil {
					t.Fatalf("write %q: %v", line, err)
				}
			}
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			for _, c := range canaries {
				c.assertUntouched(t)
			}
			if b, err := os.ReadFile(path); err != nil || string(b) != "fourth\n" {
				t.Errorf("current log = %q, %v", b, err)
			}
			for i := 1; i <= backups; i++ {
				st, err := os.Lstat(path + "." + string(rune('0'+i)))
				if err != nil || !st.Mode().IsRegular() {
					t.Errorf("backup %d is not a rotated regular file: %v %v", i, st, err)
				}
			}
		})
	}
}

// TestAttackLinkPlantedWhileOpen: poststack.log swapped for a link while
// the log is open is rotated away as an entry; the link's target is not
// written and the log goes on in a fresh regular file.
func TestAttackLinkPlantedWhileOpen(t *testing.T) {
	for _, backups := range []int{0, 1} {
		t.Run(map[int]string{0: "no backups", 1: "one backup"}[backups], func(t *testing.T) {
			c := newCanary(t, "bashrc")
			path := filepath.Join(t.TempDir(), FileName)
			r, err := OpenRotatingFile(path, 10, backups)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := r.Write([]byte("0123456789")); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
			symlink(t, c.path, path)
			if _, err := r.Write([]byte("rotated\n")); err != nil {
				t.Fatal(err)
			}
			c.assertUntouched(t)
			if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
				t.Errorf("the log is not a fresh regular file: %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != "rotated\n" {
				t.Errorf("log = %q", b)
			}
		})
	}
}
