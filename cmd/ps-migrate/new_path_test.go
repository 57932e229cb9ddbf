package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestNewMigrationsPathNotADirectory: a --migrations-path that names a
// regular file, or a path through one, is bad input: exit 2, one line naming
// the path, and nothing created.
func TestNewMigrationsPathNotADirectory(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"plain.txt", "ps-migrate: migrations directory %s is not a directory\n"},
		{"plain.txt/sub", "ps-migrate: migrations directory %s: a parent of it is not a directory\n"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			dir := t.TempDir()
			write(t, filepath.Join(dir, "plain.txt"), "not migrations\n")
			r := runIn(t, dir, nil, "new", "--migrations-path", tc.path, "add_thing")
			want := fmt.Sprintf(tc.want, filepath.Join(dir, filepath.FromSlash(tc.path)))
			if r.code != 2 || r.stderr != want || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", r.code, r.stdout, r.stderr, want)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("the directory holds %d entries, want only plain.txt: something was created", len(entries))
			}
			if data, _ := os.ReadFile(filepath.Join(dir, "plain.txt")); string(data) != "not migrations\n" {
				t.Errorf("plain.txt changed: %q", data)
			}
		})
	}
}
