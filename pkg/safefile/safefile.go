// Package safefile reads the files a project carries (migrations, templates,
// .env, .poststack.yml, Dockerfiles) without trusting the checkout they come
// from: only regular files, no larger than a cap, and, for files found in the
// project rather than named by the user, only inside the project.
//
// A repository can ship a symbolic link to a file of the user's
// (~/.ssh/id_ed25519, /etc/shadow as root), to /dev/zero, or a FIFO under a
// name the tools read. Reading through it would echo a secret into an error
// message, exhaust memory, or block forever. Every refusal is an *Error
// (exit code 2) that names the file as the caller named it and never holds a
// byte of the file's content.
//
// The root argument says how far a path is trusted. A root of "" means the
// user named the file (on the command line): symbolic links are followed
// wherever they lead. A non-empty root is the project directory: the file,
// once every symbolic link on the way is resolved, must lie inside it.
//
// The checks protect against what a checkout contains, not against a process
// that rewrites the tree while it is read: the opened descriptor is checked
// again (regular file, size) and reading stops at the cap, so such a race can
// at worst make a read fail, never block it or make it unbounded.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/pkg/exitcode"
)

// DefaultMaxSize is the largest file read unless WithMaxSize says otherwise:
// far above any hand-written migration, template or config file, far below
// what would hurt a CI runner's memory.
const DefaultMaxSize int64 = 16 << 20

// Error is a file that is not read: missing, of the wrong type, too large,
// or leading outside the project. It carries exit code 2 (bad input).
type Error struct {
	// Path is the file as the caller named it.
	Path string
	// Reason says what is wrong, e.g. "is a named pipe, not a regular file".
	Reason string
	// Err is the underlying error, when there is one: errors.Is(err,
	// fs.ErrNotExist) tells a missing file (or a dangling symbolic link).
	Err error
}

func (e *Error) Error() string { return e.Path + ": " + e.Reason }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// ExitCode is 2: bad input, nothing was read.
func (e *Error) ExitCode() int { return exitcode.Usage }

// Option configures a read; it returns an error for a nonsense value.
type Option func(*config) error

type config struct {
	max int64
}

// WithMaxSize sets the largest file accepted, in bytes (n >= 1).
func WithMaxSize(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("maximum file size %d: must be at least 1 byte", n)
		}
		c.max = n
		return nil
	}
}

func configure(opts []Option) (config, error) {
	c := config{max: DefaultMaxSize}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return c, exitcode.With(exitcode.Usage, err)
		}
	}
	return c, nil
}

// ReadFile returns the content of the regular file path, refusing what
// Open refuses. See the package documentation for root.
func ReadFile(root, path string, opts ...Option) ([]byte, error) {
	c, err := configure(opts)
	if err != nil {
		return nil, err
	}
	f, size, err := open(root, path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > c.max {
		return nil, TooLarge(path, c.max)
	}
	return ReadAll(path, f, size, c.max)
}

// Open opens the regular file path for reading. It refuses, with an *Error,
// a file that is not regular (directory, FIFO, device, socket), one larger
// than the maximum size, and, when root is not "", one whose real location
// is outside root. Reads from the returned file fail with an *Error once
// they pass the maximum size, should the file grow after it was opened.
func Open(root, path string, opts ...Option) (io.ReadCloser, error) {
	c, err := configure(opts)
	if err != nil {
		return nil, err
	}
	f, size, err := open(root, path)
	if err != nil {
		return nil, err
	}
	if size > c.max {
		f.Close()
		return nil, TooLarge(path, c.max)
	}
	return &capped{f: f, path: path, max: c.max}, nil
}

// open resolves and opens path, checking the type before and after the open.
func open(root, path string) (*os.File, int64, error) {
	target := path
	if root != "" {
		real, err := Inside(root, path)
		if err != nil {
			return nil, 0, err
		}
		target = real
	}
	// Stat before opening, so that a device is never opened (opening some
	// has effects), then fstat the descriptor, which is what is read.
	st, err := os.Stat(target)
	if err != nil {
		return nil, 0, linkError(path, err)
	}
	if err := CheckMode(path, st.Mode()); err != nil {
		return nil, 0, err
	}
	f, err := openFile(target, root != "")
	if err != nil {
		return nil, 0, pathError(path, err)
	}
	st, err = f.Stat()
	if err == nil {
		err = CheckMode(path, st.Mode())
	}
	if err != nil {
		f.Close()
		return nil, 0, pathError(path, err)
	}
	return f, st.Size(), nil
}

// Inside returns the real location of path (every symbolic link resolved)
// when it lies inside the real location of root, and an *Error otherwise.
// A missing file, or a symbolic link to one, gives an *Error wrapping
// fs.ErrNotExist.
func Inside(root, path string) (string, error) {
	realRoot, err := realPath(root)
	if err != nil {
		return "", &Error{Path: path, Reason: fmt.Sprintf("project directory %s: %v", root, reason(err)), Err: err}
	}
	real, err := realPath(path)
	if err != nil {
		return "", linkError(path, err)
	}
	if !within(realRoot, real) {
		why := "is outside the project directory " + root
		if l, lerr := os.Readlink(path); lerr == nil {
			why = fmt.Sprintf("is a symbolic link to %q, outside the project directory %s", l, root)
		} else if real != filepath.Clean(absOrSelf(path)) {
			why = fmt.Sprintf("resolves to %q, outside the project directory %s", real, root)
		}
		return "", &Error{Path: path, Reason: why}
	}
	return real, nil
}

// Contains reports whether path is root or below it, lexically and once the symbolic links of
// the part of path that exists are resolved: for a path a setting names that need not exist yet
// (a log directory), where Inside wants an existing file.
func Contains(root, path string) bool {
	root, path = filepath.Clean(absOrSelf(root)), filepath.Clean(absOrSelf(path))
	if !within(root, path) {
		return false
	}
	realRoot, err := realPath(root)
	if err != nil {
		return false
	}
	// What is missing yet cannot be a link: resolve the longest existing prefix.
	existing, rest := path, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			return false
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	real, err := realPath(existing)
	if err != nil {
		return false
	}
	return within(realRoot, filepath.Join(real, rest))
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		// EvalSymlinks says "too many links" in words; the kernel's errno
		// (ELOOP, ENOENT, EACCES) is what errors.Is and reason understand.
		if _, serr := os.Stat(abs); serr != nil {
			return "", serr
		}
		return "", err
	}
	return real, nil
}

func absOrSelf(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// within tells whether path is root or below it; both are clean and absolute.
func within(root, path string) bool {
	if path == root {
		return true
	}
	if !strings.HasSuffix(root, string(filepath.Separator)) {
		root += string(filepath.Separator)
	}
	return strings.HasPrefix(path, root)
}

// CheckMode returns an *Error naming path unless mode is a regular file's.
// Loaders that stat files their own way (pkg/migrate) share the rule and its
// wording through it.
func CheckMode(path string, mode fs.FileMode) error {
	if mode.IsRegular() {
		return nil
	}
	var kind string
	switch {
	case mode&fs.ModeDir != 0:
		kind = "a directory"
	case mode&fs.ModeSymlink != 0:
		kind = "a symbolic link"
	case mode&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case mode&fs.ModeSocket != 0:
		kind = "a socket"
	case mode&fs.ModeCharDevice != 0:
		kind = "a character device"
	case mode&fs.ModeDevice != 0:
		kind = "a block device"
	default:
		return &Error{Path: path, Reason: "is not a regular file"}
	}
	return &Error{Path: path, Reason: "is " + kind + ", not a regular file"}
}

// TooLarge is the *Error for a file of more than max bytes.
func TooLarge(path string, max int64) error {
	return &Error{Path: path, Reason: "is larger than " + formatSize(max) + ", the most read from one file"}
}

func formatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ReadAll reads r to its end but no further than limit bytes, with size as
// the expected length (a stat's, which a /proc file or a growing file may
// belie). More than limit bytes is the TooLarge *Error, and a read error is
// an *Error naming path.
func ReadAll(path string, r io.Reader, size, limit int64) ([]byte, error) {
	// One byte more than the cap tells a file of exactly limit bytes from a larger one.
	buf := make([]byte, 0, min(max(size, 0), limit)+1)
	for {
		if len(buf) == cap(buf) {
			grow := min(int64(cap(buf)), limit+1-int64(len(buf)))
			buf = append(buf, make([]byte, grow)...)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, TooLarge(path, limit)
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, pathError(path, err)
		}
	}
}

// capped is an open file that refuses to read past the maximum size.
type capped struct {
	f    *os.File
	path string
	max  int64
	read int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.read > c.max {
		return 0, TooLarge(c.path, c.max)
	}
	// Ask for one byte more than allowed to see a file that grew past the cap.
	if left := c.max - c.read + 1; int64(len(p)) > left {
		p = p[:left]
	}
	n, err := c.f.Read(p)
	c.read += int64(n)
	if c.read > c.max {
		return 0, TooLarge(c.path, c.max)
	}
	if err != nil && err != io.EOF {
		return n, pathError(c.path, err)
	}
	return n, err
}

func (c *capped) Close() error { return c.f.Close() }

// linkError is pathError, saying so when path is a symbolic link to nothing:
// "does not exist" alone puzzles whoever sees the link in a listing.
func linkError(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		if l, lerr := os.Readlink(path); lerr == nil {
			return &Error{Path: path, Reason: fmt.Sprintf("is a symbolic link to %q, which does not exist", l), Err: err}
		}
	}
	return pathError(path, err)
}

// pathError turns an error of the os package into an *Error naming path as
// the caller named it; an *Error passes through.
func pathError(path string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Path: path, Reason: reason(err), Err: err}
}

// reason is err's message without the *fs.PathError's repetition of a path
// (which may be the resolved one, not the name the user knows).
func reason(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if isLoop(err) {
		return "is a symbolic link loop (too many levels of symbolic links)"
	}
	return err.Error()
}
