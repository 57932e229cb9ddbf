package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/lifecycle"
)

func downCommand(app *cli.App, name, aliasOf string) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env "+name, flag.ContinueOnError)
	var volumes bool
	fs.BoolVar(&volumes, "volumes", false, "also remove the data volume: the database's data is gone")
	short := "stop an environment: its containers, pods and network go, its data stays"
	if aliasOf != "" {
		short = "alias of " + aliasOf
	}
	return app.Examples(&ffcli.Command{
		Name: name, ShortUsage: "ps-env " + name + " [ENV] [--volumes]",
		ShortHelp: short,
		LongHelp: `down removes ENV's deployed and init containers (pods and compose
projects), then its database container and its network, in that order; only
what carries the environment's labels is touched. The data volume
<project>-<env>-pgdata is kept, so the next up finds the data, unless
--volumes is given (never read from .env or a config file).`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			name, err := envArg(args, "ps-env "+name)
			if err != nil {
				return err
			}
			env, err := resolveEnv(ctx, app, name)
			if err != nil {
				return err
			}
			res, err := lifecycle.Down(ctx, env, volumes, app.Report)
			if err != nil {
				return err
			}
			return app.Render(downReport{res})
		},
	}, "ps-env down", "ps-env down staging --volumes")
}

type downReport struct{ *lifecycle.DownResult }

func (r downReport) RenderText(w io.Writer) error {
	name := r.Project + "/" + r.Environment
	if len(r.Containers) == 0 && r.Database == "" {
		fmt.Fprintf(w, "%s: nothing was running\n", name)
	}
	for _, c := range r.Containers {
		fmt.Fprintf(w, "removed %s\n", c)
	}
	if r.Database != "" {
		fmt.Fprintf(w, "removed %s\n", r.Database)
	}
	switch {
	case r.VolumeRemoved:
		fmt.Fprintf(w, "removed volume %s: the data is gone\n", r.Volume)
	case r.Volume != "":
		fmt.Fprintf(w, "kept volume %s (remove it with: ps-env down %s --volumes)\n", r.Volume, r.Environment)
	}
	fmt.Fprintf(w, "%s is down (%s)\n", name, r.Duration.Round(time.Millisecond))
	return nil
}

func (r downReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		*lifecycle.DownResult
		DurationMS int64 `json:"duration_ms"`
	}{r.DownResult, r.Duration.Milliseconds()})
}
