//go:build !linux

package migrate

import (
	"os"
	"path/filepath"
)

// dirReader reads files of dir with os.ReadFile where openat is not available.
func dirReader(dir string) (readFunc, func(), error) {
	read := func(base string, _ []byte) ([]byte, error) { return os.ReadFile(filepath.Join(dir, base)) }
	return read, func() {}, nil
}
