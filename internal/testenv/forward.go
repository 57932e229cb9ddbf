package testenv

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// ForwardElsewhere plants, ahead of every engine's, the kind of rule podman's netavark leaves
// behind for a container whose run was interrupted: connections from this host to
// 127.0.0.1:port are sent to to (host:port) instead. The rule is removed when the test ends.
// It needs root, for the host's firewall: without it the test is skipped; a missing iptables
// skips it too, or fails it under CI.
func ForwardElsewhere(tb testing.TB, port int, to string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("testenv: needs root, for an iptables rule on the host, where the engines' forwarding rules are")
	}
	iptables := Program(tb, "iptables")
	rule := []string{"OUTPUT", "-d", "127.0.0.1/32", "-p", "tcp", "--dport", strconv.Itoa(port), "-j", "DNAT", "--to-destination", to}
	if out, err := exec.Command(iptables, append([]string{"-t", "nat", "-I"}, rule...)...).CombinedOutput(); err != nil {
		tb.Fatalf("testenv: iptables: %v: %s", err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command(iptables, append([]string{"-t", "nat", "-D"}, rule...)...).CombinedOutput(); err != nil {
			tb.Errorf("testenv: iptables: removing the planted rule: %v: %s", err, out)
		}
	})
}
