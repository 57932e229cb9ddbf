package pgnative

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/poststack/poststack/pkg/progress"
)

// dirPrefix starts the name of every server directory, so that sweep recognises them.
const dirPrefix = "pgnative-"

// ownerFile records which process created a server directory.
const ownerFile = "owner"

// processStart identifies a live process beyond its pid, which the kernel reuses: the start
// time in clock ticks since boot, field 22 of /proc/PID/stat.
func processStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	// The command name (field 2) is in parentheses and may hold spaces; count after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3
	if len(fields) <= startField {
		return "", false
	}
	return fields[startField], true
}

func writeOwner(dir string) error {
	pid := os.Getpid()
	start, _ := processStart(pid)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), fmt.Appendf(nil, "%d %s\n", pid, start), 0o600); err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	return nil
}

// sweep removes server directories whose creator died without Stop (a test binary killed by
// its timeout): their postmaster got Pdeathsig and is gone, but the files remain, and under
// /dev/shm they hold memory until reboot. A directory is removed only when both its creator
// and its postmaster are dead; one whose owner file is not written yet is left alone.
func sweep(parent string, report progress.Reporter) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), dirPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		if !abandoned(dir) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			report.Info("cannot remove an abandoned server directory", 0, "dir", dir, "err", err)
			continue
		}
		report.Info("removed an abandoned server directory", 0, "dir", dir)
	}
}

func abandoned(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil {
		return false
	}
	if start, ok := processStart(pid); ok && start == f[1] {
		return false
	}
	// The postmaster.pid of a server that is still running names a live process.
	if b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid")); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		if pm, err := strconv.Atoi(strings.TrimSpace(line)); err == nil {
			if _, alive := processStart(pm); alive {
				return false
			}
		}
	}
	return true
}
