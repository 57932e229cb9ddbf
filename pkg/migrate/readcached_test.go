package migrate

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestTextAfterSwapSinceCache: what replaces a cached file before it runs is read, or refused,
// by the same rules whichever way Text reads it: a FIFO or a directory is refused without
// waiting, a symbolic link to the same content inside the directory and a rewrite with the same
// content (a new inode) are accepted.
func TestTextAfterSwapSinceCache(t *testing.T) {
	const body = "-- Description: the users\ncreate table users (id int);\n"
	for _, tc := range []struct {
		name   string
		swap   func(t *testing.T, dir, file string)
		refuse string // "" when Text must accept the file
	}{
		{"fifo", func(t *testing.T, _, file string) {
			if err := syscall.Mkfifo(file, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is a named pipe (FIFO), not a regular file"},
		{"directory", func(t *testing.T, _, file string) {
			if err := os.Mkdir(file, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "is a directory, not a regular file"},
		{"link to the same content", func(t *testing.T, dir, file string) {
			writeFile(t, filepath.Join(dir, "users.body"), body)
			symlink(t, "users.body", file)
		}, ""},
		{"same content, new file", func(t *testing.T, _, file string) {
			writeFile(t, file, body)
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCacheDir(t, cacheFiles)
			c.load()
			migs, reads := c.load()
			if len(reads) != 0 {
				t.Fatalf("second load read %v, want the cache to answer", reads)
			}
			file := migs[0].Up.File
			if err := os.Remove(file); err != nil {
				t.Fatal(err)
			}
			tc.swap(t, c.dir, file)
			done := make(chan struct{})
			var sql string
			var err error
			go func() {
				defer close(done)
				sql, err = migs[0].Up.Text()
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Text did not return within 10s")
			}
			if tc.refuse != "" {
				assertRefusedFile(t, err, file, tc.refuse)
				return
			}
			if err != nil || sql != body {
				t.Fatalf("Text = %q, %v; want the file's content", sql, err)
			}
		})
	}
}
