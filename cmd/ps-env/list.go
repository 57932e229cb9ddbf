package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
)

func listCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env list", flag.ContinueOnError)
	return app.Examples(&ffcli.Command{
		Name:       "list",
		ShortUsage: "ps-env list [--json]",
		ShortHelp:  "list the environments of .poststack.yml, * marking the current one",
		LongHelp: `list prints the environments of .poststack.yml in file order with their
database and host port; * marks the current one (environment:, or the only
environment there is). An external database (postgres.url:) is shown as
such; passwords are never shown.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env list --help')", args[0])
			}
			p, err := loadProject(app)
			if err != nil {
				return err
			}
			return app.Render(newEnvList(p.File))
		},
	}, "ps-env list", "ps-env --json list | jq -r .current")
}

// loadProject reads and decodes ./.poststack.yml.
func loadProject(app *cli.App) (*cli.Project, error) {
	return app.ReadProject(config.FileName, "project file "+config.FileName)
}

// currentName is the environment `environment:` selects, else the only one; "" when none is.
func currentName(f *config.File) string {
	if f.Default == "" && len(f.Environments) == 1 {
		return f.Environments[0].Name
	}
	return f.Default
}

// envList is what list reports.
type envList struct {
	Current      string     `json:"current"`
	Environments []envEntry `json:"environments"`
}

type envEntry struct {
	Name     string `json:"name"`
	Current  bool   `json:"current"`
	Database string `json:"database"`
	Port     int    `json:"port"`      // 0 when picked automatically (port_auto)
	PortAuto bool   `json:"port_auto"` // port: auto or none: picked on first use, kept in .poststack/
	External bool   `json:"external"`
}

func newEnvList(f *config.File) envList {
	l := envList{Current: currentName(f), Environments: []envEntry{}}
	for _, e := range f.Environments {
		l.Environments = append(l.Environments, envEntry{
			Name: e.Name, Current: e.Name == l.Current,
			Database: e.Postgres.Database, Port: e.Postgres.Port, PortAuto: e.Postgres.PortAuto && !e.Postgres.External(),
			External: e.Postgres.External(),
		})
	}
	return l
}

func (l envList) RenderText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ENVIRONMENT\tDATABASE\tPORT")
	for _, e := range l.Environments {
		mark, note := " ", ""
		if e.Current {
			mark = "*"
		}
		if e.External {
			note = "\texternal (url:)"
		}
		port := strconv.Itoa(e.Port)
		if e.PortAuto {
			port = "auto"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s%s\n", mark, e.Name, e.Database, port, note)
	}
	return tw.Flush()
}

func (l envList) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, l) }
