package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/projcontainers"
)

const containersHelp = `ps-env containers runs the project's own images — those ps-build builds from
--project-containers-path (containers/<name>/Dockerfile, tagged
<project>/<name>:latest) — as standalone containers. containers/postgres/ is
not one of them: it is the environment's database image, which 'ps-env up' runs.

A container is named <project>-<name> and labelled io.poststack.project and
io.poststack.container; the commands act only on containers with both labels.
A container of someone else's with one of the names is reported and left
alone (exit 2), before anything is changed. The project is project.name of
.poststack.yml, else --project-container-prefix (default: the directory's
name), as for ps-build.

Containers join --project-container-network ("bridge", "host" and "none" are
the engine's own; any other network must exist: 'ps-env up' creates
<project>-<env>) with --project-container-restart-policy. Published ports
listen on 127.0.0.1 only.

Per container, from the process environment only (never .env nor the config
file: a checkout may be hostile), <NAME> being the name upper-cased with every
character but letters and digits as '_':
  POSTSTACK_<NAME>_CONTAINER_NAME  the whole container name
  POSTSTACK_<NAME>_PORT            the port start publishes when --port is not given
  POSTSTACK_<NAME>_ENV_<VAR>=v     VAR=v in the container (over --env-file)
Values that look secret (names with PASSWORD, SECRET, TOKEN or KEY, URLs with
a password) reach the engine through its environment, never its command line.`

// containersTool holds what the containers commands share.
type containersTool struct{ app *cli.App }

func containersCommand(app *cli.App) *ffcli.Command {
	t := &containersTool{app: app}
	return app.Examples(&ffcli.Command{
		Name:        "containers",
		ShortUsage:  "ps-env containers <start|stop|status|rm> [flags]",
		ShortHelp:   "the project's own containers (images from containers/<name>/): start, stop, status, rm",
		LongHelp:    containersHelp,
		FlagSet:     flag.NewFlagSet("ps-env containers", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{t.startCommand(), t.stopCommand(), t.statusCommand(), t.rmCommand()},
	},
		"ps-build && ps-env containers start --wait",
		"ps-env containers start --container api --port 8080 --env-file api.env",
		"ps-env containers status --json",
		"ps-env containers stop --all",
	)
}

// project describes the run's project for projcontainers.
func (t *containersTool) project() (projcontainers.Project, error) {
	g := &t.app.Globals
	name, err := t.app.ProjectName()
	if err != nil {
		return projcontainers.Project{}, err
	}
	return projcontainers.Project{
		Name: name, Root: t.app.Env.Dir, Containers: t.app.Path(g.ProjectContainersPath),
		Network: g.ProjectContainerNetwork, Restart: g.ProjectContainerRestartPolicy, Environ: t.app.Env.Environ,
	}, nil
}

func (t *containersTool) engine() (*engine.Engine, error) {
	return engine.Detect(t.app.Globals.ContainerRuntime, engine.WithEnviron(t.app.Env.Environ))
}

// ctrNames is a repeatable string flag.
type ctrNames []string

func (n *ctrNames) String() string     { return strings.Join(*n, ",") }
func (n *ctrNames) Set(v string) error { *n = append(*n, v); return nil }

func (t *containersTool) startCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env containers start", flag.ContinueOnError)
	var (
		containers, envFiles, volumes ctrNames
		o                             projcontainers.StartOptions
	)
	fs.Var(&containers, "container", "start only the container `NAME` (repeatable; default: every one)")
	fs.StringVar(&o.Port, "port", "", "publish host `port` P on 127.0.0.1 to the image's EXPOSEd port (else P), or HOST:CONTAINER")
	fs.Var(&envFiles, "env-file", "dotenv `file` of variables for the containers (repeatable)")
	fs.Var(&volumes, "volume", "bind mount `HOST:CONTAINER[:ro]`, HOST relative to the project (repeatable)")
	fs.BoolVar(&o.Wait, "wait", false, "wait until the containers run, and are healthy if they have a healthcheck")
	fs.DurationVar(&o.Timeout, "timeout", projcontainers.DefaultWaitTimeout, "how long --wait waits (then exit 4)")
	return t.app.Examples(&ffcli.Command{
		Name:       "start",
		ShortUsage: "ps-env containers start [--container NAME]... [--port P] [--env-file F]... [--volume H:C]... [--wait] [--json]",
		ShortHelp:  "start the project's containers from the images ps-build built",
		LongHelp: `start runs every project container (or each --container NAME) from the image
ps-build built. A running container with the same image and settings is left
as it is, a stopped one is started, one whose image or settings changed is
removed and created again. --port, which needs a single container, publishes
host port P on 127.0.0.1 to the one TCP port the image EXPOSEs (to P when it
exposes none or P itself); HOST:CONTAINER says both. --env-file and --volume
apply to every container started. Unknown names, images not built, a port in
use, a missing network, a bad env file or volume, and a container of someone
else's with the name are exit 2 before anything starts. With --wait, a
container that exits or turns unhealthy is exit 1 (with its last log lines),
one not ready within --timeout exit 4.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env containers start --help')", args[0])
			}
			p, err := t.project()
			if err != nil {
				return err
			}
			for _, f := range envFiles {
				o.EnvFiles = append(o.EnvFiles, t.app.Path(f))
			}
			o.Names, o.Volumes = containers, volumes
			o.Progress, o.Secret = t.app.Report, t.app.AddSecret
			eng, err := t.engine()
			if err != nil {
				return err
			}
			res, err := projcontainers.Start(ctx, eng, p, o)
			if err != nil {
				return err
			}
			return t.app.Render(ctrStartReport(res))
		},
	},
		"ps-env containers start",
		"ps-env containers start --container api --port 8080 --wait",
		"POSTSTACK_API_ENV_LOG_LEVEL=debug ps-env containers start --container api --volume ./data:/data",
	)
}

// ctrStartReport is what start did, one entry per container.
type ctrStartReport []projcontainers.Started

func (r ctrStartReport) RenderText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONTAINER\tACTION\tSTATE\tPORTS")
	for _, s := range r {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Container, s.Action, ctrStateText(s.State, s.Health, 0), ctrPortsText(s.Ports))
	}
	return tw.Flush()
}

func (r ctrStartReport) RenderJSON(w io.Writer) error {
	if r == nil {
		r = ctrStartReport{}
	}
	return cli.WriteJSON(w, []projcontainers.Started(r))
}

func (t *containersTool) statusCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env containers status", flag.ContinueOnError)
	return t.app.Examples(&ffcli.Command{
		Name:       "status",
		ShortUsage: "ps-env containers status [--json]",
		ShortHelp:  "list the project's containers: name, image, state, ports, uptime",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env containers status --help')", args[0])
			}
			p, err := t.project()
			if err != nil {
				return err
			}
			eng, err := t.engine()
			if err != nil {
				return err
			}
			cs, err := projcontainers.List(ctx, eng, p.Name)
			if err != nil {
				return err
			}
			return t.app.Render(ctrStatusReport{Project: p.Name, Now: time.Now(), Containers: cs})
		},
	}, "ps-env containers status", "ps-env containers status --json | jq -r '.[] | select(.running) | .container'")
}

// ctrStatusReport is the project's containers at Now.
type ctrStatusReport struct {
	Project    string
	Now        time.Time
	Containers []projcontainers.Status
}

func (r ctrStatusReport) uptime(s projcontainers.Status) time.Duration {
	if !s.Running || s.StartedAt.IsZero() || r.Now.Before(s.StartedAt) {
		return 0
	}
	return r.Now.Sub(s.StartedAt)
}

func (r ctrStatusReport) RenderText(w io.Writer) error {
	if len(r.Containers) == 0 {
		_, err := fmt.Fprintf(w, "no containers of project %s\n", r.Project)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONTAINER\tIMAGE\tSTATE\tPORTS\tUPTIME")
	for _, s := range r.Containers {
		up := "-"
		if d := r.uptime(s); d > 0 {
			up = ctrUptime(d)
		}
		exit := 0
		if s.State == "exited" {
			exit = s.ExitCode
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Container, s.Image, ctrStateText(s.State, s.Health, exit), ctrPortsText(s.Ports), up)
	}
	return tw.Flush()
}

// ctrStatusJSON is one container of status --json: the uptime in milliseconds, no start time
// for a container that never started.
type ctrStatusJSON struct {
	Name      string                `json:"name"`
	Container string                `json:"container"`
	Image     string                `json:"image"`
	State     string                `json:"state"`
	Health    string                `json:"health,omitempty"`
	Running   bool                  `json:"running"`
	ExitCode  int                   `json:"exit_code"`
	Ports     []projcontainers.Port `json:"ports"`
	StartedAt *time.Time            `json:"started_at,omitempty"`
	UptimeMS  int64                 `json:"uptime_ms"`
}

func (r ctrStatusReport) RenderJSON(w io.Writer) error {
	out := make([]ctrStatusJSON, 0, len(r.Containers))
	for _, s := range r.Containers {
		j := ctrStatusJSON{
			Name: s.Name, Container: s.Container, Image: s.Image, State: s.State, Health: s.Health,
			Running: s.Running, ExitCode: s.ExitCode, Ports: s.Ports, UptimeMS: r.uptime(s).Milliseconds(),
		}
		if !s.StartedAt.IsZero() {
			at := s.StartedAt
			j.StartedAt = &at
		}
		if j.Ports == nil {
			j.Ports = []projcontainers.Port{}
		}
		out = append(out, j)
	}
	return cli.WriteJSON(w, out)
}

func (t *containersTool) stopCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env containers stop", flag.ContinueOnError)
	var (
		containers ctrNames
		all        bool
		timeout    time.Duration
	)
	fs.Var(&containers, "container", "stop the container `NAME` (a containers/ name or the container's; repeatable)")
	fs.BoolVar(&all, "all", false, "stop every container of the project")
	fs.DurationVar(&timeout, "timeout", -1, "grace period before the engine kills a container (default: the engine's, 10s)")
	return t.app.Examples(&ffcli.Command{
		Name:       "stop",
		ShortUsage: "ps-env containers stop [--container NAME]... | --all [--timeout D] [--json]",
		ShortHelp:  "stop project containers, keeping them (see rm)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			switch {
			case len(args) > 0:
				return exitcode.Usagef("unexpected argument %q (name containers with --container)", args[0])
			case all && len(containers) > 0:
				return exitcode.Usagef("give --container or --all, not both")
			case !all && len(containers) == 0:
				return exitcode.Usagef("missing --container NAME (or --all); see 'ps-env containers status'")
			}
			p, err := t.project()
			if err != nil {
				return err
			}
			eng, err := t.engine()
			if err != nil {
				return err
			}
			res, err := projcontainers.Stop(ctx, eng, p, containers, all, timeout, t.app.Report)
			if err != nil {
				return err
			}
			return t.app.Render(ctrChangedReport(res))
		},
	}, "ps-env containers stop --container api", "ps-env containers stop --all --timeout 30s")
}

func (t *containersTool) rmCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env containers rm", flag.ContinueOnError)
	var force bool
	fs.BoolVar(&force, "force", false, "kill and remove running containers too")
	fs.BoolVar(&force, "f", false, "short for --force")
	return t.app.Examples(&ffcli.Command{
		Name:       "rm",
		ShortUsage: "ps-env containers rm [--force] NAME... [--json]",
		ShortHelp:  "remove project containers (a running one only with --force)",
		LongHelp: `rm removes the named project containers (containers/ names or container names).
A running one is exit 2 unless --force; every name is checked before anything
is removed, and a container of someone else's with the name is left alone.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			list := args
			if len(list) == 0 {
				return exitcode.Usagef("missing NAME; see 'ps-env containers status'")
			}
			p, err := t.project()
			if err != nil {
				return err
			}
			eng, err := t.engine()
			if err != nil {
				return err
			}
			res, err := projcontainers.Remove(ctx, eng, p, list, force, t.app.Report)
			if err != nil {
				return err
			}
			return t.app.Render(ctrChangedReport(res))
		},
	}, "ps-env containers rm api", "ps-env containers rm --force api worker")
}

// ctrChangedReport is what stop or rm did.
type ctrChangedReport []projcontainers.Changed

func (r ctrChangedReport) RenderText(w io.Writer) error {
	if len(r) == 0 {
		_, err := fmt.Fprintln(w, "no containers")
		return err
	}
	for _, c := range r {
		if _, err := fmt.Fprintf(w, "%s %s (%s)\n", c.Action, c.Name, c.Container); err != nil {
			return err
		}
	}
	return nil
}

func (r ctrChangedReport) RenderJSON(w io.Writer) error {
	if r == nil {
		r = ctrChangedReport{}
	}
	return cli.WriteJSON(w, []projcontainers.Changed(r))
}

// ctrStateText is a state as status shows it: "running (healthy)", "exited (1)".
func ctrStateText(state, health string, exit int) string {
	switch {
	case state == "":
		return "-"
	case health != "":
		return state + " (" + health + ")"
	case exit != 0:
		return fmt.Sprintf("%s (%d)", state, exit)
	}
	return state
}

func ctrPortsText(ps []projcontainers.Port) string {
	if len(ps) == 0 {
		return "-"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ctrUptime is an uptime in its two largest units: 45s, 3m12s, 2h5m, 3d4h.
func ctrUptime(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
