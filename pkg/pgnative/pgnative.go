// Package pgnative runs a throwaway PostgreSQL server from the host's own binaries (initdb,
// postgres) in a private temporary directory: the `native` provider of ephemeral databases, and
// the server that database tests start for themselves.
//
// A server listens on 127.0.0.1 only, on a free port, with password authentication; its unix
// socket stays inside its private directory, where the superuser is trusted (that is how Start
// sets the generated password). Durability is switched off (fsync, synchronous_commit,
// full_page_writes): the data dies with Stop anyway.
//
// initdb costs most of a second, so Start keeps one initialised data directory per server build
// in a cache and copies it, which brings a warm Start under 0.3 s. The private directory goes to
// /dev/shm when that is a roomy tmpfs, because creating the data directory's ~1000 files on
// disk costs more than everything else together.
//
// A server does not outlive the process that started it: if that process dies without Stop,
// the kernel asks the postmaster for an immediate shutdown, and the next Start in the same
// place removes the files left behind. WithDetach makes a server that outlives its creator (the
// CLI's `ps-env ephemeral up`); StopDir ends it later from any process.
package pgnative

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/poststack/poststack/pkg/progress"
)

// Superuser is the role initdb creates and the URLs log in as.
const Superuser = "postgres"

const (
	// maxPortAttempts bounds retries when a chosen free port is taken before the server binds it.
	maxPortAttempts = 5
	// readyTimeout bounds the wait for a started server when ctx has no earlier deadline.
	readyTimeout = 60 * time.Second
	// handshakeTimeout bounds the TCP handshake of the connection that proves URL reaches the
	// server: on loopback the kernel completes it at once, however busy the machine, so only a
	// port forwarded into a void waits that long.
	handshakeTimeout = 5 * time.Second
	// stopGrace is how long Stop lets a fast shutdown run before killing the processes.
	stopGrace = 10 * time.Second
	// maxSocketPath is the longest unix socket path the kernel accepts (sun_path minus its NUL).
	maxSocketPath = 107
)

// stopSignal asks the postmaster for an immediate shutdown: the data is thrown away, so the
// shutdown checkpoint and orderly backend exits of a fast shutdown (SIGINT) buy nothing.
const stopSignal = syscall.SIGQUIT

// fastStopSignal asks for a fast shutdown, which ends with a checkpoint: a data directory that
// is copied into the cache must start again without recovery.
const fastStopSignal = syscall.SIGINT

// errPortInUse marks a start that failed only because another process bound the port first.
var errPortInUse = errors.New("port already in use")

// Server is a running PostgreSQL server that Start created; Stop removes it.
type Server struct {
	dir      string
	dataDir  string
	port     int
	password string
	version  string
	bins     binaries
	id       identity
	report   progress.Reporter
	cacheHit bool
	seeded   bool

	// stores are cache entries being written in the background; Start waits for them.
	stores sync.WaitGroup
	// lateStores are those Start does not wait for (the seeded entry of a cold start with
	// WithSeedCachedOnColdStart); Stop waits for them before it removes Dir, which holds their
	// source.
	lateStores sync.WaitGroup

	proc   *os.Process
	exited chan struct{} // closed once the postmaster has exited and been reaped
	log    *logTail
	// logPath is the log file of a detached server, "" otherwise.
	logPath string

	stopMu  sync.Mutex
	stopped bool
	stopErr error
}

// Start initialises and starts a server in a new temporary directory on a free 127.0.0.1 port,
// and returns once the superuser has its generated password and a connection through URL has
// reached the server. A port that connections to 127.0.0.1 do not reach, although the server
// could bind it (a container engine forwarding it elsewhere), is left for another free one. On
// any failure, including ctx ending, it stops what it started and removes the directory; a
// server that exited early has the last lines of its log in the error.
func Start(ctx context.Context, opts ...Option) (_ *Server, err error) {
	began := time.Now()
	defer func() {
		// A program killed because ctx ended fails with "signal: killed";
		// callers must still see that the start was cancelled (exit 130, not 1).
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}()
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pgnative: start: %w", err)
	}
	bins, err := findBinaries(cfg)
	if err != nil {
		return nil, err
	}
	id, err := serverIdentity()
	if err != nil {
		return nil, err
	}
	parent := cfg.resolveTempDir()
	report := progress.NewReporter("pgnative", cfg.progress)
	sweep(parent, report)
	dir, err := os.MkdirTemp(parent, dirPrefix)
	if err != nil {
		return nil, fmt.Errorf("pgnative: %w", err)
	}
	if err := writeOwner(dir); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	password, err := randomToken()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{
		dir:      dir,
		dataDir:  filepath.Join(dir, "data"),
		password: password,
		bins:     bins,
		id:       id,
		report:   report,
	}
	defer func() {
		if err != nil {
			if cerr := s.abort(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	if n := len(dir) + len("/.s.PGSQL.65535"); n > maxSocketPath {
		return nil, fmt.Errorf("pgnative: temporary directory %s is too long for a unix socket path (%d > %d bytes); use WithTempDir", dir, n, maxSocketPath)
	}
	if err := id.chown(dir); err != nil {
		return nil, err
	}
	base, seeded, err := s.cacheEntries(cfg)
	if err != nil {
		return nil, err
	}
	if seeded == nil || !s.useSeeded(*seeded) {
		if err := s.prepareData(ctx, base); err != nil {
			return nil, err
		}
	}
	confSize := int64(-1)
	if fi, err := os.Stat(filepath.Join(s.dataDir, "postgresql.conf")); err == nil {
		confSize = fi.Size()
	}
	if err := s.writeConfig(cfg.settings); err != nil {
		return nil, err
	}
	conn, err := s.launch(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if cfg.seed != nil && !s.seeded {
		if !s.cacheHit && !cfg.seedColdStart {
			// A cold start (initdb) stays as fast as it can be: keeping the seeded entry costs a
			// stop, a copy and a restart. The next start, from the base entry, keeps it.
			seeded = nil
		}
		if conn, err = s.seedAndStore(ctx, cfg, seeded, confSize, conn); err != nil {
			return nil, err
		}
	}
	err = s.setPassword(ctx, conn)
	conn.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	if err := s.reachThroughURL(ctx, cfg); err != nil {
		return nil, err
	}
	s.stores.Wait()
	s.report.Info("server started", time.Since(began), "dir", s.dir, "port", s.port, "version", s.version,
		"cached", s.cacheHit)
	return s, nil
}

// URL is the superuser URL of the postgres database: TCP to 127.0.0.1, password, no TLS.
func (s *Server) URL() string { return s.DatabaseURL("postgres") }

// DatabaseURL is URL with another database name.
func (s *Server) DatabaseURL(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(Superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Password is the superuser's generated password, also carried by URL.
func (s *Server) Password() string { return s.password }

// Dir is the server's private directory: data directory, unix socket and a note of the
// process that created it (so that a later Start can remove it if that process dies).
func (s *Server) Dir() string { return s.dir }

// DataDir is the data directory inside Dir.
func (s *Server) DataDir() string { return s.dataDir }

// SocketDir holds the unix socket on which the superuser is trusted (host=SocketDir in a DSN).
func (s *Server) SocketDir() string { return s.dir }

// Version is the server version, e.g. "15.18".
func (s *Server) Version() string { return s.version }

// BinDir is the directory of the binaries the server runs from.
func (s *Server) BinDir() string { return s.bins.dir }

// PID is the postmaster's process id, 0 once stopped.
func (s *Server) PID() int {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Pid
}

// Cached reports whether the data directory was copied from the cache rather than made by initdb.
func (s *Server) Cached() bool { return s.cacheHit }

// Seeded reports whether the data directory was copied from WithSeed's cache entry, so that
// the seed function was not called.
func (s *Server) Seeded() bool { return s.seeded }

// Log returns the last lines of the server's log, for diagnosing a failing test.
func (s *Server) Log() string {
	if s.logPath != "" {
		t := newLogTail(io.Discard)
		s.readDetachedLog(t)
		return t.lines(50)
	}
	if s.log == nil {
		return ""
	}
	return s.log.lines(50)
}
