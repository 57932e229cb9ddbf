package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/lifecycle"
)

// upFlags are the flags of up, start, deploy and restart.
type upFlags struct {
	only        string
	noMigrate   bool
	waitTimeout time.Duration
}

func (f *upFlags) register(fs *flag.FlagSet, only bool) {
	if only {
		fs.StringVar(&f.only, "only", "", "run one phase: db, migrate, init or deploy")
	}
	fs.BoolVar(&f.noMigrate, "no-migrate", false, "do not apply migrations")
	fs.DurationVar(&f.waitTimeout, "wait-timeout", lifecycle.DefaultWaitTimeout, "how long to wait for deployed containers to run and be healthy (exit 4 after)")
}

const upLongHelp = `up brings ENV (the current environment by default) up, in order:
  db       its PostgreSQL container <project>-<env>-postgres, data in the volume
           <project>-<env>-pgdata, on the network <project>-<env> (or, with
           postgres.url:, checks that the external database answers)
  migrate  the migrations of --migrations-path (--no-migrate skips them)
  init     each init: entry, run to completion; every container must exit 0,
           or up stops with exit 1, prints its logs (kept under logs/containers/)
           and deploys nothing
  deploy   the deployment: pod file (podman) or compose file (docker compose
           v2, docker-compose, podman compose), rendered with the environment's
           variables (strict: an undefined variable is exit 3 before anything
           starts), labelled and joined to the environment's network; up waits
           until every container runs and is healthy (--wait-timeout, exit 4)
Every file is checked and every host port it binds is checked free before
anything starts (exit 2 naming the port, who holds it and a free one).
What already runs as configured is left alone: a second up with nothing
changed restarts nothing and says so; an init entry runs again only when its
file changed or the database is new. Interrupted (Ctrl-C), up stops what it
started and keeps the data (exit 130).`

func upCommand(app *cli.App, name, aliasOf string) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env "+name, flag.ContinueOnError)
	var f upFlags
	f.register(fs, true)
	short := "bring an environment up: database, migrations, init, deployment"
	if aliasOf != "" {
		short = "alias of " + aliasOf
	}
	return app.Examples(&ffcli.Command{
		Name: name, ShortUsage: "ps-env " + name + " [ENV] [--only db|migrate|init|deploy] [--no-migrate] [--wait-timeout D]",
		ShortHelp: short, LongHelp: upLongHelp, FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			env, err := envArg(args, "ps-env "+name)
			if err != nil {
				return err
			}
			return runUp(ctx, app, env, f)
		},
	}, "ps-env up", "ps-env up staging --only deploy", "ps-env --json up dev --wait-timeout 5m")
}

func deployCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env deploy", flag.ContinueOnError)
	var f upFlags
	fs.DurationVar(&f.waitTimeout, "wait-timeout", lifecycle.DefaultWaitTimeout, "how long to wait for deployed containers to run and be healthy (exit 4 after)")
	return app.Examples(&ffcli.Command{
		Name: "deploy", ShortUsage: "ps-env deploy [ENV] [--wait-timeout D]",
		ShortHelp: "(re)deploy an environment's deployment only (= up --only deploy)",
		LongHelp: `deploy renders and starts ENV's deployment file, as the deploy phase of
'ps-env up' does, and waits until its containers run and are healthy. What
runs unchanged is left alone; a changed file or variable redeploys what
changed.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			env, err := envArg(args, "ps-env deploy")
			if err != nil {
				return err
			}
			f.only = lifecycle.PhaseDeploy
			return runUp(ctx, app, env, f)
		},
	}, "ps-env deploy", "ps-env deploy staging")
}

func restartCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env restart", flag.ContinueOnError)
	var f upFlags
	f.register(fs, false)
	return app.Examples(&ffcli.Command{
		Name: "restart", ShortUsage: "ps-env restart [ENV] [--no-migrate] [--wait-timeout D]",
		ShortHelp: "down (data kept), then up",
		LongHelp:  "restart takes ENV down, keeping its data volume, and brings it up again.",
		FlagSet:   fs,
		Exec: func(ctx context.Context, args []string) error {
			name, err := envArg(args, "ps-env restart")
			if err != nil {
				return err
			}
			env, err := resolveEnv(ctx, app, name)
			if err != nil {
				return err
			}
			if _, err := lifecycle.Down(ctx, env, false, app.Report); err != nil {
				return err
			}
			return upEnv(ctx, app, env, f)
		},
	}, "ps-env restart", "ps-env restart staging")
}

// envArg is the optional environment name, args' only one.
func envArg(args []string, cmd string) (string, error) {
	if len(args) > 1 {
		return "", exitcode.Usagef("unexpected argument %q (see '%s --help')", args[1], cmd)
	}
	if len(args) == 1 {
		return args[0], nil
	}
	return "", nil
}

func runUp(ctx context.Context, app *cli.App, name string, f upFlags) error {
	if err := lifecycle.CheckOnly(f.only); err != nil {
		return err
	}
	env, err := resolveEnv(ctx, app, name)
	if err != nil {
		return err
	}
	return upEnv(ctx, app, env, f)
}

func upEnv(ctx context.Context, app *cli.App, env *lifecycle.Environment, f upFlags) error {
	res, err := lifecycle.Up(ctx, env, lifecycle.Options{
		Only: f.only, NoMigrate: f.noMigrate, WaitTimeout: f.waitTimeout,
		Progress: app.Report, Mask: app.Secrets.Mask,
	})
	if err != nil {
		return err
	}
	return app.Render(upReport{res})
}

// upReport is what up did.
type upReport struct{ *lifecycle.UpResult }

func (r upReport) RenderText(w io.Writer) error {
	name := r.Project + "/" + r.Environment
	if !r.Changed {
		fmt.Fprintf(w, "%s is up to date: nothing changed, nothing restarted\n", name)
	}
	if d := r.Database; d != nil {
		switch {
		case d.External:
			fmt.Fprintf(w, "database: external, reachable\n")
		default:
			fmt.Fprintf(w, "database: %s %s on 127.0.0.1:%d\n", d.Container, d.Action, d.Port)
		}
	}
	if m := r.Migrations; m != nil {
		fmt.Fprintf(w, "migrations: %d applied now, %d in %s\n", len(m.Applied), m.Total, m.Dir)
	}
	for _, i := range r.Init {
		if !i.Ran {
			fmt.Fprintf(w, "init %s: already ran with this file, skipped\n", i.Source)
			continue
		}
		fmt.Fprintf(w, "init %s: %d container(s) exited 0\n", i.Source, len(i.Containers))
	}
	if d := r.Deploy; d != nil {
		for _, c := range d.Changes {
			fmt.Fprintf(w, "deploy %s: %s %s\n", d.Source, c.Name, c.Action)
		}
		for _, c := range d.Containers {
			fmt.Fprintf(w, "  %s %s%s\n", c.Name, c.State, healthNote(c.Health))
			for _, u := range hostURLs(c.Ports) {
				fmt.Fprintf(w, "    %s\n", u)
			}
		}
	}
	if r.Changed {
		fmt.Fprintf(w, "%s is up (%s)\n", name, r.Duration.Round(time.Millisecond))
	}
	return nil
}

func (r upReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		*lifecycle.UpResult
		DurationMS int64 `json:"duration_ms"`
	}{r.UpResult, r.Duration.Milliseconds()})
}

func healthNote(h string) string {
	if h == "" {
		return ""
	}
	return " (" + h + ")"
}

// hostURLs are the addresses a person opens for published TCP ports.
func hostURLs(ports []deploy.Port) []string {
	var out []string
	for _, p := range ports {
		if p.Protocol == "udp" || p.HostPort == 0 {
			continue
		}
		host := p.HostIP
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		out = append(out, fmt.Sprintf("http://%s:%d (container port %d)", host, p.HostPort, p.ContainerPort))
	}
	return out
}
