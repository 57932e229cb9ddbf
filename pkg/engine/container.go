package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostIP        string // "" = all interfaces
	HostPort      int    // 0 = chosen by the engine
	ContainerPort int
	Protocol      string // "tcp" when ""
}

// Mount attaches a named volume or a host directory to a container.
type Mount struct {
	Source   string // volume name, or absolute host path for a bind mount
	Target   string // absolute path in the container
	ReadOnly bool
}

// RunOptions describes a container started by Run.
type RunOptions struct {
	Name  string
	Image string
	Cmd   []string
	// Entrypoint replaces the image's entry point when non-nil; an empty non-nil slice clears it.
	Entrypoint []string
	Env        []string // "K=V"; values are redacted from errors
	// Secrets are "K=V" entries whose values must not appear on the CLI's command line, where
	// every local user can read them: each is passed as `-e K` and its value through the CLI's
	// own environment. Names the CLIs read themselves (PATH, DOCKER_HOST, …) are refused.
	Secrets     []string
	Labels      map[string]string
	Network     string
	Aliases     []string // network aliases, need Network
	Ports       []PortMapping
	Mounts      []Mount
	Restart     string // "", "no", "always", "unless-stopped", "on-failure"
	User        string
	Remove      bool          // remove the container when it exits
	StopTimeout time.Duration // 0 = engine default; rounded up to whole seconds
	ExtraArgs   []string      // passed to `run` just before the image
}

// Container is the state of a container as both engines report it.
type Container struct {
	ID      string
	Name    string // without docker's leading "/"
	Image   string // the reference the container was created from
	ImageID string // "sha256:<hex>" on both engines
	Labels  map[string]string
	Status  string // created, running, paused, exited… (lowercase)
	Running bool
	// ExitCode is the exit status of the last run; meaningful once the container has exited.
	ExitCode int
	Health   string // "", "starting", "healthy" or "unhealthy"
	// StartedAt and FinishedAt are zero when the container never started or never finished.
	StartedAt     time.Time
	FinishedAt    time.Time
	Env           []string
	Ports         []PortMapping // published ports, sorted by container port
	Mounts        []Mount       // sorted by target; Source is the volume name for volumes
	Networks      []string      // sorted
	RestartPolicy string        // "no" when none
}

// runArgs renders o as `run -d …` arguments and the entries of Secrets for the CLI's
// environment.
func runArgs(o RunOptions) (args, secrets []string, err error) {
	if o.Image == "" {
		return nil, nil, exitcode.Usagef("run: no image")
	}
	if err := checkName("image", o.Image); err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", o.Name, err)
	}
	if len(o.Aliases) > 0 && o.Network == "" {
		return nil, nil, exitcode.Usagef("run %s: network aliases need a network", o.Name)
	}
	switch o.Restart {
	case "", "no", "always", "unless-stopped", "on-failure":
	default:
		return nil, nil, exitcode.Usagef("run %s: unknown restart policy %q", o.Name, o.Restart)
	}
	secretFlags, secrets, err := secretArgs("-e", o.Secrets)
	if err != nil {
		return nil, nil, fmt.Errorf("run %s: %w", o.Name, err)
	}
	args = []string{"run", "-d"}
	if o.Name != "" {
		args = append(args, "--name", o.Name)
	}
	args = append(args, labelArgs("--label", o.Labels)...)
	for _, kv := range o.Env {
		args = append(args, "-e", kv)
	}
	args = append(args, secretFlags...)
	if o.Network != "" {
		args = append(args, "--network", o.Network)
	}
	for _, a := range o.Aliases {
		args = append(args, "--network-alias", a)
	}
	for _, p := range o.Ports {
		s, err := portArg(p)
		if err != nil {
			return nil, nil, fmt.Errorf("run %s: %w", o.Name, err)
		}
		args = append(args, "-p", s)
	}
	for _, m := range o.Mounts {
		s, err := mountArg(m)
		if err != nil {
			return nil, nil, fmt.Errorf("run %s: %w", o.Name, err)
		}
		args = append(args, "-v", s)
	}
	if o.Restart != "" {
		args = append(args, "--restart", o.Restart)
	}
	if o.User != "" {
		args = append(args, "--user", o.User)
	}
	if o.Remove {
		args = append(args, "--rm")
	}
	if o.StopTimeout > 0 {
		args = append(args, "--stop-timeout", strconv.Itoa(ceilSeconds(o.StopTimeout)))
	}
	cmd := o.Cmd
	if o.Entrypoint != nil {
		// docker takes one executable here; the rest of the entry point goes before the command.
		ep := ""
		if len(o.Entrypoint) > 0 {
			ep = o.Entrypoint[0]
			cmd = append(append([]string(nil), o.Entrypoint[1:]...), o.Cmd...)
		}
		args = append(args, "--entrypoint="+ep)
	}
	args = append(args, o.ExtraArgs...)
	args = append(args, o.Image)
	return append(args, cmd...), secrets, nil
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

func portArg(p PortMapping) (string, error) {
	if p.ContainerPort <= 0 || p.ContainerPort > 65535 || p.HostPort < 0 || p.HostPort > 65535 {
		return "", exitcode.Usagef("bad port mapping %+v", p)
	}
	proto := p.Protocol
	if proto == "" {
		proto = "tcp"
	}
	host := ""
	if p.HostPort > 0 {
		host = strconv.Itoa(p.HostPort)
	}
	s := fmt.Sprintf("%s:%d/%s", host, p.ContainerPort, proto)
	switch {
	case p.HostIP != "":
		ip := p.HostIP
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		s = ip + ":" + s
	case host == "":
		s = fmt.Sprintf("%d/%s", p.ContainerPort, proto)
	}
	return s, nil
}

func mountArg(m Mount) (string, error) {
	if m.Source == "" || !path.IsAbs(m.Target) || strings.Contains(m.Source+m.Target, ":") {
		return "", exitcode.Usagef("bad mount %+v: need a volume name or absolute host path, and an absolute target without ':'", m)
	}
	s := m.Source + ":" + m.Target
	if m.ReadOnly {
		s += ":ro"
	}
	return s, nil
}

// Run starts a detached container and returns its ID.
func (e *Engine) Run(ctx context.Context, o RunOptions) (string, error) {
	args, secrets, err := runArgs(o)
	if err != nil {
		return "", err
	}
	out, err := e.runWith(ctx, invocation{args: args, secrets: secrets})
	if err != nil {
		return "", fmt.Errorf("run container %s from %s: %w", o.Name, o.Image, err)
	}
	ls := lines(out)
	if len(ls) == 0 {
		return "", fmt.Errorf("run container %s: %s printed no container ID", o.Name, e.name)
	}
	return ls[len(ls)-1], nil
}

// Start starts an existing container.
func (e *Engine) Start(ctx context.Context, name string) error {
	if err := checkName("container", name); err != nil {
		return err
	}
	_, err := e.run(ctx, "start", name)
	return classify(err, "container", name)
}

// Stop stops a container, killing it after timeout; a negative timeout leaves the grace period
// to the engine (the container's stop timeout, else 10 s).
func (e *Engine) Stop(ctx context.Context, name string, timeout time.Duration) error {
	if err := checkName("container", name); err != nil {
		return err
	}
	args := []string{"stop"}
	if timeout >= 0 {
		args = append(args, "-t", strconv.Itoa(ceilSeconds(timeout)))
	}
	_, err := e.run(ctx, append(args, name)...)
	return classify(err, "container", name)
}

// Remove removes a container; force kills a running one at once, volumes also removes its
// anonymous volumes. A missing container is not an error.
func (e *Engine) Remove(ctx context.Context, name string, force, volumes bool) error {
	if err := checkName("container", name); err != nil {
		return err
	}
	args := []string{"rm"}
	if force {
		args = append(args, "-f")
		if e.name == Podman {
			// docker rm -f kills at once; podman would first wait 10 s for a SIGTERM that a
			// shell as PID 1 ignores.
			args = append(args, "-t", "0")
		}
	}
	if volumes {
		args = append(args, "-v")
	}
	_, err := e.run(ctx, append(args, name)...)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove container %s: %w", name, err)
	}
	return nil
}

// containerJSON is the part of `container inspect` both engines print in the same shape.
type containerJSON struct {
	ID        string `json:"Id"`
	Name      string
	Image     string // the image ID
	ImageName string // podman only: the reference
	State     struct {
		Status     string
		Running    bool
		ExitCode   int
		StartedAt  time.Time
		FinishedAt time.Time
		Health     *struct{ Status string }
		// Healthcheck is where podman before 4.x reported health.
		Healthcheck *struct{ Status string }
	}
	Config struct {
		Image  string
		Env    []string
		Labels labelMap
	}
	HostConfig struct {
		RestartPolicy struct{ Name string }
		PortBindings  map[string][]portBinding
	}
	NetworkSettings struct {
		Ports    map[string][]portBinding
		Networks map[string]struct{}
	}
	Mounts []struct {
		Type        string
		Name        string
		Source      string
		Destination string
		RW          bool
	}
}

type portBinding struct {
	HostIP   string `json:"HostIp"`
	HostPort string
}

func (c containerJSON) container() Container {
	out := Container{
		ID:            c.ID,
		Name:          strings.TrimPrefix(c.Name, "/"),
		Image:         c.Config.Image,
		ImageID:       normalizeImageID(c.Image),
		Labels:        cloneLabels(c.Config.Labels),
		Status:        strings.ToLower(c.State.Status),
		Running:       c.State.Running,
		ExitCode:      c.State.ExitCode,
		StartedAt:     zeroIfUnset(c.State.StartedAt),
		FinishedAt:    zeroIfUnset(c.State.FinishedAt),
		Env:           c.Config.Env,
		RestartPolicy: c.HostConfig.RestartPolicy.Name,
	}
	if out.Image == "" {
		out.Image = c.ImageName
	}
	if out.Status == "configured" { // podman's word for created
		out.Status = "created"
	}
	if out.RestartPolicy == "" {
		out.RestartPolicy = "no"
	}
	switch {
	case c.State.Health != nil:
		out.Health = c.State.Health.Status
	case c.State.Healthcheck != nil:
		out.Health = c.State.Healthcheck.Status
	}
	// A stopped docker container no longer reports its published ports; the requested
	// bindings are the best answer then.
	ports := c.NetworkSettings.Ports
	if len(ports) == 0 {
		ports = c.HostConfig.PortBindings
	}
	for spec, bindings := range ports {
		cport, proto, _ := strings.Cut(spec, "/")
		cp, err := strconv.Atoi(cport)
		if err != nil {
			continue
		}
		if proto == "" {
			proto = "tcp"
		}
		for _, b := range bindings {
			hp, _ := strconv.Atoi(b.HostPort)
			out.Ports = append(out.Ports, PortMapping{HostIP: b.HostIP, HostPort: hp, ContainerPort: cp, Protocol: proto})
		}
	}
	sort.Slice(out.Ports, func(i, j int) bool {
		a, b := out.Ports[i], out.Ports[j]
		if a.ContainerPort != b.ContainerPort {
			return a.ContainerPort < b.ContainerPort
		}
		if a.Protocol != b.Protocol {
			return a.Protocol < b.Protocol
		}
		return a.HostIP < b.HostIP
	})
	for _, m := range c.Mounts {
		src := m.Source
		if m.Type == "volume" && m.Name != "" {
			src = m.Name
		}
		out.Mounts = append(out.Mounts, Mount{Source: src, Target: m.Destination, ReadOnly: !m.RW})
	}
	sort.Slice(out.Mounts, func(i, j int) bool { return out.Mounts[i].Target < out.Mounts[j].Target })
	out.Networks = sortedKeys(c.NetworkSettings.Networks)
	return out
}

// zeroIfUnset maps the engines' "0001-01-01T00:00:00Z" to the zero time.
func zeroIfUnset(t time.Time) time.Time {
	if t.IsZero() || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// normalizeImageID gives image IDs docker's "sha256:<hex>" form; podman prints bare hex in
// inspect but "sha256:<hex>" in --iidfile, and accepts both.
func normalizeImageID(id string) string {
	if id == "" || strings.Contains(id, ":") {
		return id
	}
	return "sha256:" + id
}

// InspectContainer returns the state of a container; a missing one is an error wrapping
// ErrNotFound.
func (e *Engine) InspectContainer(ctx context.Context, name string) (*Container, error) {
	if err := checkName("container", name); err != nil {
		return nil, err
	}
	out, err := e.run(ctx, "container", "inspect", name)
	if isNotFound(err) {
		return nil, fmt.Errorf("container %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	cs, err := decodeList[containerJSON](out)
	if err != nil {
		return nil, fmt.Errorf("inspect container %s: %w", name, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("container %q: %w", name, ErrNotFound)
	}
	c := cs[0].container()
	return &c, nil
}

// ListContainers returns the containers in every state that carry all of labels, sorted by
// name.
func (e *Engine) ListContainers(ctx context.Context, labels map[string]string) ([]Container, error) {
	args := append([]string{"ps", "-a", "-q", "--no-trunc"}, labelArgs("--filter", prefixLabels(labels))...)
	out, err := e.run(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	ids := lines(out)
	if len(ids) == 0 {
		return nil, nil
	}
	raw, err := e.run(ctx, append([]string{"container", "inspect"}, ids...)...)
	if err != nil && !isNotFound(err) && ctx.Err() == nil {
		// podman fails an inspect of a container that is exiting right then ("read
		// /proc/PID/cgroup: no such process"): once more, after it has.
		time.Sleep(200 * time.Millisecond)
		raw, err = e.run(ctx, append([]string{"container", "inspect"}, ids...)...)
	}
	if isNotFound(err) {
		// A container vanished between ps and inspect: inspect the rest one by one.
		var res []Container
		for _, id := range ids {
			c, err := e.InspectContainer(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("list containers: %w", err)
			}
			if matchLabels(c.Labels, labels) {
				res = append(res, *c)
			}
		}
		sortContainers(res)
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	cs, err := decodeList[containerJSON](raw)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	var res []Container
	for _, cj := range cs {
		if c := cj.container(); matchLabels(c.Labels, labels) {
			res = append(res, c)
		}
	}
	sortContainers(res)
	return res, nil
}

func sortContainers(cs []Container) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
}

// prefixLabels turns labels into "label=k=v" filter values.
func prefixLabels(labels map[string]string) map[string]string {
	m := make(map[string]string, len(labels))
	for k, v := range labels {
		m["label="+k] = v
	}
	return m
}

// Logs returns a container's output, stdout and stderr together; tail > 0 keeps the last tail
// lines.
func (e *Engine) Logs(ctx context.Context, name string, tail int) (string, error) {
	if err := checkName("container", name); err != nil {
		return "", err
	}
	args := []string{"logs"}
	if tail > 0 {
		args = append(args, "--tail", strconv.Itoa(tail))
	}
	// One writer for both streams: exec then uses one pipe, which keeps their order.
	var buf bytes.Buffer
	_, err := e.runWith(ctx, invocation{args: append(args, name), stdout: &buf, stderr: &buf})
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && ce.Stderr == "" {
			// stderr went to the shared buffer; its tail is the engine's complaint.
			ce.Stderr = strings.TrimSpace(buf.String())
		}
		return "", fmt.Errorf("logs of container %s: %w", name, classify(err, "container", name))
	}
	return buf.String(), nil
}

// Exec runs cmd in a running container with the extra env ("K=V") and returns its standard
// output. stdin, when non-nil, is fed to the command. The env values are passed as RunOptions'
// Secrets are, by name through the CLI's environment, since what a command is given this way
// is typically a password (PGPASSWORD); a secret belongs in env or stdin, never in cmd. A
// non-zero exit is a *CommandError whose ExitCode is the command's.
func (e *Engine) Exec(ctx context.Context, name string, cmd []string, env []string, stdin io.Reader) (string, error) {
	if err := checkName("container", name); err != nil {
		return "", err
	}
	if len(cmd) == 0 {
		return "", exitcode.Usagef("exec in %s: no command", name)
	}
	envFlags, secrets, err := secretArgs("-e", env)
	if err != nil {
		return "", fmt.Errorf("exec in %s: %w", name, err)
	}
	args := []string{"exec"}
	if stdin != nil {
		args = append(args, "-i")
	}
	args = append(args, envFlags...)
	args = append(append(args, name), cmd...)
	out, err := e.runWith(ctx, invocation{args: args, secrets: secrets, stdin: stdin})
	if err != nil {
		return "", fmt.Errorf("exec in container %s: %w", name, classify(err, "container", name))
	}
	return string(out), nil
}

// Wait blocks until a container stops and returns its exit code.
func (e *Engine) Wait(ctx context.Context, name string) (int, error) {
	if err := checkName("container", name); err != nil {
		return -1, err
	}
	out, err := e.run(ctx, "wait", name)
	if err != nil {
		return -1, fmt.Errorf("wait for container %s: %w", name, classify(err, "container", name))
	}
	ls := lines(out)
	if len(ls) == 0 {
		return -1, fmt.Errorf("wait for container %s: %s printed no exit code", name, e.name)
	}
	code, err := strconv.Atoi(ls[len(ls)-1])
	if err != nil {
		return -1, fmt.Errorf("wait for container %s: exit code %q: %w", name, ls[len(ls)-1], err)
	}
	return code, nil
}
