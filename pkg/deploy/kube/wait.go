package kube

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// logTail is how many log lines a failed or late container's error carries.
const logTail = 20

// ContainerError is a container of a deployment that exited or was not ready in time. Its last
// log lines are in Detail, which the CLI prints under the error line.
type ContainerError struct {
	Source    string
	Container string
	// Reason completes "container NAME …": "exited with code 3", "not ready after 30s: …".
	Reason string
	Logs   string // the last log lines
	Code   int    // exitcode.Failure or exitcode.Timeout
}

func (e *ContainerError) Error() string {
	return fmt.Sprintf("%s: container %s %s", e.Source, e.Container, e.Reason)
}

// ExitCode is exitcode.Timeout for a wait that ran out, exitcode.Failure for a container that
// exited.
func (e *ContainerError) ExitCode() int { return e.Code }

// Detail is the container's last log lines, indented, under a header; "" when it logged nothing.
func (e *ContainerError) Detail() string {
	logs := strings.TrimRight(e.Logs, "\n")
	if strings.TrimSpace(logs) == "" {
		return ""
	}
	return fmt.Sprintf("last log lines of %s:\n  %s", e.Container, strings.ReplaceAll(logs, "\n", "\n  "))
}

// member is a container of a plan with what the waits need of it.
type member struct {
	name, service string
	probePeriod   time.Duration
}

func members(p *deploy.Plan) ([]member, error) {
	f, err := parse(p.Unit.Source, p.Final)
	if err != nil {
		return nil, err
	}
	var ms []member
	for _, pd := range f.pods {
		for _, c := range pd.containers {
			ms = append(ms, member{name: pd.name + "-" + c.name, service: c.name, probePeriod: c.probePeriod})
		}
	}
	return ms, nil
}

// state returns the plan's containers by name.
func (d *Deployer) state(ctx context.Context, u deploy.Unit) (map[string]engine.Container, error) {
	cs, err := d.eng.ListContainers(ctx, map[string]string{deploy.LabelProject: u.Project, deploy.LabelEnvironment: u.Environment, deploy.LabelUnit: u.Name})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Source, err)
	}
	m := make(map[string]engine.Container, len(cs))
	for _, c := range cs {
		m[c.Name] = c
	}
	return m, nil
}

func exited(c engine.Container) bool { return c.Status == "exited" || c.Status == "stopped" }

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// WaitExited polls until every container of p has exited, then reads each one's exit code and
// logs, in p.Containers order. A container that disappears is an error; only ctx bounds the
// wait.
func (d *Deployer) WaitExited(ctx context.Context, p *deploy.Plan) ([]deploy.Exit, error) {
	ms, err := members(p)
	if err != nil {
		return nil, err
	}
	for {
		st, err := d.state(ctx, p.Unit)
		if err != nil {
			return nil, err
		}
		done := true
		for _, m := range ms {
			c, ok := st[m.name]
			if !ok {
				return nil, fmt.Errorf("%s: container %s is gone before it was seen to exit", p.Unit.Source, m.name)
			}
			done = done && exited(c)
		}
		if done {
			exits := make([]deploy.Exit, 0, len(ms))
			for _, m := range ms {
				logs, err := d.eng.Logs(ctx, m.name, 0)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
				}
				exits = append(exits, deploy.Exit{Container: m.name, Service: m.service, Code: st[m.name].ExitCode, Logs: logs})
			}
			return exits, nil
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return nil, fmt.Errorf("%s: waiting for %s to exit: %w", p.Unit.Source, strings.Join(p.Containers, ", "), err)
		}
	}
}

// WaitReady polls until every container of p runs and, where it has a livenessProbe, is
// healthy. It runs each probe itself (`podman healthcheck run`) at the probe's period, because
// podman schedules them with systemd timers, which machines without systemd lack. A container
// that exits is an exit-1 ContainerError at once; one not ready after timeout an exit-4
// ContainerError, both with the container's last log lines.
func (d *Deployer) WaitReady(ctx context.Context, p *deploy.Plan, timeout time.Duration) ([]deploy.Container, error) {
	ms, err := members(p)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	nextProbe := map[string]time.Time{}
	for {
		st, err := d.state(ctx, p.Unit)
		if err != nil {
			return nil, err
		}
		var waiting *member
		for i, m := range ms {
			c, ok := st[m.name]
			switch {
			case !ok:
			case exited(c):
				return nil, d.containerError(ctx, p, m.name, fmt.Sprintf("exited with code %d", c.ExitCode), exitcode.Failure)
			case c.Status != "running":
			case m.probePeriod > 0 && c.Health != "healthy":
				if now := time.Now(); !now.Before(nextProbe[m.name]) {
					// Until it is first healthy, probe at the start interval rather than the
					// period: waiting out a 5 s period after the app's first miss is what a
					// person scripting a curl loop would not do (compose's start_interval).
					nextProbe[m.name] = now.Add(min(m.probePeriod, startProbeInterval))
					// Exit 1 means unhealthy, which the next look at the state shows.
					if _, err := d.eng.Command(ctx, nil, "healthcheck", "run", m.name); err != nil && ctx.Err() != nil {
						return nil, fmt.Errorf("%s: %w", p.Unit.Source, err)
					}
				}
			default:
				continue
			}
			if waiting == nil {
				waiting = &ms[i]
			}
		}
		if waiting == nil {
			res := make([]deploy.Container, 0, len(ms))
			for _, m := range ms {
				res = append(res, toContainer(st[m.name], m.service))
			}
			return res, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			st := st[waiting.name]
			reason := fmt.Sprintf("not ready after %s: %s", timeout, describe(st, waiting))
			return nil, d.containerError(ctx, p, waiting.name, reason, exitcode.Timeout)
		}
		if err := sleep(ctx, min(left, pollInterval)); err != nil {
			return nil, fmt.Errorf("%s: waiting for %s: %w", p.Unit.Source, waiting.name, err)
		}
	}
}

func describe(c engine.Container, m *member) string {
	switch {
	case c.Name == "":
		return "it does not exist"
	case m.probePeriod > 0 && c.Status == "running":
		return "running, health " + c.Health
	}
	return c.Status
}

// containerError builds a ContainerError with the container's last log lines; logs that cannot
// be read are left out rather than hiding the error.
func (d *Deployer) containerError(ctx context.Context, p *deploy.Plan, name, reason string, code int) error {
	logs, err := d.eng.Logs(ctx, name, logTail)
	if err != nil && !errors.Is(err, engine.ErrNotFound) {
		logs = "(logs unavailable: " + err.Error() + ")"
	}
	return &ContainerError{Source: p.Unit.Source, Container: name, Reason: reason, Logs: logs, Code: code}
}
