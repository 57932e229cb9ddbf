package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/variables"
)

func urlCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env url", flag.ContinueOnError)
	var host, container bool
	fs.BoolVar(&host, "host", false, "the URL as seen from this machine (the default)")
	fs.BoolVar(&container, "container", false, "the URL as seen from the environment's containers")
	return app.Examples(&ffcli.Command{
		Name:       "url",
		ShortUsage: "ps-env url [ENV] [--host | --container]",
		ShortHelp:  "print the database URL of an environment, password included",
		LongHelp: `url prints the full database URL of ENV (the current environment by default),
with its password: handing it out is this command's job, as in
  psql "$(ps-env url)"
--host (the default) gives the URL from this machine (POSTSTACK_HOST_DATABASE_URL),
--container the one the environment's containers use (POSTSTACK_DATABASE_URL).
An external database (postgres.url:) is printed as configured. Under GitHub
Actions the password is registered with ::add-mask:: first, so the log shows ***.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if host && container {
				return exitcode.Usagef("--host and --container exclude each other")
			}
			if len(args) > 1 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env url --help')", args[1])
			}
			env := ""
			if len(args) == 1 {
				env = args[0]
			}
			// EnvironmentVariables registers the password with the masker, which emits
			// ::add-mask:: under Actions; the URL itself goes to stdout as it is.
			vars, err := app.EnvironmentVariables(config.FileName, env, variables.Options{})
			if err != nil {
				return err
			}
			r := urlReport{Environment: vars.Get("POSTSTACK_ENVIRONMENT"), Side: "host", URL: vars.Get("POSTSTACK_HOST_DATABASE_URL")}
			if container {
				r.Side, r.URL = "container", vars.Get("POSTSTACK_DATABASE_URL")
			}
			return app.Render(r)
		},
	}, `psql "$(ps-env url)"`, "ps-env url staging --container")
}

// urlReport is the URL url hands out.
type urlReport struct {
	Environment string `json:"environment"`
	Side        string `json:"side"` // "host" or "container"
	URL         string `json:"url"`
}

func (r urlReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintln(w, r.URL)
	return err
}

func (r urlReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }
