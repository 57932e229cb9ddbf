package pgnative

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/xdg"
)

// Option configures Start. An option rejects a nonsense value with an error, which Start returns
// before touching the disk.
type Option func(*config) error

type config struct {
	binDir    string
	port      int
	cacheDir  string // "" with noCache false: resolved from getenv at Start
	noCache   bool
	tempDir   string
	settings  map[string]string
	progress  progress.Func
	logWriter io.Writer
	getenv    func(string) string
	pickPort  func() (int, error) // freePort; tests replace it to force a taken port
	detach    bool
	seed      *seed // WithSeed; nil = none
	// seedColdStart is WithSeedCachedOnColdStart: a cold start keeps the seeded entry too.
	seedColdStart bool
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		logWriter: io.Discard,
		getenv:    os.Getenv,
		pickPort:  freePort,
		settings:  map[string]string{},
	}
	var errs []error
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pgnative: %w", err)
	}
	return c, nil
}

// WithBinDir names the directory holding initdb and postgres. The default is the newest
// /usr/lib/postgresql/*/bin (Debian's layout), else the directory of initdb on PATH.
func WithBinDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("WithBinDir: empty directory")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("WithBinDir %q: %w", dir, err)
		}
		c.binDir = abs
		return nil
	}
}

// WithPort makes the server listen on 127.0.0.1:port instead of a free port chosen at Start.
// A fixed port is not retried when it turns out to be taken.
func WithPort(port int) Option {
	return func(c *config) error {
		if port < 1 || port > 65535 {
			return fmt.Errorf("WithPort: %d is not a TCP port (1-65535)", port)
		}
		c.port = port
		return nil
	}
}

// WithCacheDir keeps initialised data directories under dir, one per server build and initdb
// arguments, so that later Starts copy one instead of running initdb. The default is
// $XDG_CACHE_HOME/poststack/pgnative, else ~/.cache/poststack/pgnative.
func WithCacheDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("WithCacheDir: empty directory (use WithoutCache to disable the cache)")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("WithCacheDir %q: %w", dir, err)
		}
		c.cacheDir, c.noCache = abs, false
		return nil
	}
}

// WithoutCache runs initdb on every Start and neither reads nor writes the cache.
func WithoutCache() Option {
	return func(c *config) error {
		c.cacheDir, c.noCache = "", true
		return nil
	}
}

// WithTempDir names the directory in which each server's private directory is created; the
// default is $TMPDIR when set, else /dev/shm when it is a tmpfs with at least 1 GiB free, else
// /tmp. Running as root, the postgres user must be able to traverse it,
// and the path must be short: it also holds the server's unix socket (at most 107 bytes).
func WithTempDir(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("WithTempDir: empty directory")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("WithTempDir %q: %w", dir, err)
		}
		c.tempDir = abs
		return nil
	}
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// reservedSetting explains why a setting cannot be changed, or returns "": Start chooses these,
// and changing them would break the URL or the private socket.
func reservedSetting(name string) string {
	switch name {
	case "port":
		return "use WithPort"
	case "listen_addresses":
		return "the server listens on 127.0.0.1 only"
	case "unix_socket_directories", "unix_socket_permissions":
		return "the socket stays in the server's private directory"
	case "data_directory", "config_file", "hba_file", "ident_file":
		return "the data directory and authentication are fixed by Start"
	}
	return ""
}

// WithSettings adds postgresql.conf settings, overriding the throwaway defaults (fsync=off,
// synchronous_commit=off, full_page_writes=off, max_connections=200, shared_buffers=32MB,
// timezone=UTC). It may be given several times; later values win.
func WithSettings(settings map[string]string) Option {
	return func(c *config) error {
		var errs []error
		for name, value := range settings {
			key := strings.ToLower(name)
			switch {
			case !settingName.MatchString(name):
				errs = append(errs, fmt.Errorf("WithSettings: %q is not a setting name", name))
			case reservedSetting(key) != "":
				errs = append(errs, fmt.Errorf("WithSettings: %s cannot be set: %s", name, reservedSetting(key)))
			case strings.ContainsAny(value, "\n\r\x00"):
				errs = append(errs, fmt.Errorf("WithSettings: value of %s contains a line break or NUL", name))
			default:
				c.settings[key] = value
			}
		}
		return errors.Join(errs...)
	}
}

// WithProgress receives the progress of Start and Stop (Op "pgnative"): initdb as a step,
// cache hits, start and stop timings as Info events with their details in Attrs, and problems
// that Start works around (a cache that cannot be written) as Warn events. Calls are
// serialised. nil (the default) discards them.
func WithProgress(fn progress.Func) Option {
	return func(c *config) error {
		c.progress = fn
		return nil
	}
}

// WithLogWriter receives the server's own log (its stderr) as it is written. Start keeps the
// last lines anyway, to put them in its errors.
func WithLogWriter(w io.Writer) Option {
	return func(c *config) error {
		if w == nil {
			return errors.New("WithLogWriter: nil writer")
		}
		c.logWriter = w
		return nil
	}
}

// WithDetach lets the server outlive the process that started it (a CLI that prints a URL
// and exits): the postmaster gets its own session and no parent-death signal, and its log goes
// to a file in Dir (server.log) instead of WithLogWriter, because a pipe to a process that has
// exited would break. Stop it with Server.Stop from the same process or with StopDir from any.
func WithDetach() Option {
	return func(c *config) error {
		c.detach = true
		return nil
	}
}

// WithGetenv replaces os.Getenv for the variables Start reads: PATH (to find initdb),
// TMPDIR, XDG_CACHE_HOME and HOME.
func WithGetenv(getenv func(string) string) Option {
	return func(c *config) error {
		if getenv == nil {
			return errors.New("WithGetenv: nil function")
		}
		c.getenv = getenv
		return nil
	}
}

// resolveCacheDir returns "" when the cache is off or no home can be found.
func (c *config) resolveCacheDir() string {
	if c.noCache {
		return ""
	}
	if c.cacheDir != "" {
		return c.cacheDir
	}
	dir, err := xdg.CacheDir(c.getenv, "pgnative")
	if err != nil {
		return ""
	}
	return dir
}

// resolveTempDir prefers memory: on the ext4 disks of the CI machines, creating the ~1000
// files of a data directory costs about 170 µs each, which makes copying a cached data
// directory 3-4 times slower than on tmpfs, and a throwaway server loses nothing by living in
// memory. A small /dev/shm (64 MiB in a default docker container) is not used.
func (c *config) resolveTempDir() string {
	if c.tempDir != "" {
		return c.tempDir
	}
	if t := c.getenv("TMPDIR"); filepath.IsAbs(t) {
		return t
	}
	if roomyTmpfs("/dev/shm", minShmBytes) {
		return "/dev/shm"
	}
	return "/tmp"
}

const (
	// minShmBytes is the free space /dev/shm needs before servers are put there: room for
	// several servers' data and for PostgreSQL's own dynamic shared memory, which lives there too.
	minShmBytes = 1 << 30
	tmpfsMagic  = 0x01021994 // TMPFS_MAGIC from linux/magic.h
)

func roomyTmpfs(dir string, minFree uint64) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || int64(st.Type) != tmpfsMagic {
		return false
	}
	const wOK = 2
	return uint64(st.Bavail)*uint64(st.Bsize) >= minFree && syscall.Access(dir, wOK) == nil
}
