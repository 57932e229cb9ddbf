// Package hostport picks host ports for environments: the first free one from a start, and
// the one an environment with `port: auto` got on its first use, kept in .poststack/ so that it
// never moves.
package hostport

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/secret"
)

// AutoStart is where automatic database ports start: 5432 is left to a host PostgreSQL.
const AutoStart = 5433

// Free reports whether a TCP listener can bind bind:port now. Binding is the only reliable
// answer, whoever holds the port (a container, a host PostgreSQL, any program).
func Free(bind string, port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// Forwarded reports whether connections to 127.0.0.1:port go somewhere although nothing here
// listens on it: a container engine's DNAT rule (podman's netavark leaves those of containers
// that were not torn down cleanly) sends them to a container that may be long gone, so a
// server bound there would never be reached. With nothing listening and nothing forwarding, a
// local connection is refused at once; anything else (an answer, a timeout) is a forward.
func Forwarded(port int) bool {
	accepted, err := probe("127.0.0.1", port, forwardProbe)
	return accepted || err != nil
}

// probe connects to host:port once and says what the kernel answered: accepted, refused
// (false and nil), or neither within timeout (the error: a timeout, no route to host).
func probe(host string, port int, timeout time.Duration) (accepted bool, err error) {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	if err == nil {
		c.Close()
		return true, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return false, nil
	}
	return false, err
}

// forwardProbe bounds Forwarded: a refusal on loopback takes microseconds.
const forwardProbe = 200 * time.Millisecond

// DNATPorts lists the ports that the host's iptables nat table rewrites to another address,
// in any chain, reached or not: podman's netavark keeps the rules of a container whose `run`
// was interrupted in a chain shared by every container, where they lie unseen (Forwarded finds
// nothing) until a new container on the same port adds the jump that leads there, and then
// send its connections to the old container's address — nowhere, or a live container that
// refuses them. Reading the table needs root and the iptables program; without either (a
// rootless engine, docker's userland proxy: no such rules) it returns nil. ctx bounds the run.
func DNATPorts(ctx context.Context, euid int) map[int]bool {
	if euid != 0 {
		return nil
	}
	path, err := exec.LookPath("iptables")
	if err != nil {
		return nil
	}
	out, err := exec.CommandContext(ctx, path, "-w", "-t", "nat", "-S").Output()
	if err != nil {
		return nil
	}
	return parseDNATPorts(string(out))
}

// parseDNATPorts reads `iptables -t nat -S`: the --dport of every rule that jumps to DNAT.
func parseDNATPorts(rules string) map[int]bool {
	ports := map[int]bool{}
	for _, line := range strings.Split(rules, "\n") {
		f := strings.Fields(line)
		if !slices.Contains(f, "DNAT") {
			continue
		}
		if i := slices.Index(f, "-d"); i >= 0 && i+1 < len(f) && !strings.HasPrefix(f[i+1], "127.") {
			continue // connections to another address of the host
		}
		for i := 0; i+1 < len(f); i++ {
			if f[i] != "--dport" {
				continue
			}
			// A single port, or a range lo:hi.
			lo, hi, isRange := strings.Cut(f[i+1], ":")
			a, err := strconv.Atoi(lo)
			if err != nil {
				continue
			}
			b := a
			if isRange {
				if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 65535 {
					continue
				}
			}
			for p := a; p <= b && p <= 65535; p++ {
				ports[p] = true
			}
		}
	}
	return ports
}

// Unanswered checks host:port just after an engine published a running container's port
// there: the kernel then answers a connection at once, accepting it (a userland proxy, or the
// server) or refusing it (the container's server is not listening yet). A connection that goes
// unanswered was sent elsewhere by a forwarding rule matched before the container's own: one
// that podman's netavark left behind for a container it never tore down (a `run` interrupted
// at the wrong moment leaves one), which Forwarded cannot see before the new container's rule
// leads to it. The error says so and how to find the rule; nil means the port was answered.
func Unanswered(host string, port int) error {
	if _, err := probe(host, port, answerProbe); err != nil {
		return &UnansweredError{Host: host, Port: port, Err: err}
	}
	return nil
}

// answerProbe bounds Unanswered: generous, as it is only spent when the port is misrouted.
const answerProbe = 2 * time.Second

// UnansweredError is Unanswered's finding.
type UnansweredError struct {
	Host string
	Port int
	Err  error // what the connection attempt got: a timeout, no route to host
}

func (e *UnansweredError) Error() string {
	return fmt.Sprintf("connections to %s go unanswered (%v): a firewall rule left behind by an earlier container forwards that port elsewhere (%s)",
		String(e.Host, e.Port), e.Err, RuleHint(e.Port))
}

// RuleHint says how to find the nat rules for port, for messages.
func RuleHint(port int) string {
	return fmt.Sprintf("find it with: iptables -t nat -S | grep -- '--dport %d'", port)
}

func (e *UnansweredError) Unwrap() error { return e.Err }

// FirstFree returns the first port from `from` up to 65535 that is free on bind and not in
// skip; none is a usage error.
func FirstFree(bind string, from int, skip map[int]bool) (int, error) {
	if from < 1 || from > 65535 {
		return 0, exitcode.Usagef("port %d out of range 1–65535", from)
	}
	for p := from; p <= 65535; p++ {
		if !skip[p] && Free(bind, p) && !Forwarded(p) {
			return p, nil
		}
	}
	return 0, exitcode.Usagef("no free port on %s from %d up", bind, from)
}

// String is for messages.
func String(bind string, port int) string { return fmt.Sprintf("%s:%d", bind, port) }

// Recorded returns the host port kept for project and env in dir/.poststack/, picking and
// recording it on first use: the first port from AutoStart up that is free on bind, not in
// taken, not recorded for another environment of the state directory and, when claims names a
// directory, not claimed there by another environment of this user (a port picked for a
// project that is down is free, and would otherwise be picked again for the next one). It
// never moves after that, even when the port is busy later: a check at start-up reports who
// holds it.
func Recorded(dir, project, env, bind string, taken map[int]bool, claims string) (int, error) {
	v, err := secret.Record(dir, project, env, Suffix, func() (string, error) {
		skip := maps.Clone(taken)
		if skip == nil {
			skip = map[int]bool{}
		}
		for _, p := range recordedPorts(filepath.Join(dir, secret.StateDir)) {
			skip[p] = true
		}
		for from := AutoStart; ; {
			p, err := FirstFree(bind, from, skip)
			if err != nil {
				return "", err
			}
			if claim(claims, p, dir, project, env) {
				return strconv.Itoa(p), nil
			}
			skip[p] = true
			from = p + 1
		}
	})
	if err != nil {
		return 0, err
	}
	p, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || p < 1 || p > 65535 {
		path := filepath.Join(dir, secret.StateDir, project+"-"+env+Suffix)
		return 0, exitcode.Usagef("%s does not hold a port 1–65535; remove it (rm %s) to pick a new one", path, path)
	}
	return p, nil
}

// Suffix ends the name of a recorded port's file: <project>-<env>.port.
const Suffix = ".port"

// recordedPorts reads the ports recorded in a state directory; unreadable entries are skipped
// (they are only hints here, and Recorded checks the one it returns).
func recordedPorts(state string) []int {
	entries, err := os.ReadDir(state)
	if err != nil {
		return nil
	}
	var ports []int
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), Suffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(state, e.Name()))
		if err != nil || len(b) > 16 {
			continue
		}
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			ports = append(ports, p)
		}
	}
	return ports
}

// claim takes port p for the environment in the claims directory: a file named for the port,
// holding the project directory and the environment. A claim whose environment no longer
// records that port (the project was removed, or its .poststack/ with it) is taken over.
func claim(claims string, p int, dir, project, env string) bool {
	if claims == "" {
		return true
	}
	if err := os.MkdirAll(claims, 0o700); err != nil {
		return true // no registry: the bind check alone decides
	}
	owner := dir + "\n" + project + "-" + env + "\n"
	path := filepath.Join(claims, strconv.Itoa(p))
	for range 2 {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err == nil {
			_, err = f.WriteString(owner)
			return errors.Join(err, f.Close()) == nil
		}
		b, rerr := os.ReadFile(path)
		if rerr != nil || len(b) > 8192 {
			return false
		}
		if string(b) == owner {
			return true
		}
		odir, name, _ := strings.Cut(strings.TrimSuffix(string(b), "\n"), "\n")
		rec, err := os.ReadFile(filepath.Join(odir, secret.StateDir, name+Suffix))
		if err == nil && strings.TrimSpace(string(rec)) == strconv.Itoa(p) {
			return false // still that environment's
		}
		os.Remove(path) // stale: take it over
	}
	return false
}
