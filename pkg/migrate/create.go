package migrate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/poststack/poststack/pkg/exitcode"
)

// Create writes the next migration of dir: <version>_<name>.sql and
// <version>_<name>.rollback.sql, where version is one more than the highest
// in dir, zero-padded like the widest existing version (at least 4 digits).
// It creates dir when missing, never overwrites a file, and returns the
// paths it wrote.
func Create(dir, name string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, syscall.ENOTDIR):
		// A --migrations-path that names a file, or a path through one,
		// is bad input (exit 2), not a failure.
		if st, serr := os.Stat(dir); serr == nil && !st.IsDir() {
			return nil, exitcode.Usagef("migrations directory %s is not a directory", dir)
		}
		return nil, exitcode.Usagef("migrations directory %s: a parent of it is not a directory", dir)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("migrations directory %s: %w", dir, err)
	}
	var highest int64
	width := 4
	for _, e := range entries {
		v, _, _, err := ParseName(e.Name())
		if err != nil {
			continue
		}
		highest = max(highest, v)
		digits := len(e.Name()) - len(strings.TrimLeft(e.Name(), "0123456789"))
		width = max(width, digits)
	}
	version := fmt.Sprintf("%0*s", width, strconv.FormatInt(highest+1, 10))
	up := version + "_" + name + sqlExt
	if _, _, _, err := ParseName(up); err != nil {
		return nil, exitcode.Usagef("migration name %q: %v", name, err)
	}
	down := version + "_" + name + rollbackExt
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	human := strings.ReplaceAll(name, "_", " ")
	files := []struct{ name, text string }{
		{up, "-- Description: " + human + "\n\n"},
		{down, "-- Rolls back " + up + ": undo every change it makes, in reverse order.\n\n"},
	}
	var created []string
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			for _, p := range created {
				os.Remove(p)
			}
			return nil, fmt.Errorf("create %s: %w", path, err)
		}
		_, werr := fh.WriteString(f.text)
		if err := errors.Join(werr, fh.Close()); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		created = append(created, path)
	}
	return created, nil
}
