package compose

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
)

// TestPodmanServiceOutlivesCallersTempDir: the API service ps-env starts keeps running after
// the run that started it, so it must not depend on that run's TMPDIR. Started with a TMPDIR
// that is then removed (as a test's or a CI step's is), it still answers image inspections.
func TestPodmanServiceOutlivesCallersTempDir(t *testing.T) {
	eng, env := newEngine(t, engine.Podman)
	image := testenv.BaseImage(t, testenv.EnginePodman)
	tmp := t.TempDir()
	socket := filepath.Join(t.TempDir(), "podman.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pid, err := ensurePodmanService(ctx, eng, socket, append(env, "TMPDIR="+tmp))
	if err != nil {
		t.Fatal(err)
	}
	if pid == 0 {
		t.Fatal("a service answered on a new socket before one was started")
	}
	t.Cleanup(func() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		_ = os.Remove(socket)
	})
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/v1.41/images/"+image+"/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("image inspect of %s after the caller's TMPDIR was removed: %s", image, resp.Status)
	}
}

func TestServiceEnvDropsTMPDIR(t *testing.T) {
	got := serviceEnv([]string{"PATH=/bin", "TMPDIR=/tmp/run-1", "HOME=/root"})
	if len(got) != 2 || got[0] != "PATH=/bin" || got[1] != "HOME=/root" {
		t.Fatalf("serviceEnv = %v", got)
	}
}
