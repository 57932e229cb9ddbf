package logging

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
)

// RotatingFile is an append-only file that renames itself to path.1 (and
// older files to path.2 … path.N) once a write would take it past a size,
// keeping a bounded amount of log on disk.
type RotatingFile struct {
	mu      sync.Mutex
	path    string
	maxSize int64
	backups int
	f       *os.File
	size    int64
}

// OpenRotatingFile opens (appending) or creates path with mode 0600.
// maxSize must be positive; backups is how many rotated files to keep.
// A path that is a symlink or not a regular file is refused (*UnsafePathError):
// the log is written only into a file of its own.
func OpenRotatingFile(path string, maxSize int64, backups int) (*RotatingFile, error) {
	if maxSize <= 0 {
		return nil, fmt.Errorf("rotating file %s: max size must be positive, got %d", path, maxSize)
	}
	r := &RotatingFile{path: path, maxSize: maxSize, backups: backups}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// open opens r.path without following a symlink there, and without
// blocking on a FIFO that has no reader (O_NONBLOCK, which a regular file
// ignores); anything but a regular file is closed again unwritten.
func (r *RotatingFile) open() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return unsafePath("log file", r.path, "a symlink")
	case errors.Is(err, syscall.ENXIO):
		return unsafePath("log file", r.path, "not a regular file")
	case err != nil:
		return fmt.Errorf("open log file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("stat log file: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return unsafePath("log file", r.path, "not a regular file")
	}
	r.f, r.size = f, st.Size()
	return nil
}

// Write appends p, rotating first when p would not fit. A single write
// larger than the limit still goes into one (fresh) file: log lines are
// never split.
func (r *RotatingFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return 0, fs.ErrClosed
	}
	if r.size > 0 && r.size+int64(len(p)) > r.maxSize {
		if err := r.rotate(); err != nil {
			return 0, err
		}
	}
	n, err := r.f.Write(p)
	r.size += int64(n)
	return n, err
}

// rotate renames within the log directory only. rename(2) and unlink(2) act
// on the directory entry, never through a symlink, so a planted
// poststack.log.1 -> elsewhere is moved or replaced like any old log and its
// target is not touched; the fresh file is opened by open's rules.
func (r *RotatingFile) rotate() error {
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("close log file for rotation: %w", err)
	}
	r.f = nil
	if r.backups == 0 {
		if err := os.Remove(r.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
		return r.open()
	}
	for i := r.backups - 1; i >= 1; i-- {
		err := os.Rename(fmt.Sprintf("%s.%d", r.path, i), fmt.Sprintf("%s.%d", r.path, i+1))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotate log file: %w", err)
		}
	}
	if err := os.Rename(r.path, r.path+".1"); err != nil {
		return fmt.Errorf("rotate log file: %w", err)
	}
	return r.open()
}

// Close closes the current file. Further writes fail.
func (r *RotatingFile) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}
