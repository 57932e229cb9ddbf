//go:build !linux

package migrate

import (
	"io/fs"
	"os"
	"path/filepath"

	"github.com/poststack/poststack/pkg/safefile"
)

// osDir reads files of a directory with the os package where openat is not available: every
// file through safefile (a regular file, no larger than the cap, a symbolic link only to one
// inside root). It cannot stat for the cache, which is then not used.
type osDir struct {
	dir  string
	root string
	max  int64
}

func openDir(dir, root string, max int64) (*osDir, error) {
	return &osDir{dir: dir, root: root, max: max}, nil
}

func (d *osDir) close() {}

func (d *osDir) list() ([]dirEntry, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, len(entries))
	for i, e := range entries {
		out[i] = dirEntry{e.Name(), e.Type()}
	}
	return out, nil
}

func (d *osDir) canStat() bool { return false }

func (d *osDir) stat(string) (fileKey, bool) { return fileKey{}, false }

func (d *osDir) read(base string, mode fs.FileMode, _ []byte) ([]byte, error) {
	path := filepath.Join(d.dir, base)
	if mode&fs.ModeSymlink == 0 {
		// Never open a FIFO or a device, even to fstat it.
		if err := safefile.CheckMode(path, mode); err != nil {
			return nil, err
		}
	}
	return safefile.ReadFile(d.root, path, safefile.WithMaxSize(d.max))
}
