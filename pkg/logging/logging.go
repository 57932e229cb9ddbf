// Package logging builds the slog loggers every poststack binary uses: short
// human lines on stderr and, when a log directory is present, JSON lines in a
// size-rotated file. It also holds the Progress hook slow operations report
// through.
//
// The file log is opt-in by presence: it is written only when the log
// directory already exists or was named explicitly (Options.DirExplicit).
// That way a binary run in an arbitrary directory (ps-subst in a CI
// workspace, say) never litters it with a logs/ directory, while a project
// that has logs/ gets a persistent record. Because a checkout may carry
// logs/ or logs/poststack.log as a symlink to a file of the user's, neither
// is followed: such a path is refused with an *UnsafePathError.
package logging

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"golang.org/x/term"
)

// FileName is the name of the JSON log inside the log directory.
const FileName = "poststack.log"

// Defaults for the rotating file log.
const (
	DefaultMaxSize    = 10 << 20
	DefaultMaxBackups = 3
)

// Options configures New. The zero value logs INFO and above to nowhere.
type Options struct {
	// Level filters the human output.
	Level slog.Leveler
	// FileLevel filters the file log; nil means the lower of Level and INFO,
	// so the file keeps an INFO record even when the terminal is quietened.
	FileLevel slog.Leveler
	// Human receives "level: msg key=value" lines; nil disables them.
	Human io.Writer
	// Color enables ANSI colour on Human. Decide it with ColorEnabled.
	Color bool
	// Dir is the log directory; "" disables the file log.
	Dir string
	// DirExplicit creates Dir when missing. Without it a missing Dir
	// silently disables the file log (see the package comment).
	DirExplicit bool
	// MaxSize is the size in bytes at which the file rotates
	// (DefaultMaxSize when zero); MaxBackups old files are kept
	// (DefaultMaxBackups when zero, none when negative).
	MaxSize    int64
	MaxBackups int
	// Mask rewrites messages and string attributes before either output
	// sees them, so secrets never reach a terminal or a file.
	Mask func(string) string
}

// New builds the logger described by opts. The returned Closer closes the
// log file (it is never nil); the logger must not be used after Close.
func New(opts Options) (*slog.Logger, io.Closer, error) {
	level := opts.Level
	if level == nil {
		level = slog.LevelInfo
	}
	var handlers []slog.Handler
	if opts.Human != nil {
		handlers = append(handlers, NewHumanHandler(opts.Human, level, opts.Color))
	}
	var closer io.Closer = nopCloser{}
	if opts.Dir != "" {
		rf, err := openFileLog(opts)
		if err != nil {
			return nil, nil, err
		}
		if rf != nil {
			closer = rf
			fileLevel := opts.FileLevel
			if fileLevel == nil {
				fileLevel = min(level.Level(), slog.LevelInfo)
			}
			handlers = append(handlers, slog.NewJSONHandler(rf, &slog.HandlerOptions{Level: fileLevel}))
		}
	}
	var h slog.Handler
	switch len(handlers) {
	case 0:
		h = slog.DiscardHandler
	case 1:
		h = handlers[0]
	default:
		h = slog.NewMultiHandler(handlers...)
	}
	if opts.Mask != nil {
		h = &maskHandler{inner: h, mask: opts.Mask}
	}
	return slog.New(h), closer, nil
}

// UnsafePathError reports a log directory or file that is not a plain one
// of ours: a symlink, a FIFO, a device. A repository can ship logs/ or
// logs/poststack.log as a link to any file of the user's, so such a path is
// refused rather than written through.
type UnsafePathError struct {
	What string // "log dir" or "log file"
	Path string
	Is   string // "a symlink", "not a regular file"
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("%s %s is %s; remove it", e.What, e.Path, e.Is)
}

func unsafePath(what, path, is string) error {
	return &UnsafePathError{What: what, Path: path, Is: is}
}

// CheckDir reports whether the log directory dir exists. One that is a
// symlink is refused with an *UnsafePathError, one that is not a directory
// with an error: anything that writes under the log directory (the file
// log, build logs) checks it first so as not to write where a link points.
func CheckDir(dir string) (exists bool, err error) {
	st, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("log dir: %w", err)
	case st.Mode()&fs.ModeSymlink != 0:
		return false, unsafePath("log dir", dir, "a symlink")
	case !st.IsDir():
		return false, fmt.Errorf("log dir %s: not a directory", dir)
	}
	return true, nil
}

// openFileLog returns nil, nil when the file log is not wanted.
func openFileLog(opts Options) (*RotatingFile, error) {
	exists, err := CheckDir(opts.Dir)
	switch {
	case err != nil:
		return nil, err
	case !exists && !opts.DirExplicit:
		return nil, nil
	case !exists:
		if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("create log dir: %w", err)
		}
	}
	maxSize, backups := opts.MaxSize, opts.MaxBackups
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	if backups == 0 {
		backups = DefaultMaxBackups
	}
	if backups < 0 {
		backups = 0
	}
	return OpenRotatingFile(filepath.Join(opts.Dir, FileName), maxSize, backups)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// ColorEnabled reports whether w should get ANSI colour: only a terminal,
// and only when the user has not opted out (--no-color or NO_COLOR, which
// the caller folds into noColor because this package reads no environment).
func ColorEnabled(w io.Writer, noColor bool) bool {
	return !noColor && IsTerminal(w)
}

// IsTerminal reports whether w is a file descriptor attached to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}
