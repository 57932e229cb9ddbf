package hostport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
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
