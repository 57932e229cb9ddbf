//go:build !linux

package dircache

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/poststack/poststack/pkg/safefile"
)

// Dir reads files of a directory with the os package where openat is not available: every
// file through safefile (a regular file, no larger than the cap, a symbolic link only to one
// inside root). It cannot stat for the cache, which is then not used.
type Dir struct {
	dir  string
	root string
	max  int64
}

// Open opens the directory dir, whose symbolic links may lead to files inside root, for
// files of at most max bytes.
func Open(dir, root string, max int64) (*Dir, error) {
	return &Dir{dir: dir, root: root, max: max}, nil
}

// Close closes the directory.
func (d *Dir) Close() {}

// List returns the entries sorted by name.
func (d *Dir) List() ([]Entry, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	out := make([]Entry, len(entries))
	for i, e := range entries {
		out[i] = Entry{e.Name(), e.Type()}
	}
	return out, nil
}

// CanStat tells whether Stat, Key and StatPath work here: not without fstatat.
func (d *Dir) CanStat() bool { return false }

// Key returns the key of the directory itself: never here.
func (d *Dir) Key() (Key, bool) { return Key{}, false }

// Stat returns the key of the regular file base: never here.
func (d *Dir) Stat(string) (Key, bool) { return Key{}, false }

// StatPath is Stat for a path: never here.
func StatPath(string, int64) (Key, bool) { return Key{}, false }

// Read reads the file base, listed with type mode.
func (d *Dir) Read(base string, mode fs.FileMode, _ []byte) ([]byte, error) {
	path := filepath.Join(d.dir, base)
	if mode&fs.ModeSymlink == 0 {
		// Never open a FIFO or a device, even to fstat it.
		if err := safefile.CheckMode(path, mode); err != nil {
			return nil, err
		}
	}
	return safefile.ReadFile(d.root, path, safefile.WithMaxSize(d.max))
}
