package ephemeral

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/poststack/poststack/pkg/engine"
)

const (
	// containerPrefix names every ephemeral container, so that a person can tell them apart.
	containerPrefix = "poststack-ephemeral-"
	// labelID marks an ephemeral container with its instance ID.
	labelID = "io.poststack.ephemeral"
	// pgdata is the data directory of the official image contract.
	pgdata = "/var/lib/postgresql/data"
	// containerReadyTimeout bounds the wait for the server in a started container.
	containerReadyTimeout = 60 * time.Second
)

// tcVariables are the process environment variables testcontainers-go reads, once per process.
var tcVariables = []string{"DOCKER_HOST", "TESTCONTAINERS_RYUK_DISABLED", "TESTCONTAINERS_HOST_OVERRIDE"}

// tcDefaults are right for the local engines poststack uses: the reaper image cannot be pulled
// offline, and the engine runs on this host (testcontainers would otherwise take the default
// gateway for the host on machines with a /.dockerenv).
func tcDefaults() map[string]string {
	return map[string]string{
		"TESTCONTAINERS_RYUK_DISABLED": "true",
		"TESTCONTAINERS_HOST_OVERRIDE": "localhost",
	}
}

// prepareTestcontainers puts environ's engine settings into the process environment, the only
// place testcontainers-go reads them, and only once per process (it caches the endpoint). A
// process therefore talks to one engine: asking for another one later is an error rather than
// a container started on the wrong engine.
func prepareTestcontainers(environ []string) (dockerHost string, err error) {
	getenv := getenvOf(environ)
	defaults := tcDefaults()
	for _, name := range tcVariables {
		want := getenv(name)
		if want == "" {
			want = defaults[name]
		}
		have, set := os.LookupEnv(name)
		switch {
		case want == "" || (set && have == want):
		case !set || have == "":
			if err := os.Setenv(name, want); err != nil {
				return "", fmt.Errorf("ephemeral: set %s: %w", name, err)
			}
		case name == "DOCKER_HOST":
			return "", fmt.Errorf("ephemeral: container provider: this process already uses DOCKER_HOST=%s, and testcontainers-go talks to one engine per process; start %s from another process", have, want)
		}
	}
	return os.Getenv("DOCKER_HOST"), nil
}

// engineOf names the engine behind a DOCKER_HOST.
func engineOf(dockerHost string) string {
	if strings.Contains(dockerHost, "podman") {
		return engine.Podman
	}
	return engine.Docker
}

// imageRef qualifies a short name for podman's Docker API, which resolves short names against
// registries rather than local images: a locally built poststack/postgres is
// localhost/poststack/postgres there.
func imageRef(image, engineName string) string {
	if engineName != engine.Podman {
		return image
	}
	first, _, ok := strings.Cut(image, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return image
	}
	return "localhost/" + image
}

// tcLogger sends testcontainers' messages to the progress hook.
type tcLogger func(string, ...any)

func (l tcLogger) Printf(format string, args ...any) { l(strings.TrimSpace(format), args...) }

// startContainer runs the image with testcontainers-go's postgres module: a random password,
// 5432 published on 127.0.0.1 only, PGDATA on a tmpfs (no anonymous volume to leave behind,
// and initdb does not wait for a disk) and durability off.
func startContainer(ctx context.Context, inst *Instance, o Options, environ []string, logf func(string, ...any)) error {
	host, err := prepareTestcontainers(environ)
	if err != nil {
		return err
	}
	password, err := randomPassword()
	if err != nil {
		return err
	}
	image := o.Image
	if image == "" {
		image = DefaultImage
	}
	inst.Engine, inst.DockerHost = engineOf(host), host
	inst.Image = imageRef(image, inst.Engine)
	// The name is set before anything is created, so that cleanup after a cancelled Start can
	// remove a container whose creation was still in flight.
	inst.Container = containerPrefix + inst.ID
	hostPort := ""
	if o.Port != 0 {
		hostPort = strconv.Itoa(o.Port)
	}
	logf("starting container %s from %s on %s", inst.Container, inst.Image, inst.Engine)
	ctr, err := tcpostgres.Run(ctx, inst.Image,
		testcontainers.WithLogger(tcLogger(logf)),
		testcontainers.WithName(inst.Container),
		testcontainers.WithLabels(map[string]string{labelID: inst.ID}),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword(password),
		tcpostgres.WithDatabase("postgres"),
		testcontainers.WithEnv(map[string]string{"POSTGRES_INITDB_ARGS": "--no-sync"}),
		testcontainers.WithCmd("postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"),
		testcontainers.WithTmpfs(map[string]string{pgdata: "rw"}),
		testcontainers.WithHostConfigModifier(func(hc *container.HostConfig) {
			hc.PortBindings = network.PortMap{
				network.MustParsePort("5432/tcp"): {{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: hostPort}},
			}
		}),
	)
	if ctr != nil {
		inst.ctr = ctr
		inst.ContainerID = ctr.GetContainerID()
	}
	if err != nil {
		return fmt.Errorf("ephemeral: container from %s on %s: %w", inst.Image, inst.Engine, err)
	}
	port, err := ctr.MappedPort(ctx, "5432/tcp")
	if err != nil {
		return fmt.Errorf("ephemeral: container %s: published port: %w", inst.Container, err)
	}
	inst.Port = int(port.Num())
	inst.URL = (&url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword("postgres", password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}).String()
	return waitAccepting(ctx, inst.URL)
}

// waitAccepting polls with real logins: a published port accepts TCP before the server runs,
// and the image's initialisation server listens on its unix socket only, so the first
// successful password login is the final server.
func waitAccepting(ctx context.Context, dsn string) error {
	ctx, cancel := context.WithTimeout(ctx, containerReadyTimeout)
	defer cancel()
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("ephemeral: %w", err)
	}
	cfg.ConnectTimeout = 2 * time.Second
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ephemeral: waiting for the container's server: %w (last error: %w)", context.Cause(ctx), err)
		case <-tick.C:
		}
	}
}

// stopContainer removes the container and its volumes: through testcontainers when this
// process started it, else (and as a fallback) through the engine's CLI by name, which also
// catches a container whose creation a cancelled Start did not see finish.
func stopContainer(ctx context.Context, inst *Instance) error {
	var errs []error
	if inst.ctr != nil {
		if err := inst.ctr.Terminate(ctx); err == nil {
			return nil
		} else {
			errs = append(errs, err)
		}
	}
	name := inst.Container
	if name == "" {
		name = inst.ContainerID
	}
	if name == "" {
		return errors.Join(errs...)
	}
	e, err := engineFor(inst)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := e.Remove(ctx, name, true, true); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if inst.ctr == nil && !inst.Detached {
		// Start was cancelled: a create request the engine received may still complete.
		time.Sleep(300 * time.Millisecond)
		if err := e.Remove(ctx, name, true, true); err != nil {
			return err
		}
	}
	return nil
}

// engineFor drives the instance's engine through its CLI: podman's CLI works on the same
// storage as its socket; docker's follows DOCKER_HOST.
func engineFor(inst *Instance) (*engine.Engine, error) {
	environ := inst.environ
	if environ == nil {
		environ = os.Environ()
	}
	if inst.DockerHost != "" {
		environ = append(append([]string(nil), environ...), "DOCKER_HOST="+inst.DockerHost)
	}
	name := inst.Engine
	if name == "" {
		name = engineOf(inst.DockerHost)
	}
	return engine.New(name, engine.WithEnviron(environ))
}

// containerAlive asks the engine whether the recorded container is running.
func containerAlive(ctx context.Context, inst *Instance) (bool, error) {
	e, err := engineFor(inst)
	if err != nil {
		return false, err
	}
	c, err := e.InspectContainer(ctx, inst.Container)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return c.Running, nil
}
