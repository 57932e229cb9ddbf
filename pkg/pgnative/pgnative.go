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
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Superuser is the role initdb creates and the URLs log in as.
const Superuser = "postgres"

// initdbArgs make the cluster independent of the caller's locale and environment, so that one
// cached data directory serves every caller.
func initdbArgs() []string {
	return []string{
		"--no-sync",
		"--username=" + Superuser,
		"--auth-host=scram-sha-256",
		"--auth-local=trust",
		"--encoding=UTF8",
		"--locale=C",
		// 1 MB WAL segments instead of 16: every start copies the cached data directory, and
		// one preallocated 16 MB segment was 40% of it.
		"--wal-segsize=1",
	}
}

// defaultSettings suit a server whose data is thrown away: no durability, room for the many
// connections of parallel tests, modest memory so that several servers fit on a CI machine.
func defaultSettings() map[string]string {
	return map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_connections":    "200",
		"shared_buffers":     "32MB",
		"timezone":           "UTC",
		// Keep few recycled WAL segments in the directories the cache copies.
		"min_wal_size": "2MB",
		"log_timezone": "UTC",
		// Parallel-query segments as files in the data directory, so that a
		// killed server leaves nothing in /dev/shm: Stop removes them.
		"dynamic_shared_memory_type": "mmap",
	}
}

const (
	// maxPortAttempts bounds retries when a chosen free port is taken before the server binds it.
	maxPortAttempts = 5
	// readyTimeout bounds the wait for a started server when ctx has no earlier deadline.
	readyTimeout = 60 * time.Second
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
	logger   *slog.Logger
	cacheHit bool
	seeded   bool

	// stores are cache entries being written in the background; Start waits for them.
	stores sync.WaitGroup

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
// and returns once the server has accepted a connection and the superuser has its generated
// password. A second connection through URL to prove it would cost a backend start (~20 ms):
// the postmaster reports ready only after binding 127.0.0.1 (failing to bind is fatal with
// listen_addresses set), and the password and pg_hba.conf rule are ours. On any failure,
// including ctx ending, it stops what it started and removes the directory; a server that
// exited early has the last lines of its log in the error.
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
	sweep(parent, cfg.logger)
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
		logger:   cfg.logger,
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
		if !s.cacheHit {
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
	s.stores.Wait()
	s.logger.Debug("pgnative: server started", "dir", s.dir, "port", s.port, "version", s.version,
		"cached", s.cacheHit, "elapsed", time.Since(began))
	return s, nil
}

// cacheEntries names the base entry and, with WithSeed, the seeded one; both nil without a cache.
func (s *Server) cacheEntries(cfg *config) (base, seeded *cacheEntry, err error) {
	root := cfg.resolveCacheDir()
	if root == "" {
		return nil, nil, nil
	}
	key, err := cacheKey(s.bins, initdbArgs())
	if err != nil {
		return nil, nil, err
	}
	base = &cacheEntry{dir: filepath.Join(root, key)}
	if cfg.seed != nil {
		e := seededEntry(*base, cfg.seed.key)
		seeded = &e
	}
	return base, seeded, nil
}

// prepareData fills dataDir from the base cache entry, or with initdb (storing the result in
// the cache). entry is nil without a cache.
func (s *Server) prepareData(ctx context.Context, entry *cacheEntry) error {
	if entry != nil {
		if v, ok := entry.lookup(); ok {
			began := time.Now()
			err := copyTree(entry.dataDir(), s.dataDir, s.id)
			if err == nil {
				s.version, s.cacheHit = v, true
				s.logger.Debug("pgnative: data directory copied from cache", "cache", entry.dir, "elapsed", time.Since(began))
				return ctx.Err()
			}
			// A damaged entry must not break Start: fall back to initdb, which replaces nothing
			// in the cache (the entry's name is taken), and say so.
			s.logger.Warn("pgnative: cannot copy cached data directory; running initdb", "cache", entry.dir, "err", err)
			entry = nil
			if err := removeAll(s.dataDir); err != nil {
				return err
			}
		}
	}
	version, err := serverVersion(ctx, s.bins.postgres, childEnv())
	if err != nil {
		return err
	}
	s.version = version
	if err := s.initdb(ctx); err != nil {
		return err
	}
	if entry != nil {
		// A copy in memory now, written to the (disk) cache while the server starts.
		began := time.Now()
		snap, err := s.snapshot(-1)
		if err != nil {
			s.logger.Warn("pgnative: cannot store data directory in cache", "cache", entry.dir, "err", err)
			return nil
		}
		s.logger.Debug("pgnative: initialised data directory copied for the cache", "elapsed", time.Since(began))
		s.storeAsync(*entry, snap, version, false)
	}
	return nil
}

// initdb creates the cluster with a password nobody keeps: the cached copy must not carry a
// usable secret, so every server, cached or not, gets its own password from setPassword.
func (s *Server) initdb(ctx context.Context) error {
	began := time.Now()
	throwaway, err := randomToken()
	if err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "initdb.pw")
	if err := os.WriteFile(pwfile, []byte(throwaway+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	defer os.Remove(pwfile)
	if err := s.id.chown(pwfile); err != nil {
		return err
	}
	args := append([]string{"--pgdata=" + s.dataDir, "--pwfile=" + pwfile}, initdbArgs()...)
	cmd := s.id.command(ctx, s.dir, s.bins.initdb, args...)
	out, err := cmd.CombinedOutput()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("pgnative: initdb: %w", ctxErr)
	}
	if err != nil {
		return fmt.Errorf("pgnative: %s %s: %w\n%s", s.bins.initdb, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	s.logger.Debug("pgnative: initdb done", "elapsed", time.Since(began))
	return nil
}

// writeConfig appends our settings to postgresql.conf, where the last value of a name wins.
// The file is per server (copied or freshly made), so the cache stays independent of them.
func (s *Server) writeConfig(user map[string]string) error {
	settings := defaultSettings()
	maps.Copy(settings, user)
	settings["listen_addresses"] = "127.0.0.1"
	settings["unix_socket_directories"] = s.dir
	settings["unix_socket_permissions"] = "0700"
	var b strings.Builder
	b.WriteString("\n# Added by poststack pgnative for a throwaway server.\n")
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = '%s'\n", name, strings.ReplaceAll(settings[name], "'", "''"))
	}
	path := filepath.Join(s.dataDir, "postgresql.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("pgnative: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgnative: write %s: %w", path, err)
	}
	return nil
}

// launch starts the postmaster, retrying on another free port when the chosen one was taken in
// the meantime, and returns a trusted connection over the private socket.
func (s *Server) launch(ctx context.Context, cfg *config) (*pgconn.PgConn, error) {
	for attempt := 1; ; attempt++ {
		port := cfg.port
		if port == 0 {
			p, err := cfg.pickPort()
			if err != nil {
				return nil, err
			}
			port = p
		}
		conn, err := s.startPostmaster(ctx, cfg, port)
		if err == nil {
			return conn, nil
		}
		if cfg.port == 0 && attempt < maxPortAttempts && errors.Is(err, errPortInUse) {
			s.logger.Debug("pgnative: port taken, retrying", "port", port, "attempt", attempt)
			continue
		}
		return nil, err
	}
}

// startPostmaster runs postgres directly rather than through `pg_ctl start -w`: pg_ctl polls
// every 100 ms, a third of the warm-start budget, while a direct child lets us poll the socket
// every few milliseconds and notice at once when the server exits (a taken port, a bad setting).
func (s *Server) startPostmaster(ctx context.Context, cfg *config, port int) (*pgconn.PgConn, error) {
	tail := newLogTail(cfg.logWriter)
	cmd := s.id.command(nil, s.dir, s.bins.postgres, "-D", s.dataDir, "-p", strconv.Itoa(port))
	exited := make(chan struct{})
	if cfg.detach {
		logFile, err := s.openDetachedLog()
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// A session of its own: neither the terminal's SIGINT/SIGHUP nor the end of the
		// starting process reaches the server.
		cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Setsid = false, true
		err = cmd.Start()
		logFile.Close()
		if err != nil {
			return nil, fmt.Errorf("pgnative: start %s: %w", s.bins.postgres, err)
		}
	} else {
		cmd.Stdout, cmd.Stderr = tail, tail
		// The backends inherit the log pipe; never let Wait hang on one that outlives the postmaster.
		cmd.WaitDelay = 2 * time.Second
		// If this process dies without Stop (a test binary's timeout panic, SIGKILL), the kernel
		// asks the postmaster for an immediate shutdown, which ends its children too.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
		if err := startPinned(cmd, exited); err != nil {
			return nil, fmt.Errorf("pgnative: start %s: %w", s.bins.postgres, err)
		}
	}
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	s.proc, s.exited, s.log, s.port = cmd.Process, exited, tail, port

	began := time.Now()
	conn, err := s.waitReady(ctx)
	if err == nil {
		s.logger.Debug("pgnative: postgres accepts connections", "pid", cmd.Process.Pid, "port", port, "elapsed", time.Since(began))
		return conn, nil
	}
	if cfg.detach {
		s.readDetachedLog(tail)
	}
	select {
	case <-exited:
		s.proc = nil
		err = fmt.Errorf("pgnative: postgres exited during startup (%v)", waitErr)
		if tail.contains("Address already in use") {
			err = fmt.Errorf("%w: %w", errPortInUse, err)
		}
		return nil, withLog(err, tail)
	default:
		return nil, withLog(err, tail)
	}
}

// startPinned starts cmd from a goroutine locked to its OS thread until done is closed. The
// kernel sends Pdeathsig when the thread that forked the child exits, not the process, and the
// Go runtime may retire threads; a pinned thread lives as long as the server.
func startPinned(cmd *exec.Cmd, done <-chan struct{}) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread ends with this goroutine, once the server has exited.
		err := cmd.Start()
		started <- err
		if err == nil {
			<-done
		}
	}()
	return <-started
}

// waitReady polls the private socket until the server accepts a connection, exits, or ctx ends.
func (s *Server) waitReady(ctx context.Context) (*pgconn.PgConn, error) {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable",
		quoteDSN(s.dir), s.port, Superuser))
	if err != nil {
		return nil, fmt.Errorf("pgnative: %w", err)
	}
	cfg.Fallbacks = nil
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	pidFile := filepath.Join(s.dataDir, "postmaster.pid")
	for {
		// Reading postmaster.pid (as pg_ctl does) costs nothing, while every connection refused
		// with "starting up" costs the server a fork on a machine that is busy starting it.
		if postmasterReady(pidFile) {
			conn, err := pgconn.ConnectConfig(ctx, cfg)
			if err == nil {
				return conn, nil
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code != "57P03" { // 57P03: starting up
				return nil, fmt.Errorf("pgnative: connect to new server: %w", err)
			}
		}
		select {
		case <-s.exited:
			return nil, errors.New("pgnative: server exited")
		case <-ctx.Done():
			return nil, fmt.Errorf("pgnative: waiting for the server to accept connections: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// postmasterReady reports whether the postmaster.pid status line (the 8th, PM_STATUS in
// pidfile.h) says "ready".
func postmasterReady(pidFile string) bool {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	lines := strings.Split(string(b), "\n")
	return len(lines) >= 8 && strings.TrimSpace(lines[7]) == "ready"
}

// setPassword sends a SCRAM verifier computed here, so that the clear password never reaches
// the server, its log or its statistics.
func (s *Server) setPassword(ctx context.Context, conn *pgconn.PgConn) error {
	verifier, err := scramVerifier(s.password)
	if err != nil {
		return err
	}
	sql := fmt.Sprintf("ALTER ROLE %s PASSWORD '%s'", Superuser, verifier)
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("pgnative: set the superuser password: %w", err)
	}
	return nil
}

// Stop shuts the server down (immediate shutdown, as `pg_ctl stop -m immediate`: open
// connections are dropped, nothing is checkpointed) and removes its directory. Stop always cleans up: when ctx ends first, the server's
// processes are killed instead. Later calls return the first call's result.
func (s *Server) Stop(ctx context.Context) error {
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	if s.stopped {
		return s.stopErr
	}
	s.stopped = true
	began := time.Now()
	var errs []error
	if s.proc != nil {
		if err := s.proc.Signal(stopSignal); err != nil && !errors.Is(err, os.ErrProcessDone) {
			errs = append(errs, fmt.Errorf("pgnative: signal postgres: %w", err))
		}
		grace, cancel := context.WithTimeout(ctx, stopGrace)
		select {
		case <-s.exited:
		case <-grace.Done():
		}
		cancel()
		errs = append(errs, s.kill())
	}
	errs = append(errs, removeAll(s.dir))
	s.stopErr = errors.Join(errs...)
	s.logger.Debug("pgnative: server stopped", "dir", s.dir, "elapsed", time.Since(began), "err", s.stopErr)
	return s.stopErr
}

// abort undoes a failed Start.
func (s *Server) abort() error {
	s.stores.Wait()
	s.stopMu.Lock()
	defer s.stopMu.Unlock()
	s.stopped = true
	return errors.Join(s.kill(), removeAll(s.dir))
}

// kill makes sure the postmaster and its children are gone, killing the process group when the
// postmaster is still there.
func (s *Server) kill() error {
	if s.proc == nil {
		return nil
	}
	select {
	case <-s.exited:
		s.proc = nil
		return nil
	default:
	}
	if err := killGroup(s.proc.Pid); err != nil {
		return fmt.Errorf("pgnative: kill postgres (pid %d): %w", s.proc.Pid, err)
	}
	select {
	case <-s.exited:
		s.proc = nil
		return nil
	case <-time.After(5 * time.Second):
		return fmt.Errorf("pgnative: postgres (pid %d) did not exit after SIGKILL", s.proc.Pid)
	}
}

// removeAll retries because processes killed a moment ago may still be closing files in dir.
func removeAll(dir string) error {
	var err error
	for range 5 {
		if err = os.RemoveAll(dir); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("pgnative: remove %s: %w", dir, err)
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

// freePort asks the kernel for an unused port. Another process may take it before the server
// binds it; launch retries then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgnative: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// randomToken is 128 random bits in hex: safe in URLs, SQL literals and files without escaping.
func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgnative: random password: %w", err)
	}
	return fmt.Sprintf("%x", b), nil
}

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// scramVerifier computes what PostgreSQL stores in pg_authid.rolpassword for password
// (RFC 5802/7677). The password is ASCII, so SASLprep leaves it unchanged.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("pgnative: random salt: %w", err)
	}
	return scramVerifierWithSalt(password, salt, scramIterations)
}

func scramVerifierWithSalt(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("pgnative: scram: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac(salted, "Client Key"))
	server := mac(salted, "Server Key")
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, enc(salt), enc(stored[:]), enc(server)), nil
}

// quoteDSN quotes a keyword/value connection-string value.
func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
