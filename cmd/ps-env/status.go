package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/lifecycle"
)

func statusCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env status", flag.ContinueOnError)
	return app.Examples(&ffcli.Command{
		Name: "status", ShortUsage: "ps-env status [ENV] [--json]",
		ShortHelp: "what runs of each environment: database, migrations, containers",
		LongHelp: `status shows, for ENV or without it for every environment of .poststack.yml:
the database container's state and host port (or an external database's
reachability), the newest applied migration and how many are pending, and
each deployed container's state, health, published ports and uptime. Only
this project's containers are listed, found by their io.poststack.* labels.
It changes nothing.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			name, err := envArg(args, "ps-env status")
			if err != nil {
				return err
			}
			var names []string
			if name != "" {
				names = []string{name}
			} else {
				p, err := loadProject(app)
				if err != nil {
					return err
				}
				names = p.File.Names()
			}
			r := envStatusReport{Environments: []*lifecycle.EnvStatus{}, now: time.Now()}
			for _, n := range names {
				env, err := resolveEnv(ctx, app, n)
				if err != nil {
					return err
				}
				st, err := lifecycle.Status(ctx, env)
				if err != nil {
					return err
				}
				r.Environments = append(r.Environments, st)
			}
			return app.Render(r)
		},
	}, "ps-env status", "ps-env --json status dev | jq '.environments[0].containers'")
}

type envStatusReport struct {
	Environments []*lifecycle.EnvStatus `json:"environments"`
	now          time.Time
}

func (r envStatusReport) RenderText(w io.Writer) error {
	for i, e := range r.Environments {
		if i > 0 {
			fmt.Fprintln(w)
		}
		db := e.Database
		fmt.Fprintf(w, "%s/%s\n", e.Project, e.Environment)
		switch {
		case db.External:
			fmt.Fprintf(w, "  database   external, %s\n", db.State)
		default:
			port := ""
			if db.Port != 0 {
				port = " on 127.0.0.1:" + strconv.Itoa(db.Port)
			}
			vol := "no data volume"
			if db.VolumeExists {
				vol = "data volume kept"
			}
			fmt.Fprintf(w, "  database   %s %s%s (%s)\n", db.Container, db.State, port, vol)
		}
		switch {
		case db.Known:
			fmt.Fprintf(w, "  migrations version %d, %d applied, %d pending\n", db.Version, db.Applied, db.Pending)
		case db.Error != "":
			fmt.Fprintf(w, "  migrations unknown: %s\n", db.Error)
		}
		if len(e.Containers) == 0 {
			fmt.Fprintf(w, "  containers none\n")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CONTAINER\tUNIT\tSTATE\tHEALTH\tPORTS\tUPTIME")
		for _, c := range e.Containers {
			var ports []string
			for _, p := range c.Ports {
				ports = append(ports, fmt.Sprintf("%s:%d->%d", hostOf(p.HostIP), p.HostPort, p.ContainerPort))
			}
			up := "-"
			if c.State == "running" && !c.Started.IsZero() {
				up = r.now.Sub(c.Started).Round(time.Second).String()
			}
			health := c.Health
			if health == "" {
				health = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.Unit, c.State, health, orDash(strings.Join(ports, ",")), up)
		}
		tw.Flush()
	}
	return nil
}

func (r envStatusReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }

func hostOf(ip string) string {
	if ip == "" {
		return "0.0.0.0"
	}
	return ip
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
