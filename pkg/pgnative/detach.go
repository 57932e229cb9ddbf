package pgnative

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// detachedLog is the file a detached server logs to, inside its directory.
const detachedLog = "server.log"

// openDetachedLog creates the log file of a detached server; the postmaster and its backends
// write to it through the inherited descriptor.
func (s *Server) openDetachedLog() (*os.File, error) {
	s.logPath = filepath.Join(s.dir, detachedLog)
	f, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgnative: %w", err)
	}
	return f, nil
}

// readDetachedLog copies the end of a detached server's log into tail, for error messages.
func (s *Server) readDetachedLog(tail *logTail) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	if len(b) > tail.limit {
		b = b[len(b)-tail.limit:]
	}
	_, _ = tail.Write(b)
}

// Running reports the postmaster's pid when a server started by Start (detached or not, by any
// process) is running in dir, the directory Server.Dir returned.
func Running(dir string) (pid int, running bool) {
	dataDir := filepath.Join(dir, "data")
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err = strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0, false
	}
	if !postmasterOf(pid, dataDir) {
		return 0, false
	}
	return pid, true
}

// postmasterOf tells a live postmaster of dataDir from a process that reused its pid: the
// postmaster works in its data directory. A zombie counts as gone.
func postmasterOf(pid int, dataDir string) bool {
	if !alive(pid) {
		return false
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		// Not ours to inspect (another user); the pid file and a live process must do.
		return errors.Is(err, os.ErrPermission)
	}
	want, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		want = dataDir
	}
	return cwd == want || cwd == dataDir
}

// alive reports whether pid exists and is not a zombie waiting for a parent to reap it.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] != 'Z' && b[i+2] != 'X'
}

// StopDir stops the server in dir, as Server.Stop does, from any process: the way to end a
// server started WithDetach by a process that has exited. dir must be a directory Start made
// (Server.Dir); StopDir refuses others, so that a wrong path never deletes unrelated files.
// A server that is no longer running only has its directory removed; a missing directory is
// not an error.
func StopDir(ctx context.Context, dir string) error {
	if !strings.HasPrefix(filepath.Base(dir), dirPrefix) {
		return fmt.Errorf("pgnative: %s is not a server directory (its name does not start with %q)", dir, dirPrefix)
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, ownerFile)); err != nil {
		return fmt.Errorf("pgnative: %s is not a server directory: %w", dir, err)
	}
	var errs []error
	if pid, ok := Running(dir); ok {
		errs = append(errs, stopPID(ctx, pid, filepath.Join(dir, "data")))
	}
	errs = append(errs, removeAll(dir))
	return errors.Join(errs...)
}

// stopPID asks a postmaster that is not our child for an immediate shutdown and waits for it to
// be gone, killing its process group (the session Start gave it) when ctx or the grace ends.
func stopPID(ctx context.Context, pid int, dataDir string) error {
	if err := syscall.Kill(pid, stopSignal); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgnative: signal postgres (pid %d): %w", pid, err)
	}
	grace, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	if waitGone(grace, pid, dataDir) {
		return nil
	}
	if err := killGroup(pid); err != nil {
		return fmt.Errorf("pgnative: kill postgres (pid %d): %w", pid, err)
	}
	wait, cancel2 := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel2()
	if !waitGone(wait, pid, dataDir) {
		return fmt.Errorf("pgnative: postgres (pid %d) did not exit after SIGKILL", pid)
	}
	return nil
}

// waitGone polls until the postmaster and every backend working in dataDir are gone; the
// backends exit just after the postmaster and may still hold files there.
func waitGone(ctx context.Context, pid int, dataDir string) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if !alive(pid) && !anyProcessIn(dataDir) {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// anyProcessIn reports whether a live process works in dir (a backend of a stopped postmaster).
func anyProcessIn(dir string) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd"); err == nil && cwd == dir && alive(pid) {
			return true
		}
	}
	return false
}
