package ephemeral

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

func TestEngineOf(t *testing.T) {
	for host, want := range map[string]string{
		"unix:///run/podman/podman.sock": "podman",
		"unix:///var/run/docker.sock":    "docker",
		"tcp://10.0.0.1:2375":            "docker",
	} {
		if got := engineOf(host); got != want {
			t.Errorf("engineOf(%q) = %q, want %q", host, got, want)
		}
	}
}

// fakeCLIs puts executables with the given names in a directory and returns it.
func fakeCLIs(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestResolveEngine(t *testing.T) {
	both := fakeCLIs(t, "podman", "docker")
	dockerOnly := fakeCLIs(t, "docker")
	none := fakeCLIs(t)
	tests := []struct {
		name    string
		option  string
		path    string
		env     []string
		want    string
		wantErr int // exit code of the error; 0 = no error
	}{
		{"option", "docker", both, []string{runtimeVariable + "=podman"}, "docker", 0},
		{"runtime variable", "", both, []string{runtimeVariable + "=docker"}, "docker", 0},
		{"runtime variable before DOCKER_HOST", "", both, []string{runtimeVariable + "=docker", "DOCKER_HOST=unix:///run/podman/podman.sock"}, "docker", 0},
		{"DOCKER_HOST at podman", "", both, []string{"DOCKER_HOST=unix:///run/podman/podman.sock"}, "podman", 0},
		{"DOCKER_HOST at docker", "", both, []string{"DOCKER_HOST=unix:///var/run/docker.sock"}, "docker", 0},
		{"detected: podman first", "", both, nil, "podman", 0},
		{"detected: docker only", "", dockerOnly, nil, "docker", 0},
		{"unknown engine", "lxc", both, nil, "", exitcode.Usage},
		{"unknown runtime variable", "", both, []string{runtimeVariable + "=lxc"}, "", exitcode.Usage},
		{"asked for a missing CLI", "podman", dockerOnly, nil, "", exitcode.Failure},
		{"none installed", "", none, nil, "", exitcode.Failure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			environ := append([]string{"PATH=" + tt.path}, tt.env...)
			e, err := resolveEngine(tt.option, environ)
			if tt.wantErr != 0 {
				if err == nil {
					t.Fatalf("resolveEngine = %s, want an error", e.Name())
				}
				if got := exitcode.Of(err); got != tt.wantErr {
					t.Errorf("exit code %d, want %d (%v)", got, tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.Name() != tt.want || filepath.Dir(e.Path()) != tt.path {
				t.Errorf("resolveEngine = %s at %s, want %s in %s", e.Name(), e.Path(), tt.want, tt.path)
			}
		})
	}
}

func TestContainerRunOptions(t *testing.T) {
	inst := &Instance{ID: "abc123", Container: containerPrefix + "abc123", password: "secret"}
	o := containerRunOptions(inst, "img:1", 5440)
	if o.Name != "poststack-ephemeral-abc123" || o.Image != "img:1" || o.Labels[labelID] != "abc123" || len(o.Labels[labelKey]) != 64 {
		t.Errorf("name/image/labels = %q %q %v", o.Name, o.Image, o.Labels)
	}
	if strings.Contains(o.Labels[labelKey], "secret") {
		t.Errorf("the key label shows the password: %v", o.Labels)
	}
	for _, kv := range []string{"POSTGRES_USER=postgres", "POSTGRES_DB=postgres"} {
		if !slices.Contains(o.Env, kv) {
			t.Errorf("env %v lacks %s", o.Env, kv)
		}
	}
	// The password goes by name (`-e POSTGRES_PASSWORD`), never on the command line.
	if !slices.Equal(o.Secrets, []string{"POSTGRES_PASSWORD=secret"}) || slices.ContainsFunc(o.Env, func(kv string) bool { return strings.Contains(kv, "secret") }) {
		t.Errorf("env %v, secrets %v; want the password among the secrets only", o.Env, o.Secrets)
	}
	if want := (engine.PortMapping{HostIP: "127.0.0.1", HostPort: 5440, ContainerPort: 5432}); len(o.Ports) != 1 || o.Ports[0] != want {
		t.Errorf("ports = %+v, want only %+v", o.Ports, want)
	}
	if !slices.Equal(o.ExtraArgs, []string{"--tmpfs", pgdata + ":rw"}) {
		t.Errorf("extra args = %v, want PGDATA on a tmpfs", o.ExtraArgs)
	}
	if o.Cmd[0] != "postgres" || !slices.Contains(o.Cmd, "fsync=off") {
		t.Errorf("cmd = %v", o.Cmd)
	}
	if o.StopTimeout <= 0 || o.StopTimeout > 5*time.Second {
		t.Errorf("stop timeout %v, want a small one", o.StopTimeout)
	}
}

func TestPortTaken(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&engine.CommandError{ExitCode: 126, Stderr: "Error: rootlessport listen tcp 127.0.0.1:5440: bind: address already in use"}, true},
		{&engine.CommandError{ExitCode: 125, Stderr: "docker: Error response from daemon: driver failed programming external connectivity on endpoint x: Bind for 127.0.0.1:5440 failed: port is already allocated."}, true},
		{&engine.CommandError{ExitCode: 125, Stderr: "Error: image not known"}, false},
		{errors.New("address already in use"), false}, // not from the engine
	}
	for _, tt := range tests {
		if got := portTaken(tt.err); got != tt.want {
			t.Errorf("portTaken(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestFreePortIsBindable(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("port %d from freePort: %v", p, err)
	}
	l.Close()
}

// TestWaitAcceptingStops checks both ways the wait ends without a server: the caller cancels
// (exit 130, not a timeout) and a container that died (at once, with its error).
func TestWaitAcceptingStops(t *testing.T) {
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	dsn := "postgres://postgres:x@127.0.0.1:" + strconv.Itoa(p) + "/postgres?sslmode=disable"

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	began := time.Now()
	err = waitAccepting(ctx, dsn, nil)
	if !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Interrupted {
		t.Errorf("cancelled wait: %v (exit %d); want the cancellation, exit 130", err, exitcode.Of(err))
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("cancelled wait took %v", d)
	}

	died := errors.New("container exited with code 1")
	began = time.Now()
	err = waitAccepting(context.Background(), dsn, func(context.Context) error { return died })
	if !errors.Is(err, died) {
		t.Errorf("wait on a dead container: %v, want %v", err, died)
	}
	if d := time.Since(began); d > deathCheckAfter+2*time.Second {
		t.Errorf("wait on a dead container took %v", d)
	}
}
