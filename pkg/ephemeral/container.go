package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/sqlstate"
)

// The container provider drives the engine's CLI through pkg/engine rather than
// testcontainers-go: testcontainers' package initialisation scanned every process of the host
// at the start-up of every ps-env run (~40 ms, even for --version), and its path through
// podman's Docker API took 3.8 s where `podman run` and a first login take 2.4 s. The e2e
// oracle test (TestEphemeralContainerOracle) checks that a client sees the same server from
// both.

const (
	// containerPrefix names every ephemeral container, so that a person can tell them apart.
	containerPrefix = "poststack-ephemeral-"
	// labelID marks an ephemeral container with its instance ID.
	labelID = "io.poststack.ephemeral"
	// pgdata is the data directory of the official image contract.
	pgdata = "/var/lib/postgresql/data"
	// containerReadyTimeout bounds the wait for the server in a started container.
	containerReadyTimeout = 60 * time.Second
	// containerStopTimeout is the grace the engine gives the server on a plain stop: the data
	// is thrown away, so there is nothing to flush.
	containerStopTimeout = time.Second
	// runtimeVariable names the engine, as everywhere in poststack.
	runtimeVariable = "POSTSTACK_CONTAINER_RUNTIME"
	// portAttempts bounds retries when the free port picked for the container was taken by
	// someone else before the engine bound it.
	portAttempts = 3
	// deathCheckAfter is when readiness polling starts asking the engine whether the container
	// still runs, so that a server that exited fails at once instead of after the timeout; not
	// earlier, because the CLI calls compete with the start-up for the CPU.
	deathCheckAfter = 3 * time.Second
	// logTail is how many lines of the container's log a failed start reports.
	logTail = 20
)

// resolveEngine names the engine: the option, else POSTSTACK_CONTAINER_RUNTIME, else the one
// DOCKER_HOST points at (podman's Docker-API socket has "podman" in its path), else the one
// installed (podman first).
func resolveEngine(name string, env []string) (*engine.Engine, error) {
	getenv := environ.Getenv(env)
	if name == "" {
		name = getenv(runtimeVariable)
	}
	if name == "" {
		if host := getenv("DOCKER_HOST"); host != "" {
			name = engineOf(host)
		}
	}
	e, err := engine.Detect(name, engine.WithEnviron(env))
	if err != nil {
		return nil, fmt.Errorf("ephemeral: container provider: %w", err)
	}
	return e, nil
}

// engineOf names the engine behind a DOCKER_HOST.
func engineOf(dockerHost string) string {
	if strings.Contains(dockerHost, "podman") {
		return engine.Podman
	}
	return engine.Docker
}

// containerRunOptions is the container of an instance: the official image contract's
// variables (the password passed by name, off the command line), PGDATA on a tmpfs (no
// anonymous volume to leave behind, and initdb does not wait for a disk), durability off, 5432
// published on 127.0.0.1 only, and the labels that prove the container is the instance's.
func containerRunOptions(inst *Instance, image string, port int) engine.RunOptions {
	return engine.RunOptions{
		Name:  inst.Container,
		Image: image,
		Cmd:   []string{"postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"},
		Env: []string{
			"POSTGRES_USER=postgres",
			"POSTGRES_DB=postgres",
			"POSTGRES_INITDB_ARGS=--no-sync",
		},
		Secrets:     []string{"POSTGRES_PASSWORD=" + inst.password},
		Labels:      map[string]string{labelID: inst.ID, labelKey: inst.ownerKey()},
		Ports:       []engine.PortMapping{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 5432}},
		StopTimeout: containerStopTimeout,
		ExtraArgs:   []string{"--tmpfs", pgdata + ":rw"},
	}
}

// startContainer runs the image on the engine with a random password and waits for a real
// login. The CLI resolves short names itself (podman finds a local poststack/postgres under
// localhost/), so the image is passed as given.
func startContainer(ctx context.Context, inst *Instance, o Options, env []string, report progress.Reporter) error {
	// The engine CLI gets a temporary directory of its own, removed when Start returns: a CLI
	// killed by an interrupt (podman, at some points of `run`) leaves its temporary files
	// behind, and nothing of this run may outlive it.
	tmp, err := os.MkdirTemp(tempParent(env), "poststack-engine-")
	if err != nil {
		return fmt.Errorf("ephemeral: engine temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	e, err := resolveEngine(o.Engine, append(slices.Clone(env), "TMPDIR="+tmp))
	if err != nil {
		return err
	}
	password, err := randomPassword()
	if err != nil {
		return err
	}
	inst.password = password
	image := o.Image
	if image == "" {
		image = DefaultImage
	}
	inst.Engine, inst.Image = e.Name(), image
	if e.Name() == engine.Docker {
		inst.DockerHost = environ.Getenv(env)("DOCKER_HOST")
	}
	// The name is set before anything is created, so that cleanup after a cancelled Start can
	// remove a container whose creation was still in flight.
	inst.Container = containerPrefix + inst.ID
	report.Info(fmt.Sprintf("starting container %s from %s on %s", inst.Container, inst.Image, inst.Engine), 0,
		"container", inst.Container, "image", inst.Image, "engine", inst.Engine)
	inst.runPending = true
	pick := o.pickPort
	if pick == nil {
		pick = freePort
	}
	// Ports a leftover forwarding rule would misroute are never picked (hostport.DNATPorts).
	misrouted := hostport.DNATPorts(ctx, os.Geteuid())
	if misrouted == nil {
		misrouted = map[int]bool{}
	}
	if o.Port != 0 && misrouted[o.Port] {
		return fmt.Errorf("ephemeral: port %d: the host's firewall already rewrites connections to it (a rule a container engine left behind, or another container's; %s): choose another port", o.Port, hostport.RuleHint(o.Port))
	}
	for attempt := 1; ; attempt++ {
		// Picking the port here saves asking the engine for it afterwards (one more CLI run).
		port := o.Port
		if port == 0 {
			if port, err = pickUnlike(pick, misrouted); err != nil {
				return err
			}
		}
		id, err := e.Run(ctx, containerRunOptions(inst, image, port))
		if err != nil {
			if o.Port != 0 || attempt == portAttempts || !portTaken(err) || ctx.Err() != nil {
				return fmt.Errorf("ephemeral: container from %s on %s: %w", inst.Image, inst.Engine, err)
			}
			report.Info(fmt.Sprintf("port %d was taken meanwhile; trying another one", port), 0, "port", port)
			// The failed run may have created the container: its name must be free again.
			if err := removeOwnedContainer(ctx, e, inst); err != nil {
				return fmt.Errorf("ephemeral: container %s: %w", inst.Container, err)
			}
			continue
		}
		inst.ContainerID, inst.Port, inst.runPending = id, port, false
		inst.URL = (&url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword("postgres", password),
			Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
			Path:     "/postgres",
			RawQuery: "sslmode=disable",
		}).String()
		// Before the first login: a port that a leftover rule forwards elsewhere would
		// otherwise be found out only at the readiness timeout.
		werr := hostport.Unanswered("127.0.0.1", port)
		if werr == nil {
			werr = waitAccepting(ctx, inst.URL, func(ctx context.Context) error { return containerFailed(ctx, e, inst.Container) })
		}
		var ue *hostport.UnansweredError
		var fe *foreignServerError
		if !errors.As(werr, &ue) && !errors.As(werr, &fe) {
			return werr
		}
		if o.Port != 0 || attempt == portAttempts || ctx.Err() != nil {
			return fmt.Errorf("ephemeral: container %s: %w", inst.Container, werr)
		}
		report.Info(fmt.Sprintf("port %d does not reach the container (%v); trying another one", port, werr), 0, "port", port)
		misrouted[port] = true
		if err := removeOwnedContainer(ctx, e, inst); err != nil {
			return fmt.Errorf("ephemeral: container %s: %w", inst.Container, err)
		}
		inst.ContainerID, inst.Port, inst.URL = "", 0, ""
		inst.runPending = true
	}
}

// pickUnlike asks pick for a port until it offers one not in skip.
func pickUnlike(pick func() (int, error), skip map[int]bool) (int, error) {
	for range 20 {
		p, err := pick()
		if err != nil || !skip[p] {
			return p, err
		}
	}
	return 0, fmt.Errorf("ephemeral: free port: only ports that a forwarding rule sends elsewhere were offered")
}

// tempParent is the TMPDIR of env when it names a directory, else /tmp.
func tempParent(env []string) string {
	if d := environ.Getenv(env)("TMPDIR"); filepath.IsAbs(d) {
		return d
	}
	return "/tmp"
}

// freePort asks the kernel for a free port on 127.0.0.1 that no engine's leftover rule
// forwards elsewhere (hostport.Forwarded). Another process may take it before the engine binds
// it; startContainer then tries again.
func freePort() (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("ephemeral: free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !hostport.Forwarded(port) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("ephemeral: free port: every port the kernel offered is forwarded by a container engine's rules")
}

// portTaken recognises the engines' complaint about a host port in use.
func portTaken(err error) bool {
	var ce *engine.CommandError
	if !errors.As(err, &ce) {
		return false
	}
	s := strings.ToLower(ce.Stderr)
	return strings.Contains(s, "address already in use") || strings.Contains(s, "port is already allocated")
}

// containerFailed returns an error with the container's last log lines when it no longer
// runs, nil while it does.
func containerFailed(ctx context.Context, e *engine.Engine, name string) error {
	c, err := e.InspectContainer(ctx, name)
	if errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("ephemeral: container %s disappeared", name)
	}
	if err != nil || c.Running {
		// An engine that cannot answer now does not make the server fail; the timeout still
		// bounds the wait.
		return nil
	}
	return fmt.Errorf("ephemeral: container %s exited with code %d%s", name, c.ExitCode, logLines(ctx, e, name))
}

// logLines formats the container's last log lines for an error message ("" if there are none).
func logLines(ctx context.Context, e *engine.Engine, name string) string {
	logs, err := e.Logs(context.WithoutCancel(ctx), name, logTail)
	if err != nil || strings.TrimSpace(logs) == "" {
		return ""
	}
	return "; its last log lines:\n" + strings.TrimRight(logs, "\n")
}

// waitAccepting polls with real logins: a published port accepts TCP before the server runs,
// and the image's initialisation server listens on its unix socket only, so the first
// successful password login is the final server. From deathCheckAfter on, failed (when not
// nil) is asked once a second whether waiting is still worth it.
func waitAccepting(ctx context.Context, dsn string, failed func(context.Context) error) error {
	wctx, cancel := context.WithTimeout(ctx, containerReadyTimeout)
	defer cancel()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("ephemeral: %w", err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	began, lastCheck := time.Now(), time.Time{}
	for {
		conn, err := pgconn.ConnectConfig(wctx, cfg)
		if err == nil {
			return conn.Close(wctx)
		}
		if sqlstate.Is(err, "28P01") {
			// The official image sets the password at initdb, before its server listens on
			// TCP: a server that refuses it is another one, which a leftover forwarding rule
			// leads to.
			return &foreignServerError{addr: cfg.Host + ":" + strconv.Itoa(int(cfg.Port)), err: err}
		}
		if failed != nil && time.Since(began) >= deathCheckAfter && time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			if ferr := failed(wctx); ferr != nil {
				return ferr
			}
		}
		select {
		case <-wctx.Done():
			// Our own deadline is context.DeadlineExceeded, which exitcode maps to 4.
			return fmt.Errorf("ephemeral: waiting for the container's server: %w (last error: %w)", context.Cause(wctx), err)
		case <-tick.C:
		}
	}
}

// foreignServerError is a login refused with the container's own password: the published
// port leads to another server.
type foreignServerError struct {
	addr string
	err  error
}

func (e *foreignServerError) Error() string {
	return fmt.Sprintf("the server answering on %s refused the container's own password (%v): a firewall rule left behind by an earlier container forwards that port to another server, or the image does not take POSTGRES_PASSWORD as the official postgres image does", e.addr, e.err)
}

func (e *foreignServerError) Unwrap() error { return e.err }

// stopContainer removes the container and its anonymous volumes through the engine's CLI,
// looked up by name, which also catches a container whose creation a cancelled Start did not
// see finish; it removes only a container that carries the instance's labels.
func stopContainer(ctx context.Context, inst *Instance) error {
	if inst.Container == "" && inst.ContainerID == "" {
		return nil
	}
	e, err := engineFor(inst)
	if err != nil {
		return err
	}
	if err := removeOwnedContainer(ctx, e, inst); err != nil {
		return err
	}
	if inst.runPending {
		// Start was cancelled during `run`: the engine may still complete a create request it
		// received after the CLI had gone.
		time.Sleep(300 * time.Millisecond)
		if err := removeOwnedContainer(ctx, e, inst); err != nil {
			return err
		}
	}
	return nil
}

// removeOwnedContainer removes the instance's container by the ID the inspection found, so
// that a container created under the same name in between is not the one removed.
func removeOwnedContainer(ctx context.Context, e *engine.Engine, inst *Instance) error {
	c, err := ownedContainer(ctx, e, inst)
	if err != nil || c == nil {
		return err
	}
	return e.Remove(ctx, c.ID, true, true)
}

// engineFor drives the instance's engine; docker's CLI follows the recorded DOCKER_HOST, which
// must be a local or TCP socket: an ssh:// host would make the CLI log in somewhere a record
// chose.
func engineFor(inst *Instance) (*engine.Engine, error) {
	// Start and Load set it; an Instance made otherwise gets the empty environment.
	env := inst.environ
	if h := inst.DockerHost; h != "" && !strings.HasPrefix(h, "unix://") && !strings.HasPrefix(h, "tcp://") {
		return nil, exitcode.Usagef("ephemeral: instance %s: docker host %q is neither unix:// nor tcp://", inst.ID, h)
	}
	if inst.DockerHost != "" {
		env = append(append([]string(nil), env...), "DOCKER_HOST="+inst.DockerHost)
	}
	name := inst.Engine
	if name == "" {
		name = engineOf(inst.DockerHost)
	}
	return engine.New(name, engine.WithEnviron(env))
}

// containerRunning asks the engine whether the recorded container is running, after checking
// it is the instance's.
func containerRunning(ctx context.Context, inst *Instance) (bool, error) {
	e, err := engineFor(inst)
	if err != nil {
		return false, err
	}
	c, err := ownedContainer(ctx, e, inst)
	if err != nil || c == nil {
		return false, err
	}
	return c.Running, nil
}
