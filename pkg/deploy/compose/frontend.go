package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
)

// Front-end names, in the order Detect tries them.
const (
	DockerCompose       = "docker compose"
	DockerComposeV1     = "docker-compose"
	PodmanCompose       = "podman compose"
	PodmanComposeScript = "podman-compose"
)

// RootPodmanSocket is where root's podman serves its Docker-compatible API.
const RootPodmanSocket = "/run/podman/podman.sock"

// socketWait bounds how long Detect waits for a podman API service it started.
const socketWait = 30 * time.Second

// cancelGrace is how long a cancelled front-end gets after SIGTERM: a compose killed outright
// leaves half-created containers behind.
const cancelGrace = 10 * time.Second

// Frontend is a compose CLI found by Detect, with the environment that points it at the
// engine. It holds no mutable state.
type Frontend struct {
	// Name is one of DockerCompose, DockerComposeV1, PodmanCompose, PodmanComposeScript.
	Name string
	// Path is the binary run: docker or podman for the CLI plugins, else the script itself.
	Path string
	// Version is the version `version` printed ("2.40.3"), or its first line.
	Version string
	// StartedService is the PID of the podman API service Detect started, 0 when it already
	// ran or was not needed.
	StartedService int

	prefix  []string // arguments before the compose ones: ["compose"] for the CLI plugins
	environ []string
	// legacy: docker-compose 1.x or podman-compose, which name containers <p>_<s>_<n> and
	// cannot bring a project down from its name alone.
	legacy bool
}

type options struct {
	podmanSocket string
}

// Option configures Detect; it returns an error for a nonsense value.
type Option func(*options) error

// WithPodmanSocket sets the path of podman's API socket (default: RootPodmanSocket for root,
// $XDG_RUNTIME_DIR/podman/podman.sock otherwise).
func WithPodmanSocket(path string) Option {
	return func(o *options) error {
		if !filepath.IsAbs(path) {
			return exitcode.Usagef("compose: podman socket %q is not an absolute path", path)
		}
		o.podmanSocket = path
		return nil
	}
}

// Detect finds the compose front-end for eng: `docker compose` (v2 CLI plugin), then
// docker-compose, and on podman also `podman compose` and podman-compose. environ is the
// front-end's environment (a command passes its own at the program's edge; nil is empty);
// binaries are looked up on its PATH, its COMPOSE_* variables are dropped (COMPOSE_PROFILES
// or COMPOSE_FILE would change what runs) and DOCKER_HOST is set for the engine: on podman, the
// API socket, which Detect starts (`podman system service --time=0`, detached in its own
// session) when it does not answer; on docker, environ's DOCKER_HOST or the default socket.
// No front-end found is a usage error.
func Detect(ctx context.Context, eng *engine.Engine, env []string, opts ...Option) (*Frontend, error) {
	if eng == nil {
		return nil, exitcode.Usagef("compose: no engine")
	}
	var o options
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	for _, kv := range env {
		if !strings.Contains(kv, "=") {
			return nil, exitcode.Usagef("compose: environment entry %q is not K=V", kv)
		}
	}
	getenv := environ.Getenv(env)
	fenv := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "COMPOSE_") })
	socket := ""
	if eng.Name() == engine.Podman {
		socket = o.podmanSocket
		if socket == "" {
			socket = defaultPodmanSocket(getenv)
		}
		fenv = append(slices.DeleteFunc(fenv, func(kv string) bool { return strings.HasPrefix(kv, "DOCKER_HOST=") }),
			"DOCKER_HOST=unix://"+socket)
	}
	path := getenv("PATH")
	type candidate struct {
		name, bin string
		prefix    []string
	}
	cands := []candidate{{DockerCompose, "docker", []string{"compose"}}, {DockerComposeV1, "docker-compose", nil}}
	if eng.Name() == engine.Podman {
		cands = append(cands, candidate{PodmanCompose, "podman", []string{"compose"}}, candidate{PodmanComposeScript, "podman-compose", nil})
	}
	var f *Frontend
	for _, c := range cands {
		bin, err := environ.LookPath(c.bin, path)
		if c.name == PodmanCompose {
			bin, err = eng.Path(), nil
		}
		if err != nil {
			continue
		}
		cand := &Frontend{Name: c.name, Path: bin, prefix: c.prefix, environ: fenv}
		out, err := cand.run(ctx, runSpec{args: []string{"version"}})
		if err != nil {
			continue
		}
		line := firstLine(string(out))
		cand.Version = line
		if v := versionNumber.FindString(line); v != "" {
			cand.Version = strings.TrimPrefix(v, "v")
		}
		cand.legacy = c.name == PodmanComposeScript || strings.HasPrefix(cand.Version, "1.") ||
			strings.Contains(strings.ToLower(line), "podman-compose")
		f = cand
		break
	}
	if f == nil {
		return nil, exitcode.Usagef("no compose front-end found: install docker compose v2 (scripts/setup.sh compose builds it) or docker-compose")
	}
	if socket != "" && f.Name != PodmanComposeScript {
		pid, err := ensurePodmanService(ctx, eng, socket, fenv)
		if err != nil {
			return nil, err
		}
		f.StartedService = pid
	}
	return f, nil
}

func defaultPodmanSocket(getenv func(string) string) string {
	if os.Geteuid() == 0 {
		return RootPodmanSocket
	}
	dir := getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = fmt.Sprintf("/run/user/%d", os.Geteuid())
	}
	return filepath.Join(dir, "podman", "podman.sock")
}

var versionNumber = regexp.MustCompile(`v?[0-9]+\.[0-9]+\.[0-9]+[^\s,]*`)

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, ">>>>") {
			return l
		}
	}
	return ""
}

// ensurePodmanService makes sure podman's API answers on socket: a service that is not running
// is started the way scripts/setup.sh does (setsid, no inherited stdio, --time=0 so that it
// never exits between commands) and waited for. It returns the PID of a service it started.
func ensurePodmanService(ctx context.Context, eng *engine.Engine, socket string, env []string) (int, error) {
	if pingSocket(ctx, socket) == nil {
		return 0, nil
	}
	addr := "unix://" + socket
	cmdline := eng.Path() + " system service --time=0 " + addr
	if fi, err := os.Lstat(socket); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		// A socket nobody answers on is left over from a service that died; podman would
		// refuse to listen on it.
		_ = os.Remove(socket)
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return 0, fmt.Errorf("podman API socket %s does not answer, and its directory cannot be made: %w (run: %s)", socket, err, cmdline)
	}
	cmd := exec.Command(eng.Path(), "system", "service", "--time=0", addr)
	cmd.Env = serviceEnv(env)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("podman API socket %s does not answer; starting %s: %w", socket, cmdline, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.NewTimer(socketWait)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return 0, fmt.Errorf("podman API socket %s does not answer; %s exited: %v", socket, cmdline, err)
		case <-ctx.Done():
			return 0, fmt.Errorf("waiting for the podman API service (pid %d) on %s: %w", pid, socket, ctx.Err())
		case <-deadline.C:
			return 0, fmt.Errorf("podman API service (pid %d, %s) did not answer on %s within %s", pid, cmdline, socket, socketWait)
		case <-tick.C:
			if pingSocket(ctx, socket) == nil {
				return pid, nil
			}
		}
	}
}

// serviceEnv is env for a service that outlives this process: without TMPDIR, since the
// directory the caller's run uses for its temporary files (a test's, a CI step's) goes away
// with it, and podman's service keeps staging image data there ("failed to convert ImageData
// to ImageInspect: open $TMPDIR/…: no such file or directory" for every later client).
func serviceEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TMPDIR=") {
			out = append(out, kv)
		}
	}
	return out
}

// pingSocket asks a Docker-compatible API for /_ping.
func pingSocket(ctx context.Context, socket string) error {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://podman/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping: HTTP %s", resp.Status)
	}
	return nil
}

// runSpec is one front-end run.
type runSpec struct {
	args  []string
	dir   string // working directory; "" = the process's
	stdin []byte
	// secrets are strings masked in the error (environment values of the file).
	secrets []string
}

// run executes the front-end and returns its standard output; a failure is an
// *engine.CommandError naming the command, its output masked.
func (f *Frontend) run(ctx context.Context, r runSpec) ([]byte, error) {
	args := append(slices.Clone(f.prefix), r.args...)
	bin := filepath.Base(f.Path)
	if err := ctx.Err(); err != nil {
		return nil, &engine.CommandError{Engine: bin, Args: args, ExitCode: -1, Err: err}
	}
	cmd := exec.CommandContext(ctx, f.Path, args...)
	cmd.Env = f.environ
	if cmd.Env == nil {
		cmd.Env = []string{}
	}
	cmd.Dir = r.dir
	if r.stdin != nil {
		cmd.Stdin = bytes.NewReader(r.stdin)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = cancelGrace
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		// *exec.ExitError has an ExitCode method, which exitcode.Of would take for ours: a
		// front-end that failed is exit 1.
		err = errors.New(ee.Error())
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		err = ctxErr
	}
	return nil, &engine.CommandError{Engine: bin, Args: args, ExitCode: code, Stderr: mask(strings.TrimSpace(stderr.String()), r.secrets), Err: err}
}

// mask replaces every secret in s by ***; the longest first, so that a secret containing
// another is masked whole.
func mask(s string, secrets []string) string {
	secrets = slices.Clone(secrets)
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "***")
		}
	}
	return s
}
