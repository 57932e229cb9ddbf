//go:build !linux

package migrate

import (
	"os"
	"path/filepath"
)

// osDir reads files of a directory with the os package where openat is not available. It
// cannot stat for the cache, which is then not used.
type osDir struct {
	dir string
}

func openDir(dir string) (*osDir, error) { return &osDir{dir: dir}, nil }

func (d *osDir) close() {}

func (d *osDir) list() ([]dirEntry, error) {
	entries, err := os.ReadDir(d.dir)
	if err != nil {
		return nil, err
	}
	out := make([]dirEntry, len(entries))
	for i, e := range entries {
		out[i] = dirEntry{e.Name(), e.IsDir()}
	}
	return out, nil
}

func (d *osDir) canStat() bool { return false }

func (d *osDir) stat(string) (fileKey, bool) { return fileKey{}, false }

func (d *osDir) read(base string, _ []byte) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.dir, base))
}
