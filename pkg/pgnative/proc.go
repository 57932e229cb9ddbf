package pgnative

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// identity is who the server's processes run as: the postgres user when we are root (initdb and
// postgres refuse to run as root), ourselves otherwise.
type identity struct {
	cred *syscall.Credential // nil: run as ourselves
	uid  int
	gid  int
}

func serverIdentity() (identity, error) {
	if os.Geteuid() != 0 {
		return identity{uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return identity{}, fmt.Errorf("pgnative: running as root needs a \"postgres\" user to run the server as (initdb refuses root): %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return identity{}, fmt.Errorf("pgnative: user postgres: %w", err)
	}
	return identity{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		uid:  uid,
		gid:  gid,
	}, nil
}

// chown hands a path we created to the server's user; a no-op when that is us.
func (id identity) chown(path string) error {
	if id.cred == nil {
		return nil
	}
	if err := os.Lchown(path, id.uid, id.gid); err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	return nil
}

// childEnv keeps the server's environment independent of ours: PG* variables (PGDATA, PGPORT…)
// would change what initdb and postgres do, and the C locale keeps messages parseable.
func childEnv() []string {
	return []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "LANG=C"}
}

// command prepares a server-side program: as the server's user, in dir, in its own process
// group so that a cancelled Start can kill the program and every child it forked.
func (id identity) command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if ctx != nil {
		cmd = exec.CommandContext(ctx, name, args...)
		cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
		cmd.WaitDelay = 2 * time.Second
	} else {
		cmd = exec.Command(name, args...)
	}
	cmd.Dir = dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: id.cred}
	return cmd
}

// killGroup kills the process group led by pid: only groups we created with Setpgid.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// logTail keeps the last lines a process wrote, for error messages, and forwards everything to
// the caller's writer.
type logTail struct {
	mu    sync.Mutex
	buf   []byte
	limit int
	next  io.Writer
}

func newLogTail(next io.Writer) *logTail {
	return &logTail{limit: 16 << 10, next: next}
}

func (t *logTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2*t.limit {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.limit:]...)
	}
	next := t.next
	t.mu.Unlock()
	// The server must not stall or die because the caller's writer failed.
	_, _ = next.Write(p)
	return len(p), nil
}

// lines returns up to n last complete-or-partial lines.
func (t *logTail) lines(n int) string {
	t.mu.Lock()
	b := bytes.TrimRight(t.buf, "\n")
	t.mu.Unlock()
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			n--
			if n == 0 {
				return string(b[i+1:])
			}
		}
	}
	return string(b)
}

func (t *logTail) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Contains(t.buf, []byte(s))
}

// withLog appends the last lines of a server log to an error, indented, so that a failed start
// explains itself.
func withLog(err error, t *logTail) error {
	tail := strings.TrimSpace(t.lines(15))
	if tail == "" {
		return err
	}
	return fmt.Errorf("%w\nserver log (last lines):\n  %s", err, strings.ReplaceAll(tail, "\n", "\n  "))
}
