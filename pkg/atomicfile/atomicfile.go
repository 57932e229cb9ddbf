// Package atomicfile replaces files so that readers see either the old
// content or the complete new one, never a truncated mix: what is written
// goes to a temporary file beside the target, which is synced and renamed
// over the target only when writing succeeded.
//
// The new file's permissions come from the caller's Mode alone, never from
// the file it replaces: a dump written over an old world-readable file must
// not inherit that mode. A target that is a symlink is replaced, not written
// through, so an output path planted as a link cannot reach the file it
// points at.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/poststack/poststack/pkg/exitcode"
)

// Mode decides the permissions of the file Write creates.
type Mode uint8

const (
	// Public files get 0666 masked by the process umask, as a shell
	// redirection creates them: generated configuration, schema dumps,
	// records that hold nothing secret.
	Public Mode = iota + 1
	// Private files get 0600 whatever the umask: backups, and anything
	// that holds a password or other secret.
	Private
)

func (m Mode) String() string {
	switch m {
	case Public:
		return "public"
	case Private:
		return "private"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// tempAttempts bounds the search for a free temporary name; a collision
// means another writer (or a planted file) holds the name, not bad luck.
const tempAttempts = 100

// Write creates or replaces path with what write puts into the file it is
// given (a temporary file in path's directory; write may also hand its
// name to another program, which must write into it without replacing it).
// On any error the temporary file is removed and path is untouched.
//
// path may be missing, a regular file, or a symlink, which is itself
// replaced (its target is neither read nor changed); anything else, such as
// a directory or a symlink to one, is refused. So is a path whose directory
// does not exist or is not a directory. Those refusals are bad file names,
// usage errors (exit code 2), reported before write is called.
func Write(path string, mode Mode, write func(f *os.File) error) (err error) {
	if mode != Public && mode != Private {
		return fmt.Errorf("%s: atomicfile: invalid %v", path, mode)
	}
	if err := checkDir(path); err != nil {
		return err
	}
	if err := checkTarget(path); err != nil {
		return err
	}
	tmp, err := createTemp(path, mode)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
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
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	// rename(2) replaces the directory entry: a symlink at path is
	// swapped for the new file, never followed.
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// checkDir refuses a path whose directory is missing or not a directory,
// where no temporary file can be made: "-o nodir/out.txt" is a typo to fix,
// not a failure of the work.
func checkDir(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return exitcode.Usagef("%s: the directory %s does not exist", path, dir)
	case errors.Is(err, syscall.ENOTDIR):
		return exitcode.Usagef("%s: a parent of the directory %s is not a directory", path, dir)
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case !st.IsDir():
		return exitcode.Usagef("%s: %s is not a directory", path, dir)
	}
	return nil
}

// checkTarget refuses a path whose replacement would surprise: a directory,
// a device or FIFO (writing "-o /dev/stdout" means a stream, not a file),
// or a symlink to one of those. A dangling symlink is fine: it is replaced.
func checkTarget(path string) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.Mode()&fs.ModeSymlink != 0 {
		st, err = os.Stat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if !st.Mode().IsRegular() {
		return exitcode.Usagef("%s: not a regular file", path)
	}
	return nil
}

// createTemp creates a fresh file beside path. O_EXCL makes a planted
// symlink at the chosen name a collision rather than a way out. Public
// files are created 0666 so that the kernel applies the umask, which a
// multi-threaded program cannot read without racing (umask(2) sets it);
// private ones are created 0600 and set to 0600 again in case the umask
// took the owner's bits.
func createTemp(path string, mode Mode) (*os.File, error) {
	perm := os.FileMode(0o666)
	if mode == Private {
		perm = 0o600
	}
	dir, base := filepath.Split(path)
	for range tempAttempts {
		name := filepath.Join(dir, "."+base+"."+strconv.FormatUint(rand.Uint64(), 36)+".tmp")
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if mode == Private {
			if err := f.Chmod(0o600); err != nil {
				f.Close()
				os.Remove(name)
				return nil, err
			}
		}
		return f, nil
	}
	return nil, fmt.Errorf("no free temporary name in %s after %d attempts", filepath.Clean(dir), tempAttempts)
}
