package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// pollInterval is how often WaitReady looks at the containers.
const pollInterval = 250 * time.Millisecond

// logTail is how many log lines a WaitError keeps.
const logTail = 20

// Deployer runs compose units with a front-end on an engine; the engine's CLI finds, inspects
// and reads the logs of the containers the front-end made.
type Deployer struct {
	fe  *Frontend
	eng *engine.Engine
}

var _ deploy.Deployer = (*Deployer)(nil)

// New returns a Deployer running f against eng (f from Detect for eng).
func New(f *Frontend, eng *engine.Engine) *Deployer {
	return &Deployer{fe: f, eng: eng}
}

// Plan is Prepare, with the container names of the front-end (docker-compose 1.x and
// podman-compose join them with "_").
func (d *Deployer) Plan(_ context.Context, u deploy.Unit) (*deploy.Plan, error) {
	p, err := Prepare(u)
	if err != nil || !d.fe.legacy {
		return p, err
	}
	project, order, err := loadFinal(p)
	if err != nil {
		return nil, err
	}
	p.Containers = containerNames(project, order, "_")
	return p, nil
}

// loadFinal loads a plan's final file with compose-go, with its services in file order.
func loadFinal(p *deploy.Plan) (*types.Project, []string, error) {
	root, err := parseYAML(p.Unit.Source, p.Final)
	if err != nil {
		return nil, nil, err
	}
	project, err := load(p.Unit, p.Final)
	if err != nil {
		return nil, nil, err
	}
	return project, mappingKeys(mappingValue(root, "services")), nil
}

// baseArgs are the arguments every front-end run for project starts with: no .env of the
// front-end's own (the file is rendered; a COMPOSE_PROFILES there would change what runs).
func baseArgs(project string) []string {
	return []string{"-p", project, "--env-file", os.DevNull}
}

// fileRun runs the front-end on p's final file: by stdin, or for podman-compose, which reads
// no stdin, from a private temp file removed afterwards.
func (d *Deployer) fileRun(ctx context.Context, p *deploy.Plan, verb ...string) ([]byte, error) {
	args := append(baseArgs(p.Unit.ComposeProject()), "--project-directory", p.Unit.Dir)
	spec := runSpec{secrets: secretValues(p.Final)}
	if d.fe.Name == PodmanComposeScript {
		dir, err := os.MkdirTemp("", "poststack-compose-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "compose.yaml")
		if err := os.WriteFile(file, p.Final, 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-f", file)
	} else {
		args = append(args, "-f", "-")
		spec.stdin = p.Final
	}
	spec.args = append(args, verb...)
	return d.fe.run(ctx, spec)
}

func (d *Deployer) checkPlan(p *deploy.Plan) error {
	if p == nil || len(p.Final) == 0 {
		return exitcode.Usagef("compose: empty plan")
	}
	if p.Unit.Kind != "" && p.Unit.Kind != config.Compose {
		return exitcode.Usagef("%s: a %s file is not a compose file", p.Unit.Source, p.Unit.Kind)
	}
	return nil
}

// unitLabels finds the containers of one compose unit.
func unitLabels(u deploy.Unit) map[string]string {
	l := u.Labels()
	l[labelComposeProject] = u.ComposeProject()
	return l
}

// Apply runs `up -d --remove-orphans` on p's final file. compose itself recreates only what
// changed; a service whose containers all kept their IDs is reported unchanged. A deployment
// that already runs p (same containers, fingerprint and image IDs) is left alone without
// running `up`. A container of one of p's names that is not this unit's is a usage error,
// before anything starts.
func (d *Deployer) Apply(ctx context.Context, p *deploy.Plan) ([]deploy.Change, error) {
	if err := d.checkPlan(p); err != nil {
		return nil, err
	}
	project := p.Unit.ComposeProject()
	for _, name := range p.Containers {
		c, err := d.eng.InspectContainer(ctx, name)
		if errors.Is(err, engine.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
		}
		if c.Labels[deploy.LabelProject] != p.Unit.Project || c.Labels[labelComposeProject] != project {
			return nil, exitcode.Usagef("%s: container %s exists and is not part of %s (compose project %s): remove or rename it", p.Unit.Source, name, project, project)
		}
	}
	before, err := d.eng.ListContainers(ctx, unitLabels(p.Unit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
	}
	if !p.Unit.Init && d.running(ctx, p, before) {
		return changes(p.Containers, before, before), nil
	}
	if _, err := d.fileRun(ctx, p, "up", "-d", "--remove-orphans"); err != nil {
		return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
	}
	after, err := d.eng.ListContainers(ctx, unitLabels(p.Unit))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
	}
	return changes(p.Containers, before, after), nil
}

// running tells whether the unit already runs p: exactly p's containers, running, with p's
// fingerprint, from the image their reference names now. `up` is then skipped, because
// compose on podman 4.3's API recreates every container on every `up` (the network IDs that
// API lists never match, so compose's checkExpectedNetworks sees a divergence).
func (d *Deployer) running(ctx context.Context, p *deploy.Plan, cs []engine.Container) bool {
	if len(cs) != len(p.Containers) {
		return false
	}
	images := map[string]string{}
	for _, name := range p.Containers {
		i := slices.IndexFunc(cs, func(c engine.Container) bool { return c.Name == name })
		if i < 0 || !cs[i].Running || cs[i].Labels[deploy.LabelConfig] != p.Fingerprint {
			return false
		}
		c := cs[i]
		id, ok := images[c.Image]
		if !ok {
			img, err := d.eng.InspectImage(ctx, c.Image)
			if err != nil {
				return false
			}
			id = img.ID
			images[c.Image] = id
		}
		if id != c.ImageID {
			return false
		}
	}
	return true
}

// changes compares a unit's containers before and after `up`, per service in the order of
// names.
func changes(names []string, before, after []engine.Container) []deploy.Change {
	ids := func(cs []engine.Container, svc string) []string {
		var out []string
		for _, c := range cs {
			if c.Labels[labelComposeService] == svc {
				out = append(out, c.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	var out []deploy.Change
	seen := map[string]bool{}
	for _, name := range names {
		i := slices.IndexFunc(after, func(c engine.Container) bool { return c.Name == name })
		if i < 0 {
			continue
		}
		svc := after[i].Labels[labelComposeService]
		if seen[svc] {
			continue
		}
		seen[svc] = true
		b, a := ids(before, svc), ids(after, svc)
		action := deploy.ActionRecreated
		switch {
		case len(b) == 0:
			action = deploy.ActionCreated
		case slices.Equal(a, b):
			action = deploy.ActionUnchanged
		}
		out = append(out, deploy.Change{Name: svc, Action: action})
	}
	return out
}

// WaitExited waits for every container of p to stop and returns its exit code and logs.
func (d *Deployer) WaitExited(ctx context.Context, p *deploy.Plan) ([]deploy.Exit, error) {
	if err := d.checkPlan(p); err != nil {
		return nil, err
	}
	var out []deploy.Exit
	for _, name := range p.Containers {
		code, err := d.eng.Wait(ctx, name)
		if errors.Is(err, engine.ErrNotFound) {
			return out, fmt.Errorf("%s: container %s was not created", p.Unit.Source, name)
		}
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.Unit.Source, err)
		}
		c, err := d.eng.InspectContainer(ctx, name)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.Unit.Source, err)
		}
		logs, err := d.eng.Logs(ctx, name, 0)
		if err != nil {
			return out, fmt.Errorf("%s: %w", p.Unit.Source, err)
		}
		out = append(out, deploy.Exit{Container: name, Service: c.Labels[deploy.LabelService], Code: code, Logs: logs})
	}
	return out, nil
}

// WaitError is a container that did not become ready: it exited (exit 1) or the wait timed out
// (exit 4). Detail holds its last log lines.
type WaitError struct {
	Source    string
	Container string
	Reason    string // "exited with code 3", "health: starting", "not created", …
	Code      int    // exitcode.Failure or exitcode.Timeout
	Logs      string
}

func (e *WaitError) Error() string {
	if e.Code == exitcode.Timeout {
		return fmt.Sprintf("%s: container %s not ready in time: %s", e.Source, e.Container, e.Reason)
	}
	return fmt.Sprintf("%s: container %s %s", e.Source, e.Container, e.Reason)
}

// ExitCode is the process exit code (exitcode.Of finds it).
func (e *WaitError) ExitCode() int { return e.Code }

// Detail returns the container's last log lines.
func (e *WaitError) Detail() string { return e.Logs }

// WaitReady waits until every container of p runs and, where it has a healthcheck, is healthy.
// A container that exited is a failure at once, unless it exited 0 and another service waits
// for it with condition service_completed_successfully (a one-shot step of the deployment).
func (d *Deployer) WaitReady(ctx context.Context, p *deploy.Plan, timeout time.Duration) ([]deploy.Container, error) {
	if err := d.checkPlan(p); err != nil {
		return nil, err
	}
	project, _, err := loadFinal(p)
	if err != nil {
		return nil, err
	}
	oneShot := map[string]bool{}
	interval := map[string]time.Duration{}
	for name, svc := range project.Services {
		for dep, cond := range svc.DependsOn {
			if cond.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
		interval[name] = defaultProbeInterval
		if hc := svc.HealthCheck; hc != nil && hc.Interval != nil && *hc.Interval > 0 {
			interval[name] = time.Duration(*hc.Interval)
		}
	}
	lastProbe := map[string]time.Time{}
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		// Each look runs to its end, also past the deadline: on a busy engine one `ps` can take
		// seconds, and a verdict needs a whole view.
		cs, err := d.eng.ListContainers(ctx, unitLabels(p.Unit))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
		}
		var (
			ready            []deploy.Container
			waiting, because string
		)
		for _, name := range p.Containers {
			i := slices.IndexFunc(cs, func(c engine.Container) bool { return c.Name == name })
			if i < 0 {
				if waiting == "" {
					waiting, because = name, "not created"
				}
				continue
			}
			c := cs[i]
			switch {
			case c.Status == "exited" || c.Status == "dead" || c.Status == "stopped":
				if c.ExitCode == 0 && oneShot[c.Labels[labelComposeService]] {
					ready = append(ready, container(c))
					continue
				}
				return nil, &WaitError{Source: p.Unit.Source, Container: name, Code: exitcode.Failure,
					Reason: fmt.Sprintf("exited with code %d", c.ExitCode), Logs: d.tail(ctx, name)}
			case c.Running && (c.Health == "" || c.Health == "healthy"):
				ready = append(ready, container(c))
			default:
				if d.eng.Name() == engine.Podman && c.Running && c.Health != "" {
					d.probe(ctx, c, interval[c.Labels[labelComposeService]], lastProbe)
				}
				if waiting == "" {
					waiting, because = name, c.Status
					if c.Health != "" {
						because = "health " + c.Health
					}
				}
			}
		}
		if waiting == "" {
			return ready, nil
		}
		if !time.Now().Before(deadline) {
			return nil, &WaitError{Source: p.Unit.Source, Container: waiting, Code: exitcode.Timeout,
				Reason: fmt.Sprintf("%s after %s", because, timeout), Logs: d.tail(ctx, waiting)}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: waiting for %s: %w", p.Unit.Source, waiting, ctx.Err())
		case <-tick.C:
		}
	}
}

// defaultProbeInterval is how often WaitReady runs a podman healthcheck whose interval the
// file does not give (it may come from the image).
const defaultProbeInterval = 2 * time.Second

// probe runs a podman container's healthcheck when its interval has passed since the last run
// (or since the container started). podman schedules healthchecks with systemd timers; without
// systemd (containers, CI machines) they never run, and health stays "starting". A failing
// check is the container's state, not an error of the wait.
func (d *Deployer) probe(ctx context.Context, c engine.Container, every time.Duration, last map[string]time.Time) {
	since, ok := last[c.Name]
	if !ok {
		since = c.StartedAt
	}
	if time.Since(since) < every {
		return
	}
	last[c.Name] = time.Now()
	_, _ = d.eng.Command(ctx, nil, "healthcheck", "run", c.Name)
}

// tail reads the last log lines of a container for an error; a container without logs gives
// "".
func (d *Deployer) tail(ctx context.Context, name string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	logs, err := d.eng.Logs(ctx, name, logTail)
	if err != nil {
		return ""
	}
	return logs
}

func container(c engine.Container) deploy.Container {
	out := deploy.Container{
		Name:    c.Name,
		Unit:    c.Labels[deploy.LabelUnit],
		Service: c.Labels[deploy.LabelService],
		Image:   c.Image,
		State:   c.Status,
		Health:  c.Health,
		Started: c.StartedAt,
		Config:  c.Labels[deploy.LabelConfig],
	}
	for _, pm := range c.Ports {
		out.Ports = append(out.Ports, deploy.Port{HostIP: pm.HostIP, HostPort: pm.HostPort, ContainerPort: pm.ContainerPort,
			Protocol: pm.Protocol, Service: out.Service})
	}
	return out
}

// Containers lists the environment's containers made by a compose front-end, by label; unit ""
// means every unit.
func (d *Deployer) Containers(ctx context.Context, project, environment, unit string) ([]deploy.Container, error) {
	cs, err := d.list(ctx, project, environment, unit)
	if err != nil {
		return nil, err
	}
	out := make([]deploy.Container, 0, len(cs))
	for _, c := range cs {
		out = append(out, container(c))
	}
	return out, nil
}

func (d *Deployer) list(ctx context.Context, project, environment, unit string) ([]engine.Container, error) {
	labels := map[string]string{deploy.LabelProject: project, deploy.LabelEnvironment: environment}
	if unit != "" {
		labels[deploy.LabelUnit] = unit
	}
	cs, err := d.eng.ListContainers(ctx, labels)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(cs, func(c engine.Container) bool { return c.Labels[labelComposeProject] == "" }), nil
}

// Remove brings p's compose project down (containers, the project's own networks), leaving
// named volumes and the environment's network alone.
func (d *Deployer) Remove(ctx context.Context, p *deploy.Plan) error {
	if err := d.checkPlan(p); err != nil {
		return err
	}
	if d.fe.legacy {
		// docker-compose 1.x and podman-compose need the file to bring a project down.
		if _, err := d.fileRun(ctx, p, "down", "--remove-orphans"); err != nil {
			return fmt.Errorf("%s: %w", p.Unit.Source, err)
		}
		return nil
	}
	if err := d.down(ctx, p.Unit.ComposeProject()); err != nil {
		return fmt.Errorf("%s: %w", p.Unit.Source, err)
	}
	return nil
}

// down brings a compose project down from its name alone (compose v2 finds its containers and
// networks by label). It runs in / so that no compose file of the working directory or its
// parents is read.
func (d *Deployer) down(ctx context.Context, project string) error {
	_, err := d.fe.run(ctx, runSpec{args: append(baseArgs(project), "down", "--remove-orphans"), dir: "/"})
	return err
}

// RemoveAll brings down every compose project that has containers of the environment.
func (d *Deployer) RemoveAll(ctx context.Context, project, environment string) error {
	cs, err := d.list(ctx, project, environment, "")
	if err != nil {
		return err
	}
	prefix := project + "-" + environment
	var projects []string
	for _, c := range cs {
		p := c.Labels[labelComposeProject]
		if p != prefix && !strings.HasPrefix(p, prefix+"-") {
			continue // not a name this package gives: someone else's labels
		}
		if !slices.Contains(projects, p) {
			projects = append(projects, p)
		}
	}
	slices.Sort(projects)
	var errs []error
	for _, p := range projects {
		if err := d.down(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("compose project %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// secretValues returns the environment values of a final file's services, as written ($$)
// and as the front-end reads them ($), to mask in its errors.
func secretValues(final []byte) []string {
	root, err := parseYAML("", final)
	if err != nil {
		return nil
	}
	var out []string
	add := func(v string) {
		if len(v) >= 3 {
			out = append(out, v, strings.ReplaceAll(v, "$$", "$"))
		}
	}
	services := mappingValue(root, "services")
	if services == nil {
		return nil
	}
	for i := 1; i < len(services.Content); i += 2 {
		env := mappingValue(services.Content[i], "environment")
		if env == nil {
			continue
		}
		if env.Kind == yaml.MappingNode {
			for j := 1; j < len(env.Content); j += 2 {
				add(env.Content[j].Value)
			}
			continue
		}
		for _, item := range env.Content {
			if _, v, ok := strings.Cut(item.Value, "="); ok {
				add(v)
			}
		}
	}
	return out
}
