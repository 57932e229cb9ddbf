package hostport

import (
	"errors"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
)

func TestRecordedPicksOnceAndKeeps(t *testing.T) {
	dir := t.TempDir()
	// Hold the first port Recorded would pick, so it has to skip it.
	first, err := FirstFree("127.0.0.1", AutoStart, nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(first))
	if err != nil {
		t.Fatal(err)
	}
	p1, err := Recorded(dir, "shop", "dev", "127.0.0.1", map[int]bool{first + 1: true}, "")
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if p1 <= first+1 {
		t.Errorf("picked %d: want past the busy %d and the taken %d", p1, first, first+1)
	}
	// Kept: the same port even though the earlier one is free now and p1 is held.
	hold, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p1))
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	again, err := Recorded(dir, "shop", "dev", "127.0.0.1", nil, "")
	if err != nil || again != p1 {
		t.Fatalf("second Recorded = %d, %v; want %d", again, err, p1)
	}
	// Another environment of the same state directory never gets the recorded one.
	hold.Close()
	other, err := Recorded(dir, "shop", "staging", "127.0.0.1", nil, "")
	if err != nil || other == p1 {
		t.Fatalf("staging got %d, %v; dev has %d", other, err, p1)
	}
	b, err := os.ReadFile(filepath.Join(dir, ".poststack", "shop-dev.port"))
	if err != nil || string(b) != strconv.Itoa(p1)+"\n" {
		t.Errorf("state file = %q, %v", b, err)
	}
}

func TestRecordedRefusesPlantedFiles(t *testing.T) {
	for name, plant := range map[string]func(t *testing.T, state string){
		"garbage": func(t *testing.T, state string) {
			os.WriteFile(filepath.Join(state, "shop-dev.port"), []byte("22; rm -rf /\n"), 0o600)
		},
		"out of range": func(t *testing.T, state string) {
			os.WriteFile(filepath.Join(state, "shop-dev.port"), []byte("70000\n"), 0o600)
		},
		"symlink": func(t *testing.T, state string) {
			os.Symlink("/etc/hostname", filepath.Join(state, "shop-dev.port"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			state := filepath.Join(dir, ".poststack")
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			plant(t, state)
			_, err := Recorded(dir, "shop", "dev", "127.0.0.1", nil, "")
			if exitcode.Of(err) != exitcode.Usage {
				t.Fatalf("err = %v (exit %d), want exit 2", err, exitcode.Of(err))
			}
		})
	}
}

// TestRecordedClaims: a port claimed by another project's environment is not picked again even
// while that project is down (the port is free); a claim whose project is gone is taken over.
func TestRecordedClaims(t *testing.T) {
	claims := filepath.Join(t.TempDir(), "ports")
	a, b := t.TempDir(), t.TempDir()
	pa, err := Recorded(a, "one", "dev", "127.0.0.1", nil, claims)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := Recorded(b, "two", "dev", "127.0.0.1", nil, claims)
	if err != nil {
		t.Fatal(err)
	}
	if pa == pb {
		t.Fatalf("both projects got port %d", pa)
	}
	// Project one is removed: its claim is stale, and a third project may take its port.
	if err := os.RemoveAll(a); err != nil {
		t.Fatal(err)
	}
	c := t.TempDir()
	pc, err := Recorded(c, "three", "dev", "127.0.0.1", nil, claims)
	if err != nil {
		t.Fatal(err)
	}
	if pc != pa {
		t.Errorf("third project got %d; want the stale claim's %d", pc, pa)
	}
}

// TestForwarded: a port nothing listens on is refused at once (not forwarded); one that
// answers is. (A stale engine DNAT rule answers like a timeout; FirstFree skips both.)
func TestForwarded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if !Forwarded(port) {
		t.Errorf("port %d answers: want forwarded", port)
	}
	l.Close()
	if Forwarded(port) {
		t.Errorf("port %d: nothing listens, want not forwarded", port)
	}
}

// unansweredEnv makes TestUnanswered run its inner half, in the network namespace where its
// outer half planted the forwarding rules.
const unansweredEnv = "HOSTPORT_TEST_UNANSWERED"

// TestUnanswered: a port that is listened on, or refused, was answered; one that a rule
// forwards to an address nobody answers at (no host on the far end of a veth pair answers ARP), or to no
// route at all, was not, and the error says so and names the port. The rules live in a network
// namespace of the test's own, so that nothing outlives the test.
func TestUnanswered(t *testing.T) {
	if os.Getenv(unansweredEnv) != "" {
		unanswered(t)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, for a network namespace and iptables rules in it")
	}
	for _, prog := range []string{"unshare", "ip", "iptables"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s is not installed", prog)
		}
	}
	script := `ip link set lo up &&
ip link add v0 type veth peer name v1 && ip addr add 10.77.0.1/24 dev v0 && ip link set v1 up && ip link set v0 up &&
iptables -t nat -A OUTPUT -d 127.0.0.1 -p tcp --dport 40001 -j DNAT --to-destination 10.77.0.2:5432 &&
iptables -t nat -A OUTPUT -d 127.0.0.1 -p tcp --dport 40002 -j DNAT --to-destination 10.99.0.2:5432 &&
exec "$1" -test.run='^TestUnanswered$' -test.count=1 -test.v`
	cmd := exec.Command("unshare", "--net", "--", "sh", "-c", script, "sh", os.Args[0])
	cmd.Env = append(os.Environ(), unansweredEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("in a network namespace: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnanswered") {
		t.Fatalf("the inner half did not pass:\n%s", out)
	}
}

func unanswered(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listened := l.Addr().(*net.TCPAddr).Port
	if err := Unanswered("127.0.0.1", listened); err != nil {
		t.Errorf("a listened-on port: %v", err)
	}
	l.Close()
	if err := Unanswered("127.0.0.1", listened); err != nil {
		t.Errorf("a refused port: %v", err)
	}
	for _, port := range []int{40001, 40002} {
		err := Unanswered("127.0.0.1", port)
		var ue *UnansweredError
		if !errors.As(err, &ue) || ue.Port != port {
			t.Errorf("port %d forwarded to nowhere: %v; want an UnansweredError for it", port, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "127.0.0.1:"+strconv.Itoa(port)+" go unanswered") || !strings.Contains(msg, "--dport "+strconv.Itoa(port)) {
			t.Errorf("message %q: want it to name the address and how to find the rule", msg)
		}
	}
}

// TestParseDNATPorts reads a nat table as netavark and docker leave it: the DNAT rules' ports,
// reached or not, single or ranges, and none of the rules that only jump, mark or masquerade,
// nor a DNAT for another address of the host.
func TestParseDNATPorts(t *testing.T) {
	rules := `-P OUTPUT ACCEPT
-N NETAVARK-DN-1D8721804F16F
-A OUTPUT -m addrtype --dst-type LOCAL -j NETAVARK-HOSTPORT-DNAT
-A NETAVARK-DN-1D8721804F16F -s 127.0.0.1/32 -d 127.0.0.1/32 -p tcp -m tcp --dport 37495 -j NETAVARK-HOSTPORT-SETMARK
-A NETAVARK-DN-1D8721804F16F -d 127.0.0.1/32 -p tcp -m tcp --dport 37495 -j DNAT --to-destination 10.88.0.32:5432
-A NETAVARK-DN-1D8721804F16F -p tcp -m tcp --dport 8080:8082 -j DNAT --to-destination 10.88.0.40:80
-A NETAVARK-HOSTPORT-DNAT -p tcp -m tcp --dport 33247 -m comment --comment "dnat name: podman id: b2df" -j NETAVARK-DN-1D8721804F16F
-A DOCKER ! -i docker0 -d 192.0.2.2/32 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.2:9000
-A POSTROUTING -s 10.88.0.0/16 -j NETAVARK-1D8721804F16F
`
	got := parseDNATPorts(rules)
	want := map[int]bool{37495: true, 8080: true, 8081: true, 8082: true}
	if !maps.Equal(got, want) {
		t.Errorf("parseDNATPorts = %v, want %v", got, want)
	}
	if len(parseDNATPorts("")) != 0 || len(parseDNATPorts("-A X --dport -j DNAT\n-A X --dport 9:1 -j DNAT")) != 0 {
		t.Error("empty or malformed rules gave ports")
	}
}
