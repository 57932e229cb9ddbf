package projcontainers

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/dotenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/variables"
)

// Actions reported in Started.Action.
const (
	ActionCreated   = "created"   // there was no container
	ActionStarted   = "started"   // a stopped container with the same settings was started
	ActionRunning   = "running"   // it was running with the same settings: left as it was
	ActionRecreated = "recreated" // the image or the settings changed: removed and created again
)

// DefaultWaitTimeout bounds StartOptions.Wait when Timeout is zero.
const DefaultWaitTimeout = 60 * time.Second

// BindAddress is where published ports listen: the host's loopback only.
const BindAddress = "127.0.0.1"

// logTail is how many log lines of a container that failed while waited for are reported.
const logTail = 20

// StartOptions says which project containers Start starts, and how.
type StartOptions struct {
	// Names are containers/ names; empty starts every project container.
	Names []string
	// Port is "P" (host port P on BindAddress to the image's one EXPOSEd TCP port, else to P)
	// or "HOST:CONTAINER"; it needs a single container. Empty: POSTSTACK_<NAME>_PORT, else
	// nothing is published.
	Port string
	// EnvFiles are dotenv files the user named (read wherever they are, links followed), in
	// order; later entries win, and POSTSTACK_<NAME>_ENV_<VAR> wins over all of them.
	EnvFiles []string
	// Volumes are HOST:CONTAINER[:ro|:rw] bind mounts; HOST is relative to the project root
	// and must exist. They must come from the user (the command line), never from a project's
	// files.
	Volumes []string
	// Wait waits until every container runs, and is healthy when its image has a
	// healthcheck; a container that exits or turns unhealthy is exit 1, Timeout exit 4.
	Wait    bool
	Timeout time.Duration
	// Progress receives a Start and a Done or Failed per container.
	Progress progress.Func
	// Secret, when set, receives every environment value that looks secret (see
	// variables.IsSecret) before anything is started, so that the caller can mask it.
	Secret func(string)
}

// Started is what Start did with one container.
type Started struct {
	Name      string `json:"name"`
	Container string `json:"container"`
	Image     string `json:"image"`
	Action    string `json:"action"`
	State     string `json:"state"`
	Health    string `json:"health,omitempty"`
	Ports     []Port `json:"ports"`
}

// spec is a container as Start will run it.
type spec struct {
	def     Definition
	image   *engine.Image
	run     engine.RunOptions
	hash    string
	port    int // the host port, 0 when none
	current *engine.Container
	action  string
}

// Start starts the project containers o names (every one when none), each from the image
// ps-build built, on p.Network with p.Restart. A running container with the same image and
// settings is left running, a stopped one is started, one whose image or settings changed is
// recreated. Everything is checked before anything is changed (exit 2): unknown names, bad
// ports, volumes and env files, images not built, a missing network, a host port already in
// use, and a container with one of the names that is not ours.
func Start(ctx context.Context, eng *engine.Engine, p Project, o StartOptions) ([]Started, error) {
	if err := checkProject(p.Name); err != nil {
		return nil, err
	}
	switch p.Restart {
	case "", "no", "always", "unless-stopped", "on-failure":
	default:
		return nil, exitcode.Usagef("unknown restart policy %q (want no, always, unless-stopped or on-failure)", p.Restart)
	}
	defs, err := Discover(p)
	if err != nil {
		return nil, err
	}
	selected, err := selectDefs(p, defs, o.Names)
	if err != nil {
		return nil, err
	}
	if o.Port != "" && len(selected) != 1 {
		return nil, exitcode.Usagef("--port needs one container (--container NAME); this project has %d", len(selected))
	}
	mounts, err := parseVolumes(p.Root, o.Volumes)
	if err != nil {
		return nil, err
	}
	getenv := environ.Getenv(p.Environ)
	fileEnv, err := readEnvFiles(o.EnvFiles, getenv)
	if err != nil {
		return nil, err
	}
	if err := checkNetwork(ctx, eng, p.Network); err != nil {
		return nil, err
	}

	var specs []*spec
	for _, d := range selected {
		s, err := plan(ctx, eng, p, d, o, mounts, fileEnv)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	for _, s := range specs {
		for _, kv := range s.run.Secrets {
			_, v, _ := strings.Cut(kv, "=")
			if o.Secret != nil && v != "" {
				o.Secret(v)
			}
		}
	}

	var out []Started
	for _, s := range specs {
		began := time.Now()
		o.Progress.Emit(progress.Event{Op: "containers", Kind: progress.Start, Step: s.def.Name})
		if err := apply(ctx, eng, s); err != nil {
			o.Progress.Emit(progress.Event{Op: "containers", Kind: progress.Failed, Step: s.def.Name, Elapsed: time.Since(began), Err: err})
			return out, err
		}
		o.Progress.Emit(progress.Event{Op: "containers", Kind: progress.Done, Step: s.def.Name, Message: s.action, Elapsed: time.Since(began)})
		out = append(out, Started{Name: s.def.Name, Container: s.def.Container, Image: s.def.Image, Action: s.action, Ports: []Port{}})
	}
	if o.Wait {
		timeout := o.Timeout
		if timeout <= 0 {
			timeout = DefaultWaitTimeout
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		for _, s := range specs {
			if err := wait(wctx, ctx, eng, s.def.Container, timeout, o.Progress); err != nil {
				return out, err
			}
		}
	}
	for i, s := range specs {
		c, err := eng.InspectContainer(ctx, s.def.Container)
		if err != nil {
			return out, err
		}
		out[i].State, out[i].Health, out[i].Ports = c.Status, c.Health, ports(c.Ports)
	}
	return out, nil
}

// selectDefs picks the definitions names asks for; every one when names is empty.
func selectDefs(p Project, defs []Definition, names []string) ([]Definition, error) {
	if len(defs) == 0 {
		return nil, exitcode.Usagef("project %s has no containers: give each a %s/<name>/Dockerfile", p.Name, p.Containers)
	}
	if len(names) == 0 {
		return defs, nil
	}
	var out []Definition
	for _, n := range names {
		i := slices.IndexFunc(defs, func(d Definition) bool { return d.Name == n })
		if i < 0 {
			known := make([]string, len(defs))
			for j, d := range defs {
				known[j] = d.Name
			}
			hint := ""
			if n == PostgresName {
				hint = " (containers/postgres/ is the environment's database image: 'ps-env up' runs it)"
			}
			return nil, exitcode.Usagef("unknown container %q%s; this project has: %s", n, hint, strings.Join(known, ", "))
		}
		if !slices.ContainsFunc(out, func(d Definition) bool { return d.Name == n }) {
			out = append(out, defs[i])
		}
	}
	return out, nil
}

// plan inspects what exists of d and decides what Start does with it.
func plan(ctx context.Context, eng *engine.Engine, p Project, d Definition, o StartOptions, mounts []engine.Mount, fileEnv map[string]string) (*spec, error) {
	getenv := environ.Getenv(p.Environ)
	img, err := eng.InspectImage(ctx, d.Image)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, exitcode.Usagef("container %s: image %s is not built: run 'ps-build %s' (it builds %s)", d.Name, d.Image, d.Name, d.Source)
	}
	if err != nil {
		return nil, err
	}
	s := &spec{def: d, image: img}
	portSpec, portFrom := o.Port, "--port"
	if portSpec == "" {
		portSpec, portFrom = getenv(portVar(d.Name)), portVar(d.Name)
	}
	var pm []engine.PortMapping
	if portSpec != "" {
		m, err := parsePort(portSpec, img.ExposedPorts)
		if err != nil {
			return nil, exitcode.Usagef("%s %q: %v", portFrom, portSpec, err)
		}
		pm = []engine.PortMapping{m}
		s.port = m.HostPort
	}

	env := map[string]string{}
	for k, v := range fileEnv {
		env[k] = v
	}
	prefix := envPrefix(d.Name)
	for _, kv := range p.Environ {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		if !config.ValidVariableName(name) {
			return nil, exitcode.Usagef("%s: %q is not a variable name", k, name)
		}
		env[name] = v
	}
	var plain, secrets []string
	for _, k := range sortedKeys(env) {
		kv := k + "=" + env[k]
		if variables.IsSecret(k, env[k]) {
			secrets = append(secrets, kv)
		} else {
			plain = append(plain, kv)
		}
	}

	s.run = engine.RunOptions{
		Name:    d.Container,
		Image:   d.Image,
		Env:     plain,
		Secrets: secrets,
		Network: p.Network,
		Ports:   pm,
		Mounts:  mounts,
		Restart: p.Restart,
	}
	s.hash, err = configHash(d.Container, img.ID, s.run)
	if err != nil {
		return nil, err
	}
	s.run.Labels = map[string]string{LabelProject: p.Name, LabelContainer: d.Name, LabelConfig: s.hash}

	cur, err := eng.InspectContainer(ctx, d.Container)
	switch {
	case errors.Is(err, engine.ErrNotFound):
		s.action = ActionCreated
	case err != nil:
		return nil, err
	case !isOurs(cur, p.Name, d.Name):
		return nil, strangerError(d.Container, d.Name)
	case cur.Labels[LabelConfig] != s.hash || cur.ImageID != img.ID:
		s.current, s.action = cur, ActionRecreated
	case cur.Running:
		s.current, s.action = cur, ActionRunning
	default:
		s.current, s.action = cur, ActionStarted
	}
	holds := s.current != nil && s.current.Running && slices.ContainsFunc(s.current.Ports, func(m engine.PortMapping) bool { return m.HostPort == s.port })
	if s.port != 0 && s.action != ActionRunning && !holds && !portFree(s.port) {
		return nil, exitcode.Usagef("container %s: host port %s:%d is in use", d.Name, BindAddress, s.port)
	}
	return s, nil
}

// apply does what plan decided.
func apply(ctx context.Context, eng *engine.Engine, s *spec) error {
	switch s.action {
	case ActionRunning:
		return nil
	case ActionStarted:
		return eng.Start(ctx, s.current.ID)
	case ActionRecreated:
		if err := remove(ctx, eng, s.current.ID, true); err != nil {
			return err
		}
	}
	_, err := eng.Run(ctx, s.run)
	return err
}

// parsePort reads "P" or "HOST:CONTAINER" into a mapping on BindAddress. For "P" the container
// port is the image's one EXPOSEd TCP port, else P.
func parsePort(spec string, exposed []string) (engine.PortMapping, error) {
	num := func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 65535 {
			return 0, fmt.Errorf("port %q out of range (want 1-65535)", s)
		}
		return n, nil
	}
	m := engine.PortMapping{HostIP: BindAddress, Protocol: "tcp"}
	host, ctr, two := strings.Cut(spec, ":")
	var err error
	if m.HostPort, err = num(host); err != nil {
		return m, err
	}
	if two {
		m.ContainerPort, err = num(ctr)
		return m, err
	}
	var tcp []int
	for _, e := range exposed {
		n, proto, _ := strings.Cut(e, "/")
		if p, err := strconv.Atoi(n); err == nil && (proto == "" || proto == "tcp") {
			tcp = append(tcp, p)
		}
	}
	switch {
	case len(tcp) == 1:
		m.ContainerPort = tcp[0]
	case len(tcp) == 0 || slices.Contains(tcp, m.HostPort):
		m.ContainerPort = m.HostPort
	default:
		return m, fmt.Errorf("the image exposes ports %v: say which, as HOST:CONTAINER", tcp)
	}
	return m, nil
}

// parseVolumes reads HOST:CONTAINER[:ro|:rw] bind mounts; HOST resolves against root and must
// exist.
func parseVolumes(root string, vols []string) ([]engine.Mount, error) {
	var out []engine.Mount
	for _, v := range vols {
		parts := strings.Split(v, ":")
		ro := false
		if len(parts) == 3 && (parts[2] == "ro" || parts[2] == "rw") {
			ro, parts = parts[2] == "ro", parts[:2]
		}
		if len(parts) != 2 || parts[0] == "" || !strings.HasPrefix(parts[1], "/") {
			return nil, exitcode.Usagef("--volume %q: want HOST:CONTAINER[:ro], CONTAINER an absolute path", v)
		}
		host := parts[0]
		if !filepath.IsAbs(host) {
			host = filepath.Join(root, host)
		}
		host = filepath.Clean(host)
		if _, err := os.Stat(host); err != nil {
			return nil, exitcode.Usagef("--volume %q: %s: %v", v, host, errors.Unwrap(err))
		}
		out = append(out, engine.Mount{Source: host, Target: filepath.Clean(parts[1]), ReadOnly: ro})
	}
	return out, nil
}

// readEnvFiles reads dotenv files in order, ${VAR} and bare KEY lines resolving from getenv
// as docker compose's env_file does. The user named them: they may be anywhere.
func readEnvFiles(files []string, getenv func(string) string) (map[string]string, error) {
	env := map[string]string{}
	for _, f := range files {
		data, err := safefile.ReadFile("", f)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		vals, err := dotenv.ParseWithLookup(bytes.NewReader(data), func(k string) (string, bool) {
			v := getenv(k)
			return v, v != ""
		})
		if err != nil {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("--env-file %s: %w", f, err))
		}
		for k, v := range vals {
			env[k] = v
		}
	}
	return env, nil
}

// checkNetwork refuses a network that does not exist; the engines' own modes need none.
func checkNetwork(ctx context.Context, eng *engine.Engine, network string) error {
	switch network {
	case "", "bridge", "host", "none":
		return nil
	}
	_, err := eng.InspectNetwork(ctx, network)
	if errors.Is(err, engine.ErrNotFound) {
		return exitcode.Usagef("network %s (project_container_network) does not exist: create it, or start the environment that has it ('ps-env up')", network)
	}
	return err
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(BindAddress, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// configHash covers what a container is created with, besides its image (compared by ID). The
// environment enters through a salted, slow key derivation: the label can be read by anyone
// allowed to inspect containers, and must be no cheap oracle for guessing a secret.
func configHash(container, imageID string, o engine.RunOptions) (string, error) {
	var b strings.Builder
	field := func(s string) { fmt.Fprintf(&b, "%d:%s;", len(s), s) }
	field("v1")
	field(imageID)
	field(o.Network)
	field(o.Restart)
	for _, p := range o.Ports {
		field(fmt.Sprintf("%s:%d:%d/%s", p.HostIP, p.HostPort, p.ContainerPort, p.Protocol))
	}
	field("mounts")
	for _, m := range o.Mounts {
		field(fmt.Sprintf("%s:%s:%t", m.Source, m.Target, m.ReadOnly))
	}
	var env strings.Builder
	for _, kv := range slices.Concat(o.Env, o.Secrets) {
		fmt.Fprintf(&env, "%d:%s;", len(kv), kv)
	}
	key, err := pbkdf2.Key(sha256.New, env.String(), []byte("poststack-projcontainers:"+container), 10000, 32)
	if err != nil {
		return "", fmt.Errorf("container %s: hash the settings: %w", container, err)
	}
	field(hex.EncodeToString(key))
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:]), nil
}

// WaitTimeoutError is a container that was not running (and healthy) in time.
type WaitTimeoutError struct {
	Container string
	State     string
	Timeout   time.Duration
}

func (e *WaitTimeoutError) Error() string {
	return fmt.Sprintf("container %s not ready after %s (state %s)", e.Container, e.Timeout, e.State)
}

// ExitCode is 4: timed out.
func (e *WaitTimeoutError) ExitCode() int { return exitcode.Timeout }

// wait polls name until it runs, and is healthy when it has a healthcheck. wctx bounds the
// wait; ctx is the caller's, for telling an interruption from the timeout.
func wait(wctx, ctx context.Context, eng *engine.Engine, name string, timeout time.Duration, pf progress.Func) error {
	state := "unknown"
	said := ""
	for {
		c, err := eng.InspectContainer(wctx, name)
		if err != nil && wctx.Err() == nil {
			return err
		}
		if err == nil {
			state = c.Status
			if c.Health != "" {
				state += " (" + c.Health + ")"
			}
			switch {
			case c.Running && (c.Health == "" || c.Health == "healthy"):
				return nil
			case c.Running && c.Health == "unhealthy":
				return &NotReadyError{Container: name, Problem: "is unhealthy", Logs: logsOf(ctx, eng, name)}
			case !c.Running && c.Status != "created" && c.Status != "paused":
				return &NotReadyError{Container: name, Problem: fmt.Sprintf("exited with code %d", c.ExitCode), Logs: logsOf(ctx, eng, name)}
			}
			if state != said {
				pf.Emit(progress.Event{Op: "containers", Kind: progress.Wait, Step: name, Message: "waiting for " + name + ": " + state})
				said = state
			}
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &WaitTimeoutError{Container: name, State: state, Timeout: timeout}
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// NotReadyError is a container that exited or turned unhealthy while Start waited for it.
type NotReadyError struct {
	Container string
	Problem   string // "exited with code 1", "is unhealthy"
	Logs      string // its last log lines, "" when there are none
}

func (e *NotReadyError) Error() string { return "container " + e.Container + " " + e.Problem }

// Detail is the container's last log lines, for a person.
func (e *NotReadyError) Detail() string {
	if e.Logs == "" {
		return ""
	}
	return "last lines of its log:\n" + e.Logs
}

// logsOf is the tail of a container's log, "" when there is none.
func logsOf(ctx context.Context, eng *engine.Engine, name string) string {
	logs, err := eng.Logs(context.WithoutCancel(ctx), name, logTail)
	if err != nil {
		return ""
	}
	return strings.TrimRight(logs, "\n")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
