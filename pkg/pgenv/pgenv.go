package pgenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/sqlstate"
)

// Actions reported in Result.Action.
const (
	ActionCreated   = "created"   // there was no container
	ActionStarted   = "started"   // a stopped container was started
	ActionReused    = "reused"    // the container was running with the same settings
	ActionRecreated = "recreated" // the image or settings changed; the data volume was kept
)

// stopTimeout is how long the engine lets PostgreSQL shut down (SIGINT, a fast shutdown)
// before killing it; a kill is crash-safe but makes the next start replay WAL.
const stopTimeout = 30 * time.Second

// logTail is how many log lines of the container a failed wait reports.
const logTail = 20

// Result is what Up did and where the database is.
type Result struct {
	Container string `json:"container"`
	Action    string `json:"action"`
	// HostURL and ContainerURL carry the application's password: mask them in output.
	HostURL      string `json:"host_url"`
	ContainerURL string `json:"container_url"`
}

// Up ensures the environment's network, data volume and PostgreSQL container, waits until the
// server accepts connections and provisions the application's role and database. A running
// container with the same settings is reused, a stopped one started, one whose image or
// settings changed is recreated on the same volume. A host port held by anything but this
// container, and a container, network or volume with the environment's name but without its
// labels, are usage errors (exit 2) raised before anything is changed; a server not ready
// within s.ReadyTimeout is exit 4, with the container's last log lines. progress, when not nil,
// receives one line per step.
func Up(ctx context.Context, eng *engine.Engine, s Spec, progress func(string)) (*Result, error) {
	s, err := s.withDefaults()
	if err != nil {
		return nil, err
	}
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	want, err := s.configHash()
	if err != nil {
		return nil, err
	}
	found, err := inspectOwned(ctx, eng, s, true, true)
	if err != nil {
		return nil, err
	}
	existing := found.container
	action := ActionCreated
	if existing != nil {
		action, err = decide(ctx, eng, s, existing, want)
		if err != nil {
			return nil, err
		}
	}
	// A running container of ours that holds the port frees it if it has to be recreated.
	if !(existing != nil && existing.Running && holdsPort(existing, s.Port)) {
		if err := checkPortFree(s); err != nil {
			return nil, err
		}
	}

	if found.network == nil {
		if err := ensureOwned(ctx, eng, s, "network", s.Network, eng.EnsureNetwork, say); err != nil {
			return nil, err
		}
	}
	if found.volume == nil {
		if err := ensureOwned(ctx, eng, s, "volume", s.Volume, eng.EnsureVolume, say); err != nil {
			return nil, err
		}
	}
	switch action {
	case ActionRecreated:
		say("recreating container %s: image or settings changed (data kept in volume %s)", s.Container, s.Volume)
		if err := stopAndRemove(ctx, eng, existing.ID); err != nil {
			return nil, err
		}
		if err := run(ctx, eng, s, want); err != nil {
			return nil, err
		}
	case ActionCreated:
		say("creating container %s from %s", s.Container, s.Image)
		if err := run(ctx, eng, s, want); err != nil {
			return nil, err
		}
	case ActionStarted:
		say("starting container %s", s.Container)
		if err := eng.Start(ctx, existing.ID); err != nil {
			return nil, fmt.Errorf("postgres: start container %s: %w", s.Container, err)
		}
	case ActionReused:
		say("container %s is running", s.Container)
	}
	say("waiting for PostgreSQL on %s", s.hostAddr())
	if err := waitReady(ctx, eng, s); err != nil {
		return nil, err
	}
	say("provisioning role %q and database %q", s.User, s.Database)
	if err := Provision(ctx, s.adminURL(), s.Database, s.User, s.Password); err != nil {
		return nil, err
	}
	return &Result{Container: s.Container, Action: action, HostURL: s.HostURL(), ContainerURL: s.ContainerURL()}, nil
}

// found is what exists of an environment, each nil when missing.
type found struct {
	container *engine.Container
	network   *engine.Network
	volume    *engine.Volume
}

// inspectOwned looks up the environment's container and, when asked, its network and volume.
// One that exists without the environment's project and environment labels is someone else's
// that happens to have the name: a usage error naming it, before anything is changed, since
// reusing it would hand the database to it and removing it would destroy it.
func inspectOwned(ctx context.Context, eng *engine.Engine, s Spec, network, volume bool) (found, error) {
	var f found
	c, err := eng.InspectContainer(ctx, s.Container)
	switch {
	case err == nil:
		if !s.owns(c.Labels) {
			return f, s.notOurs("container", s.Container)
		}
		f.container = c
	case !errors.Is(err, engine.ErrNotFound):
		return f, fmt.Errorf("postgres: %w", err)
	}
	if network {
		n, err := eng.InspectNetwork(ctx, s.Network)
		switch {
		case err == nil:
			if !s.owns(n.Labels) {
				return f, s.notOurs("network", s.Network)
			}
			f.network = n
		case !errors.Is(err, engine.ErrNotFound):
			return f, fmt.Errorf("postgres: %w", err)
		}
	}
	if volume {
		v, err := eng.InspectVolume(ctx, s.Volume)
		switch {
		case err == nil:
			if !s.owns(v.Labels) {
				return f, s.notOurs("volume", s.Volume)
			}
			f.volume = v
		case !errors.Is(err, engine.ErrNotFound):
			return f, fmt.Errorf("postgres: %w", err)
		}
	}
	return f, nil
}

// owns reports whether labels mark an object as the environment's.
func (s Spec) owns(labels map[string]string) bool {
	return labels[LabelProject] == s.Project && labels[LabelEnvironment] == s.Environment
}

func (s Spec) notOurs(kind, name string) error {
	return exitcode.Usagef("postgres: a %s named %s exists but does not belong to project %s, environment %s (labels %s, %s); nothing was changed: remove or rename it", kind, name, s.Project, s.Environment, LabelProject, LabelEnvironment)
}

// ensureOwned creates a missing network or volume with the environment's labels. When it turns
// out to exist after all (created meanwhile by someone else), its labels are checked again.
func ensureOwned(ctx context.Context, eng *engine.Engine, s Spec, kind, name string,
	ensure func(context.Context, string, map[string]string) (bool, error), say func(string, ...any)) error {
	created, err := ensure(ctx, name, s.labels())
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	if created {
		say("created %s %s", kind, name)
		return nil
	}
	_, err = inspectOwned(ctx, eng, s, kind == "network", kind == "volume")
	return err
}

// decide picks what to do with an existing container of this environment.
func decide(ctx context.Context, eng *engine.Engine, s Spec, c *engine.Container, want string) (string, error) {
	stale, err := outdated(ctx, eng, s, c, want)
	if err != nil {
		return "", err
	}
	switch {
	case stale:
		return ActionRecreated, nil
	case c.Running:
		return ActionReused, nil
	default:
		return ActionStarted, nil
	}
}

// outdated reports whether c was made with other settings or from another image than s asks
// for. An image missing locally does not count: the engine pulls it when creating.
func outdated(ctx context.Context, eng *engine.Engine, s Spec, c *engine.Container, want string) (bool, error) {
	if c.Labels[LabelConfig] != want {
		return true, nil
	}
	img, err := eng.InspectImage(ctx, s.Image)
	if errors.Is(err, engine.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("postgres: %w", err)
	}
	return img.ID != c.ImageID, nil
}

// holdsPort reports whether c publishes the container port on the host port.
func holdsPort(c *engine.Container, port int) bool {
	for _, p := range c.Ports {
		if p.ContainerPort == containerPort && p.HostPort == port {
			return true
		}
	}
	return false
}

// checkPortFree binds the address itself: the only reliable answer to "is it taken", whoever
// holds it (another container, a host PostgreSQL, any program).
func checkPortFree(s Spec) error {
	addr := net.JoinHostPort(s.Bind, strconv.Itoa(s.Port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return exitcode.Usagef("postgres: port %d on %s is already in use by another program or container (%v); choose a free one with `port:` under the environment's postgres settings in .poststack.yml", s.Port, s.Bind, err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("postgres: port check on %s: %w", addr, err)
	}
	return nil
}

// run creates and starts the container.
func run(ctx context.Context, eng *engine.Engine, s Spec, hash string) error {
	labels := s.labels()
	labels[LabelConfig] = hash
	_, err := eng.Run(ctx, engine.RunOptions{
		Name:   s.Container,
		Image:  s.Image,
		Labels: labels,
		Env: []string{
			"POSTGRES_USER=" + AdminUser,
			"POSTGRES_DB=postgres",
		},
		// By name, off the command line that every local user can read.
		Secrets:     []string{"POSTGRES_PASSWORD=" + s.AdminPassword},
		Network:     s.Network,
		Ports:       []engine.PortMapping{{HostIP: s.Bind, HostPort: s.Port, ContainerPort: containerPort}},
		Mounts:      []engine.Mount{{Source: s.Volume, Target: dataDir}},
		StopTimeout: stopTimeout,
	})
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// waitReady connects as the superuser over TCP until the server answers. Engine health checks
// are not used: podman without systemd never runs them. A refused superuser password means the
// data directory predates the current AdminPassword (it is set at initdb only): it is reset
// once through the container's unix socket, where the official image contract trusts local
// connections.
func waitReady(ctx context.Context, eng *engine.Engine, s Spec) error {
	cfg, err := pgx.ParseConfig(s.adminURL())
	if err != nil {
		return fmt.Errorf("postgres: admin URL: %w", err)
	}
	// A leftover forwarding rule for the port would otherwise be found out only at the
	// deadline, as a timeout that does not say why.
	if err := hostport.Unanswered(s.hostIP(), s.Port); err != nil {
		return fmt.Errorf("postgres: container %s: %w; remove that rule, or choose another port with `port:` under the environment's postgres settings in .poststack.yml", s.Container, err)
	}
	start := time.Now()
	deadline := start.Add(s.ReadyTimeout)
	reset := false
	lastCheck := start
	for {
		err := connectOnce(ctx, cfg)
		switch {
		case err == nil:
			return nil
		case sqlstate.Is(err, "28P01") && !reset:
			if err := resetAdminPassword(ctx, eng, s); err != nil {
				return err
			}
			reset = true
			continue
		case permanent(err):
			return fmt.Errorf("postgres: container %s: connect as %s: %w", s.Container, AdminUser, err)
		case ctx.Err() != nil:
			return fmt.Errorf("postgres: waiting for container %s: %w", s.Container, ctx.Err())
		case time.Now().After(deadline):
			return exitcode.With(exitcode.Timeout, fmt.Errorf("postgres: container %s did not accept connections on %s within %v: %w%s",
				s.Container, s.hostAddr(), s.ReadyTimeout, err, lastLogs(ctx, eng, s.Container)))
		}
		// A container that exited will never answer: say so now rather than at the deadline.
		if time.Since(lastCheck) >= time.Second {
			lastCheck = time.Now()
			c, ierr := eng.InspectContainer(ctx, s.Container)
			if ierr != nil {
				return fmt.Errorf("postgres: waiting for container %s: %w", s.Container, ierr)
			}
			if !c.Running {
				return fmt.Errorf("postgres: container %s stopped (%s, exit code %d) before accepting connections%s",
					s.Container, c.Status, c.ExitCode, lastLogs(ctx, eng, s.Container))
			}
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return fmt.Errorf("postgres: waiting for container %s: %w", s.Container, err)
		}
	}
}

// resetAdminPassword sets the superuser's password through psql on the container's unix
// socket. The statement goes through stdin so that the password is in no process list.
func resetAdminPassword(ctx context.Context, eng *engine.Engine, s Spec) error {
	sql := "ALTER ROLE " + pgx.Identifier{AdminUser}.Sanitize() + " WITH PASSWORD " + quoteLiteral(s.AdminPassword) + ";\n"
	_, err := eng.Exec(ctx, s.Container, []string{"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-U", AdminUser, "-d", "postgres"}, nil, strings.NewReader(sql))
	if err != nil {
		return fmt.Errorf("postgres: the superuser's password in volume %s differs from the configured one and resetting it failed: %w", s.Volume, err)
	}
	return nil
}

// lastLogs returns the container's last log lines as a suffix for an error message, or "" when
// they cannot be read. It runs even after ctx is done, since that is when they explain most.
func lastLogs(ctx context.Context, eng *engine.Engine, name string) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	logs, err := eng.Logs(lctx, name, logTail)
	logs = strings.TrimRight(logs, "\n")
	if err != nil || logs == "" {
		return ""
	}
	return fmt.Sprintf("\nlast %d log lines of %s:\n%s", logTail, name, logs)
}

// Stop stops the container and keeps it, its volume and its network; a missing container is
// not an error, a container of that name without the environment's labels is a usage error
// and is left running.
func Stop(ctx context.Context, eng *engine.Engine, s Spec) error {
	s, err := s.names()
	if err != nil {
		return err
	}
	f, err := inspectOwned(ctx, eng, s, false, false)
	if err != nil || f.container == nil {
		return err
	}
	err = eng.Stop(ctx, f.container.ID, -1)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("postgres: stop container %s: %w", s.Container, err)
	}
	return nil
}

// Remove removes the container and the environment's network; with volumes it also removes
// the data volume, and with it the data. Missing objects are not an error. The network must no
// longer be in use by the environment's other containers. A container, network or volume of
// the environment's name without its labels is a usage error, and then nothing is removed.
func Remove(ctx context.Context, eng *engine.Engine, s Spec, volumes bool) error {
	s, err := s.names()
	if err != nil {
		return err
	}
	f, err := inspectOwned(ctx, eng, s, true, volumes)
	if err != nil {
		return err
	}
	// Removed by ID: the object inspected is the one removed, even if a namesake appears.
	if c := f.container; c != nil && volumes {
		// The data goes too: no point in a clean shutdown, which an entrypoint still
		// initialising (a shell as PID 1) would make last the whole stop timeout.
		if err := eng.Remove(ctx, c.ID, true, false); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	} else if c != nil {
		if err := stopAndRemove(ctx, eng, c.ID); err != nil {
			return err
		}
	}
	if f.volume != nil {
		if err := eng.RemoveVolume(ctx, s.Volume); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	if n := f.network; n != nil {
		id := n.ID
		if id == "" {
			id = s.Network
		}
		if err := eng.RemoveNetwork(ctx, id); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	return nil
}

// stopAndRemove shuts PostgreSQL down cleanly before removing its container: `rm -f` kills
// it, which is safe but leaves WAL to replay on the next start.
func stopAndRemove(ctx context.Context, eng *engine.Engine, name string) error {
	if err := eng.Stop(ctx, name, -1); err != nil && !errors.Is(err, engine.ErrNotFound) {
		return fmt.Errorf("postgres: stop container %s: %w", name, err)
	}
	if err := eng.Remove(ctx, name, true, false); err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	return nil
}

// names fills in the object names without asking for what only Up needs (ports, passwords).
func (s Spec) names() (Spec, error) {
	full := s
	full.Database, full.User, full.Password, full.AdminPassword = "d", "u", "p", "p"
	full.Port, full.Bind = 1, ""
	full, err := full.withDefaults()
	if err != nil {
		return s, err
	}
	s.Container, s.Network, s.Volume = full.Container, full.Network, full.Volume
	return s, nil
}

// State is what Status reports about an environment's container.
type State struct {
	Container string `json:"container"`
	Exists    bool   `json:"exists"`
	Running   bool   `json:"running"`
	Status    string `json:"status,omitempty"` // the engine's word: created, running, exited…
	Image     string `json:"image,omitempty"`
	ImageID   string `json:"image_id,omitempty"`
	Bind      string `json:"bind,omitempty"`
	Port      int    `json:"port,omitempty"` // host port, 0 when not published
	// UpToDate is false when Up would recreate the container (other settings or image).
	UpToDate bool `json:"up_to_date"`
	// VolumeExists reports whether the data volume is there, with or without a container.
	VolumeExists bool `json:"volume_exists"`
}

// Status reports the container's state without changing anything. A missing container is a
// State with Exists false, not an error; a container or volume of the environment's name
// without its labels is a usage error. UpToDate is only meaningful when s is complete (as
// for Up).
func Status(ctx context.Context, eng *engine.Engine, s Spec) (*State, error) {
	n, err := s.names()
	if err != nil {
		return nil, err
	}
	st := &State{Container: n.Container}
	f, err := inspectOwned(ctx, eng, n, false, true)
	if err != nil {
		return nil, err
	}
	st.VolumeExists = f.volume != nil
	c := f.container
	if c == nil {
		return st, nil
	}
	st.Exists, st.Running, st.Status, st.Image, st.ImageID = true, c.Running, c.Status, c.Image, c.ImageID
	for _, p := range c.Ports {
		if p.ContainerPort == containerPort {
			st.Bind, st.Port = p.HostIP, p.HostPort
			break
		}
	}
	if full, err := s.withDefaults(); err == nil {
		want, err := full.configHash()
		if err != nil {
			return nil, err
		}
		stale, err := outdated(ctx, eng, full, c, want)
		if err != nil {
			return nil, err
		}
		st.UpToDate = !stale
	}
	return st, nil
}
