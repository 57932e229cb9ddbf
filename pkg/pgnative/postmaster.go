package pgnative

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

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
			s.report.Info("port taken, retrying", 0, "port", port, "attempt", attempt)
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
		dieWithParent(cmd.SysProcAttr)
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
		s.report.Info("postgres accepts connections", time.Since(began), "pid", cmd.Process.Pid, "port", port, "dir", s.dir)
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

// reachThroughURL connects as a caller will, through URL: TCP to 127.0.0.1 with the password.
// The private socket answering says nothing about that port. A container engine can forward it
// without binding it: podman's netavark writes iptables DNAT rules for 127.0.0.1:PORT, and the
// rules of a container that was not torn down cleanly stay. Such a port is free to bind, so the
// postmaster listens on it while every connection goes elsewhere ("connection refused", or
// another server). SCRAM authentication is mutual: a connection that completes it reached this
// server. On a port that does not reach it, the server moves to another free port, unless
// WithPort fixed the port.
func (s *Server) reachThroughURL(ctx context.Context, cfg *config) error {
	for attempt := 1; ; attempt++ {
		err := s.connectURL(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("pgnative: connect through the URL: %w", err)
		}
		select {
		case <-s.exited:
			if cfg.detach {
				s.readDetachedLog(s.log)
			}
			return withLog(fmt.Errorf("pgnative: postgres exited after startup: %w", err), s.log)
		default:
		}
		if cfg.port != 0 || attempt >= maxPortAttempts {
			return fmt.Errorf("pgnative: the server listens on 127.0.0.1:%d but connections there do not reach it (does a container engine forward that port?): %w", s.port, err)
		}
		s.report.Warn("connections to the port do not reach the server; moving to another port", err,
			"port", s.port, "attempt", attempt)
		if err := s.shutdown(ctx); err != nil {
			return err
		}
		conn, err := s.launch(ctx, cfg)
		if err != nil {
			return err
		}
		conn.Close(context.WithoutCancel(ctx))
	}
}

// connectURL opens and closes a connection through URL that only this server can complete.
func (s *Server) connectURL(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	cfg, err := pgconn.ParseConfig(s.URL())
	if err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	// Another server could let the superuser in without a password (trust); SCRAM proves that
	// the server knows this one's.
	cfg.RequireAuth = "scram-sha-256"
	cfg.DialFunc = (&net.Dialer{Timeout: handshakeTimeout}).DialContext
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
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
	s.lateStores.Wait()
	errs = append(errs, removeAll(s.dir))
	s.stopErr = errors.Join(errs...)
	s.report.Info("server stopped", time.Since(began), "dir", s.dir, "err", s.stopErr)
	return s.stopErr
}

// abort undoes a failed Start.
func (s *Server) abort() error {
	s.stores.Wait()
	s.lateStores.Wait()
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

// quoteDSN quotes a keyword/value connection-string value.
func quoteDSN(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}
