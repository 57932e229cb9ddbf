// Package testenv gives tests the real services they need — PostgreSQL, podman, docker and the
// locally built Debian base image — or gets them out of the way when a service is missing.
//
// Outside CI a missing service skips the test, so `go test ./...` works on any laptop. Under CI
// (the CI environment variable is non-empty) a missing service fails the test instead: CI runs
// scripts/setup.sh first, so a skip there would hide a broken machine.
package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/poststack/poststack/pkg/pgnative"
)

// Environment variables the helpers read.
const (
	// DatabaseURLEnv names a PostgreSQL superuser URL for tests.
	DatabaseURLEnv = "POSTSTACK_TEST_DATABASE_URL"
	// DefaultDatabaseURL is the server scripts/setup.sh configures, which the
	// benchmarks use; tests start their own unless DatabaseURLEnv is set.
	DefaultDatabaseURL = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
	// DefaultBaseImage is the Debian image scripts/setup.sh builds with debootstrap, because no
	// registry is reachable on the development and CI machines.
	DefaultBaseImage = "localhost/debian:bookworm"
	// PodmanSocketPath is where scripts/setup.sh serves podman's Docker-compatible API.
	PodmanSocketPath = "/run/podman/podman.sock"
	// DockerSocketPath is the docker daemon's default socket.
	DockerSocketPath = "/var/run/docker.sock"
)

// Engine names accepted by BaseImage.
const (
	EnginePodman = "podman"
	EngineDocker = "docker"
)

const fixHint = "run scripts/setup.sh (as root) or `make test`"

// probeTimeout bounds each availability check so a wedged daemon fails fast instead of eating
// the test binary's timeout.
const probeTimeout = 20 * time.Second

// unavailable stops the test: fatal under CI, skipped elsewhere.
func unavailable(tb testing.TB, getenv func(string) string, format string, args ...any) {
	tb.Helper()
	msg := fmt.Sprintf(format, args...)
	if getenv("CI") != "" {
		tb.Fatalf("testenv: %s; %s", msg, fixHint)
		return
	}
	tb.Skipf("testenv: %s; skipping (%s)", msg, fixHint)
}

// Postgres returns a PostgreSQL superuser URL that answers `select 1`: the
// server named by POSTSTACK_TEST_DATABASE_URL when it is set, else a
// throwaway server from the host's binaries (pkg/pgnative) that all tests
// of this test binary share. Tests isolate themselves with Database.
func Postgres(tb testing.TB) string {
	tb.Helper()
	return postgres(tb, os.Getenv)
}

// shared is the native server of this test binary, started on first use.
// It is the one piece of package state here: a server per test binary is
// what makes hundreds of tests cheap, and the kernel stops it when the
// binary exits (pgnative ties the server's life to its parent's), and the
// next pgnative.Start removes its files.
var shared struct {
	once sync.Once
	url  string
	err  error
}

func postgres(tb testing.TB, getenv func(string) string) string {
	tb.Helper()
	if dbURL := getenv(DatabaseURLEnv); dbURL != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := pingPostgres(ctx, dbURL); err != nil {
			unavailable(tb, getenv, "PostgreSQL at %s (%s) is not usable: %v", redactURL(dbURL), DatabaseURLEnv, err)
		}
		return dbURL
	}
	shared.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		srv, err := pgnative.Start(ctx)
		if err != nil {
			shared.err = err
			return
		}
		shared.url = srv.URL()
	})
	switch {
	case errors.Is(shared.err, pgnative.ErrNoBinaries):
		unavailable(tb, getenv, "no PostgreSQL server binaries for a test server (%v), and %s is not set", shared.err, DatabaseURLEnv)
	case shared.err != nil:
		tb.Fatalf("testenv: starting the test PostgreSQL server: %v", shared.err)
	}
	return shared.url
}

func pingPostgres(ctx context.Context, dbURL string) error {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	if err := conn.QueryRow(ctx, "select 1").Scan(&one); err != nil {
		return fmt.Errorf("select 1: %w", err)
	}
	return nil
}

// redactURL hides the password so that test logs never carry it.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// Podman returns the path of a podman binary that can talk to its storage and runtime.
func Podman(tb testing.TB) string {
	tb.Helper()
	return podman(tb, os.Getenv)
}

func podman(tb testing.TB, getenv func(string) string) string {
	tb.Helper()
	path, err := exec.LookPath("podman")
	if err != nil {
		unavailable(tb, getenv, "podman is not installed")
		return ""
	}
	lockEngines(tb)
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "info", "--format", "{{.Host.OCIRuntime.Name}}").CombinedOutput()
	if err != nil {
		unavailable(tb, getenv, "`podman info` failed: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return path
}

// PodmanSocket returns the DOCKER_HOST value ("unix:///run/podman/podman.sock") of podman's
// Docker-compatible API, for tests that drive podman through testcontainers-go.
func PodmanSocket(tb testing.TB) string {
	tb.Helper()
	host := "unix://" + PodmanSocketPath
	lockEngines(tb)
	if err := pingDocker(host); err != nil {
		unavailable(tb, os.Getenv, "podman API socket %s does not answer: %v", PodmanSocketPath, err)
	}
	return host
}

// Docker returns the DOCKER_HOST value of a docker daemon that answers a ping: DOCKER_HOST when
// set, else unix:///var/run/docker.sock.
func Docker(tb testing.TB) string {
	tb.Helper()
	return docker(tb, os.Getenv)
}

func docker(tb testing.TB, getenv func(string) string) string {
	tb.Helper()
	host := getenv("DOCKER_HOST")
	if host == "" {
		host = "unix://" + DockerSocketPath
	}
	lockEngines(tb)
	if err := pingDocker(host); err != nil {
		unavailable(tb, getenv, "docker daemon at %s does not answer: %v", host, err)
	}
	return host
}

// apiClient speaks HTTP to a Docker-API endpoint; the docker CLI is not needed for a ping.
func apiClient(host string) (*http.Client, string, error) {
	u, err := url.Parse(host)
	if err != nil {
		return nil, "", fmt.Errorf("parse %q: %w", host, err)
	}
	switch u.Scheme {
	case "unix":
		sock := u.Path
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}
		return &http.Client{Transport: tr, Timeout: probeTimeout}, "http://docker", nil
	case "tcp", "http":
		return &http.Client{Timeout: probeTimeout}, "http://" + u.Host, nil
	default:
		return nil, "", fmt.Errorf("unsupported DOCKER_HOST scheme %q", u.Scheme)
	}
}

func pingDocker(host string) error {
	c, base, err := apiClient(host)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get(base + "/_ping")
	if err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: HTTP %s", resp.Status)
	}
	return nil
}

// BaseImage returns DefaultBaseImage after checking that engine (EnginePodman or EngineDocker)
// has it locally; nothing can be pulled on these machines.
func BaseImage(tb testing.TB, engine string) string {
	tb.Helper()
	return baseImage(tb, engine, os.Getenv)
}

func baseImage(tb testing.TB, engine string, getenv func(string) string) string {
	tb.Helper()
	image := DefaultBaseImage
	var err error
	switch engine {
	case EnginePodman:
		path := podman(tb, getenv)
		if path == "" {
			return image
		}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		err = exec.CommandContext(ctx, path, "image", "exists", image).Run()
	case EngineDocker:
		err = dockerImageExists(docker(tb, getenv), image)
	default:
		tb.Fatalf("testenv.BaseImage: unknown engine %q (want %q or %q)", engine, EnginePodman, EngineDocker)
		return image
	}
	if err != nil {
		unavailable(tb, getenv, "image %s is missing in %s: %v", image, engine, err)
	}
	return image
}

var errNoImage = errors.New("no such image")

func dockerImageExists(host, image string) error {
	c, base, err := apiClient(host)
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	resp, err := c.Get(base + "/images/" + url.PathEscape(image) + "/json")
	if err != nil {
		return fmt.Errorf("inspect image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return errNoImage
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("inspect image: HTTP %s", resp.Status)
	}
	var body struct {
		ID string `json:"Id"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("inspect image: decode: %w", err)
	}
	return nil
}

// Act returns the path of nektos/act, the GitHub Actions runner emulation that tests of the
// composite action run workflows with (scripts/setup.sh act builds it).
func Act(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("act")
	if err != nil {
		unavailable(tb, os.Getenv, "nektos/act is not installed")
		return ""
	}
	return path
}

// Program returns the path of the named program a test runs (psql, the docker CLI). A missing
// one skips the test, or fails it under CI.
func Program(tb testing.TB, name string) string {
	tb.Helper()
	return program(tb, os.Getenv, name)
}

func program(tb testing.TB, getenv func(string) string, name string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		unavailable(tb, getenv, "%s is not installed", name)
		return ""
	}
	return path
}

// PostgresBinaries returns the directory of the PostgreSQL server binaries that pgnative runs.
// Missing binaries skip the test, or fail it under CI; any other error fails it.
func PostgresBinaries(tb testing.TB) string {
	tb.Helper()
	dir, err := pgnative.BinDir()
	if errors.Is(err, pgnative.ErrNoBinaries) {
		unavailable(tb, os.Getenv, "%v", err)
		return ""
	}
	if err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	return dir
}

// NativePostgres starts a private PostgreSQL server from the host's binaries (see pgnative) for
// the calling test and stops it, removing every file, when the test ends. Options are passed to
// pgnative.Start. Missing PostgreSQL binaries skip the test, or fail it under CI; any other
// failure to start fails it. When the test fails, the server's last log lines are logged.
func NativePostgres(tb testing.TB, opts ...pgnative.Option) *pgnative.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := pgnative.Start(ctx, opts...)
	if errors.Is(err, pgnative.ErrNoBinaries) {
		unavailable(tb, os.Getenv, "%v", err)
		return nil
	}
	if err != nil {
		tb.Fatalf("testenv: %v", err)
		return nil
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("testenv: PostgreSQL log of %s:\n%s", srv.Dir(), srv.Log())
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			tb.Errorf("testenv: %v", err)
		}
	})
	return srv
}
