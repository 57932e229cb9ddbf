package kube

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// cleanupTimeout bounds removing what a failed play left.
const cleanupTimeout = 30 * time.Second

// podJSON is the part of `pod inspect` and `pod ps --format json` used here; they name the
// containers' fields differently.
type podJSON struct {
	Name       string
	Labels     map[string]string
	Containers []struct {
		Name   string // inspect
		Names  string // pod ps
		State  string // inspect
		Status string // pod ps
	}
}

func (p podJSON) containerState(name string) (string, bool) {
	for _, c := range p.Containers {
		if c.Name == name || c.Names == name {
			return c.State + c.Status, true
		}
	}
	return "", false
}

// owner says whose a pod is: "" when it carries project, environment and unit, else a
// description of what it carries.
func owner(labels map[string]string, u deploy.Unit) string {
	p, e, n := labels[deploy.LabelProject], labels[deploy.LabelEnvironment], labels[deploy.LabelUnit]
	switch {
	case p == u.Project && e == u.Environment && n == u.Name:
		return ""
	case p == u.Project && e == u.Environment:
		return fmt.Sprintf("it belongs to unit %q of this environment", n)
	case p == "" && e == "":
		return "it was not made by poststack"
	default:
		return fmt.Sprintf("it belongs to environment %s of project %s", e, p)
	}
}

// inspectPod returns the pod called name, or nil when there is none.
func (d *Deployer) inspectPod(ctx context.Context, name string) (*podJSON, error) {
	out, err := d.eng.Command(ctx, nil, "pod", "inspect", name)
	if err != nil {
		var ce *engine.CommandError
		if errors.As(err, &ce) && ce.ExitCode > 0 && strings.Contains(strings.ToLower(ce.Stderr), "no such pod") {
			return nil, nil
		}
		return nil, fmt.Errorf("inspect pod %s: %w", name, err)
	}
	pods, err := decodePods(out)
	if err != nil {
		return nil, fmt.Errorf("inspect pod %s: %w", name, err)
	}
	if len(pods) == 0 {
		return nil, nil
	}
	return &pods[0], nil
}

// decodePods reads one pod object (podman 4 inspect) or an array of them (pod ps, podman 5
// inspect).
func decodePods(out []byte) ([]podJSON, error) {
	out = bytes.TrimSpace(out)
	if len(out) == 0 {
		return nil, nil
	}
	if out[0] == '[' {
		var ps []podJSON
		if err := json.Unmarshal(out, &ps); err != nil {
			return nil, fmt.Errorf("decode podman JSON: %w", err)
		}
		return ps, nil
	}
	var p podJSON
	if err := json.Unmarshal(out, &p); err != nil {
		return nil, fmt.Errorf("decode podman JSON: %w", err)
	}
	return []podJSON{p}, nil
}

// listPods returns the pods that carry every one of labels, sorted by name.
func (d *Deployer) listPods(ctx context.Context, labels map[string]string) ([]podJSON, error) {
	args := []string{"pod", "ps", "--format", "json"}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		args = append(args, "--filter", "label="+k+"="+labels[k])
	}
	out, err := d.eng.Command(ctx, nil, args...)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	all, err := decodePods(out)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var res []podJSON
	for _, p := range all {
		if hasLabels(p.Labels, labels) {
			res = append(res, p)
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	return res, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// stopTimeout is how long a pod's containers get to exit on SIGTERM before they are killed.
const stopTimeout = "10"

// removePod stops the pod, then removes it: podman 4.3 takes about 3 s longer to remove a
// running pod with `rm -f -t 0` than to stop it (SIGTERM, which our images honour) and remove
// the stopped one.
func (d *Deployer) removePod(ctx context.Context, name string) error {
	_, err := d.eng.Command(ctx, nil, "pod", "stop", "-t", stopTimeout, name)
	if err == nil || !noSuchPod(err) {
		_, err = d.eng.Command(ctx, nil, "pod", "rm", "-f", "-t", "0", name)
	}
	if noSuchPod(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove pod %s: %w", name, err)
	}
	return nil
}

func noSuchPod(err error) bool {
	var ce *engine.CommandError
	return errors.As(err, &ce) && ce.ExitCode > 0 && strings.Contains(strings.ToLower(ce.Stderr), "no such pod")
}

// Apply plays p's pods one at a time, each with the file's ConfigMaps and the
// PersistentVolumeClaims whose volume does not exist yet. A pod of p's unit that runs p's
// fingerprint with every container running is left alone (deployments only: an init unit is
// always run again); one with another fingerprint, or stopped, is removed and played again.
// A pod of that name that is not this unit's is an exit-2 error before anything is touched.
func (d *Deployer) Apply(ctx context.Context, p *deploy.Plan) ([]deploy.Change, error) {
	u := p.Unit
	if d.eng.Name() != engine.Podman {
		return nil, exitcode.Usagef("pod file %s needs podman (kube play)", u.Source)
	}
	f, err := parse(u.Source, p.Final)
	if err != nil {
		return nil, err
	}
	existing := make([]*podJSON, len(f.pods))
	for i, pd := range f.pods {
		if existing[i], err = d.inspectPod(ctx, pd.name); err != nil {
			return nil, fmt.Errorf("%s: %w", u.Source, err)
		}
		if existing[i] == nil {
			continue
		}
		if why := owner(existing[i].Labels, u); why != "" {
			return nil, exitcode.Usagef("%s: a pod named %s already exists and %s; nothing was changed", u.Source, pd.name, why)
		}
	}
	var changes []deploy.Change
	for i, pd := range f.pods {
		action := deploy.ActionCreated
		if ex := existing[i]; ex != nil {
			if !u.Init && ex.Labels[deploy.LabelConfig] == p.Fingerprint && allRunning(ex, pd) {
				changes = append(changes, deploy.Change{Name: pd.name, Action: deploy.ActionUnchanged})
				continue
			}
			if err := d.removePod(ctx, pd.name); err != nil {
				return changes, fmt.Errorf("%s: %w", u.Source, err)
			}
			action = deploy.ActionRecreated
		}
		if err := d.play(ctx, f, pd, u.Network); err != nil {
			// A failed play leaves the pod behind, created or half-started: it is ours
			// (the pod of that name was checked or removed above), so it goes, even when ctx
			// has ended.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
			defer cancel()
			if rerr := d.removePod(cctx, pd.name); rerr != nil {
				err = fmt.Errorf("%w (and then: %v)", err, rerr)
			}
			return changes, fmt.Errorf("%s: pod %s: %w", u.Source, pd.name, err)
		}
		changes = append(changes, deploy.Change{Name: pd.name, Action: action})
	}
	return changes, nil
}

func allRunning(ex *podJSON, pd *pod) bool {
	for _, c := range pd.containers {
		if st, ok := ex.containerState(pd.name + "-" + c.name); !ok || !strings.EqualFold(st, "running") {
			return false
		}
	}
	return true
}

// play runs `kube play` for one pod with the file's other documents it may use, the file on
// stdin.
func (d *Deployer) play(ctx context.Context, f *file, pd *pod, network string) error {
	docs := append([]*yaml.Node(nil), f.shared...)
	for _, doc := range f.docs {
		vol, ok := f.volumes[doc]
		if !ok {
			continue
		}
		_, err := d.eng.InspectVolume(ctx, vol)
		if errors.Is(err, engine.ErrNotFound) {
			docs = append(docs, doc)
		} else if err != nil {
			return err
		}
	}
	data, err := encodeDocs(append(docs, pd.doc))
	if err != nil {
		return err
	}
	args := []string{"kube", "play"}
	if network != "" {
		args = append(args, "--network", network)
	}
	_, err = d.eng.Command(ctx, bytes.NewReader(data), append(args, "-")...)
	return err
}

// Remove removes p's pods with their containers; volumes and the network stay. A pod of that
// name that is not p's unit's is left alone and reported as an exit-2 error.
func (d *Deployer) Remove(ctx context.Context, p *deploy.Plan) error {
	u := p.Unit
	if d.eng.Name() != engine.Podman {
		return nil
	}
	f, err := parse(u.Source, p.Final)
	if err != nil {
		return err
	}
	var refused []string
	for _, pd := range f.pods {
		ex, err := d.inspectPod(ctx, pd.name)
		if err != nil {
			return fmt.Errorf("%s: %w", u.Source, err)
		}
		if ex == nil {
			continue
		}
		if why := owner(ex.Labels, u); why != "" {
			refused = append(refused, pd.name+" ("+why+")")
			continue
		}
		if err := d.removePod(ctx, pd.name); err != nil {
			return fmt.Errorf("%s: %w", u.Source, err)
		}
	}
	if len(refused) > 0 {
		return exitcode.Usagef("%s: left pod %s alone", u.Source, strings.Join(refused, ", "))
	}
	return nil
}

// RemoveAll removes every pod labelled with the environment, whatever its unit. Containers
// outside pods are not this deployer's (the environment's postgres and compose services carry
// the same labels) and a pod's containers cannot outlive it, so only pods are removed.
func (d *Deployer) RemoveAll(ctx context.Context, project, environment string) error {
	if d.eng.Name() != engine.Podman {
		return nil
	}
	pods, err := d.listPods(ctx, map[string]string{deploy.LabelProject: project, deploy.LabelEnvironment: environment})
	if err != nil {
		return err
	}
	for _, pd := range pods {
		if err := d.removePod(ctx, pd.Name); err != nil {
			return err
		}
	}
	return nil
}

// Containers lists the containers of the environment's pods (of one unit unless unit is ""),
// sorted by name; infra containers are left out. Service is LabelService where podman could
// set it, else the container's name without its pod's.
func (d *Deployer) Containers(ctx context.Context, project, environment, unit string) ([]deploy.Container, error) {
	if d.eng.Name() != engine.Podman {
		return nil, nil
	}
	labels := map[string]string{deploy.LabelProject: project, deploy.LabelEnvironment: environment}
	if unit != "" {
		labels[deploy.LabelUnit] = unit
	}
	pods, err := d.listPods(ctx, labels)
	if err != nil {
		return nil, err
	}
	podOf := map[string]string{}
	for _, p := range pods {
		for _, c := range p.Containers {
			podOf[c.Names] = p.Name
		}
	}
	cs, err := d.eng.ListContainers(ctx, labels)
	if err != nil {
		return nil, err
	}
	var res []deploy.Container
	for _, c := range cs {
		pod, ok := podOf[c.Name]
		if !ok {
			continue
		}
		res = append(res, toContainer(c, strings.TrimPrefix(c.Name, pod+"-")))
	}
	return res, nil
}

func toContainer(c engine.Container, service string) deploy.Container {
	if s := c.Labels[deploy.LabelService]; s != "" {
		service = s
	}
	out := deploy.Container{
		Name:    c.Name,
		Unit:    c.Labels[deploy.LabelUnit],
		Service: service,
		Image:   c.Image,
		State:   c.Status,
		Health:  c.Health,
		Started: c.StartedAt,
		Config:  c.Labels[deploy.LabelConfig],
	}
	for _, pm := range c.Ports {
		out.Ports = append(out.Ports, deploy.Port{HostIP: pm.HostIP, HostPort: pm.HostPort, ContainerPort: pm.ContainerPort, Protocol: pm.Protocol, Service: service})
	}
	return out
}
