// Package atomicfile replaces files so that readers see either the old
// content or the complete new one, never a truncated mix: what is written
// goes to a temporary file beside the target, which is synced and renamed
// over the target only when writing succeeded.
package atomicfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Write creates or replaces path with what write puts into the file it is
// given (a temporary file in path's directory; write may also hand its
// name to another program). On any error the temporary file is removed and
// path is untouched. An existing path keeps its permissions; a new one gets
// perm.
func Write(path string, perm os.FileMode, write func(f *os.File) error) (err error) {
	if st, err := os.Stat(path); err == nil {
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", path)
		}
		perm = st.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := errors.Join(tmp.Chmod(perm), tmp.Sync()); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
