package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/secret"
)

const ephemeralHelp = `ps-env ephemeral starts throwaway PostgreSQL servers for CI jobs and local
experiments, and keeps them running after the command returns until
'ps-env ephemeral down'.

Providers:
  native     the host's initdb and postgres (a cached initialised data
             directory is copied, fsync is off, data lives in /dev/shm);
             the default when the PostgreSQL server binaries are installed
  container  --image (any official-compatible postgres image, default
             poststack/postgres:latest from ps-build) run with podman or docker
             (--container-runtime, else detected); PGDATA on a tmpfs

Servers listen on 127.0.0.1 only; the superuser postgres gets a random
password, carried by the printed URL. Started servers are recorded in
--state-dir (default $XDG_STATE_HOME/poststack/ephemeral, else
~/.local/state/poststack/ephemeral).`

// ephemeralTool holds the flags the ephemeral commands share.
type ephemeralTool struct {
	app      *cli.App
	stateDir string
}

func ephemeralCommand(app *cli.App) *ffcli.Command {
	t := &ephemeralTool{app: app}
	fs := flag.NewFlagSet("ps-env ephemeral", flag.ContinueOnError)
	t.stateFlag(fs)
	return app.Examples(&ffcli.Command{
		Name:        "ephemeral",
		ShortUsage:  "ps-env ephemeral <up|list|down> [flags]",
		ShortHelp:   "throwaway PostgreSQL servers for CI and tests: up, list, down",
		LongHelp:    ephemeralHelp,
		FlagSet:     fs,
		Subcommands: []*ffcli.Command{t.upCommand(), t.listCommand(), t.downCommand()},
	},
		`export DATABASE_URL=$(ps-env ephemeral up --migrate migrations)`,
		`ps-env ephemeral up --provider container --image postgres:16 --json`,
		`ps-env ephemeral list`,
		`ps-env ephemeral down --all`,
	)
}

func (t *ephemeralTool) stateFlag(fs *flag.FlagSet) {
	fs.StringVar(&t.stateDir, "state-dir", "", "where started servers are recorded (default $XDG_STATE_HOME/poststack/ephemeral)")
}

// resolvedStateDir is --state-dir, else the default from the run's environment.
func (t *ephemeralTool) resolvedStateDir() (string, error) {
	if t.stateDir != "" {
		return t.app.Path(t.stateDir), nil
	}
	return ephemeral.DefaultStateDir(t.app.Env.Getenv)
}

func (t *ephemeralTool) upCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env ephemeral up", flag.ContinueOnError)
	t.stateFlag(fs)
	var o ephemeral.Options
	fs.StringVar(&o.Provider, "provider", "", `"native" or "container" (default: native when the PostgreSQL server binaries are installed)`)
	fs.StringVar(&o.Image, "image", ephemeral.DefaultImage, "image of the container provider (any official-compatible postgres image)")
	fs.StringVar(&o.Migrate, "migrate", "", "apply the migrations in this directory before printing the URL")
	fs.IntVar(&o.Port, "port", 0, "port on 127.0.0.1 (default: a free one)")
	return t.app.Examples(&ffcli.Command{
		Name:       "up",
		ShortUsage: "ps-env ephemeral up [--provider native|container] [--image I] [--migrate DIR] [--port P] [--json]",
		ShortHelp:  "start a throwaway server, print its URL and leave it running",
		LongHelp: `up starts a server, applies --migrate's migrations, prints the superuser URL
(with its password, sslmode=disable) on stdout and returns, leaving the
server running. --json prints {id, provider, url, port, …} instead. Under
GitHub Actions the password is masked in the job log and the URL is set as
the step output database-url. Interrupted (SIGINT), up removes everything
it had started and exits 130.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env ephemeral up --help')", args[0])
			}
			if o.Migrate != "" {
				o.Migrate = t.app.Path(o.Migrate)
			}
			dir, err := t.resolvedStateDir()
			if err != nil {
				return err
			}
			o.StateDir, o.Detach, o.Environ = dir, true, t.app.Env.Environ
			o.Engine = t.app.Globals.ContainerRuntime
			o.Progress = t.app.Report
			inst, err := ephemeral.Start(ctx, o)
			if err != nil {
				return err
			}
			return t.announce(ctx, inst)
		},
	},
		`ps-env ephemeral up`,
		`psql "$(ps-env ephemeral up --migrate migrations)" -c 'select 1'`,
		`ps-env ephemeral up --provider container --image localhost/poststack/postgres:latest --port 5440 --json`,
	)
}

// announce hands the URL over: masks first, so that nothing prints the password unmasked
// under Actions, then the step output, then stdout. A failure here stops the server: a URL
// nobody received would leave it running unnoticed.
func (t *ephemeralTool) announce(ctx context.Context, inst *ephemeral.Instance) (err error) {
	defer func() {
		if err != nil {
			_ = ephemeral.Stop(context.WithoutCancel(ctx), inst)
		}
	}()
	if cfg, perr := pgx.ParseConfig(inst.URL); perr == nil {
		t.app.AddSecret(cfg.Password)
	}
	t.app.AddSecret(inst.URL)
	if err := t.app.Actions.SetOutput("database-url", inst.URL); err != nil {
		return err
	}
	if t.app.Globals.JSON {
		return cli.WriteJSON(t.app.Env.Stdout, inst)
	}
	_, err = fmt.Fprintln(t.app.Env.Stdout, inst.URL)
	return err
}

func (t *ephemeralTool) listCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env ephemeral list", flag.ContinueOnError)
	t.stateFlag(fs)
	var showSecrets bool
	fs.BoolVar(&showSecrets, "show-secrets", false, "print URLs with their passwords, as text and as --json")
	return t.app.Examples(&ffcli.Command{
		Name:       "list",
		ShortUsage: "ps-env ephemeral list [--json] [--show-secrets]",
		ShortHelp:  "list the running throwaway servers (and forget those that are gone)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env ephemeral list --help')", args[0])
			}
			dir, err := t.resolvedStateDir()
			if err != nil {
				return err
			}
			// The servers that are ours are listed even when some records were not (a
			// record naming a container of someone else's): those come after, on stderr.
			insts, listErr := ephemeral.PruneAndList(ctx, dir, ephemeral.WithEnviron(t.app.Env.Environ))
			if t.app.Globals.JSON {
				err = cli.WriteJSON(t.app.Env.Stdout, listed(insts, showSecrets))
			} else {
				err = renderList(t.app.Env.Stdout, insts, showSecrets)
			}
			return errors.Join(listErr, err)
		},
	}, "ps-env ephemeral list", "ps-env ephemeral list --json --show-secrets | jq -r '.[].url'")
}

// listed is what list --json prints: copies of insts, with the password in
// each URL masked unless showSecrets, since JSON is as human-facing as text
// once it lands in a terminal or a CI log.
func listed(insts []*ephemeral.Instance, showSecrets bool) []ephemeral.Instance {
	out := make([]ephemeral.Instance, 0, len(insts))
	for _, in := range insts {
		c := *in
		if !showSecrets {
			c.URL = secret.MaskURL(c.URL)
		}
		out = append(out, c)
	}
	return out
}

func renderList(w io.Writer, insts []*ephemeral.Instance, showSecrets bool) error {
	if len(insts) == 0 {
		_, err := fmt.Fprintln(w, "no ephemeral servers")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPROVIDER\tPORT\tCREATED\tURL")
	for _, in := range insts {
		u := in.URL
		if !showSecrets {
			u = secret.MaskURL(u)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", in.ID, in.Provider, in.Port, in.Created.Local().Format(time.DateTime), u)
	}
	return tw.Flush()
}

func (t *ephemeralTool) downCommand() *ffcli.Command {
	fs := flag.NewFlagSet("ps-env ephemeral down", flag.ContinueOnError)
	t.stateFlag(fs)
	var all bool
	fs.BoolVar(&all, "all", false, "stop every recorded server")
	return t.app.Examples(&ffcli.Command{
		Name:       "down",
		ShortUsage: "ps-env ephemeral down [ID...|--all]",
		ShortHelp:  "stop throwaway servers and remove their files or containers",
		LongHelp: `down stops the servers named by ID (or a unique prefix of one, as 'list'
shows) or, with --all, every recorded one, and removes their processes,
directories, containers and records. An unknown ID is exit 2. Only what was
made for that server is touched: a record naming a container without the
server's labels, or a directory without its key, is reported ("not ours:
left alone"), dropped, and exit 2.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			switch {
			case all && len(args) > 0:
				return exitcode.Usagef("give IDs or --all, not both")
			case !all && len(args) == 0:
				return exitcode.Usagef("missing ID (or --all); see 'ps-env ephemeral list'")
			}
			dir, err := t.resolvedStateDir()
			if err != nil {
				return err
			}
			var insts []*ephemeral.Instance
			var errs []error
			if all {
				// Records that are not ours are reported and dropped by PruneAndList;
				// the rest are still stopped.
				insts, err = ephemeral.PruneAndList(ctx, dir, ephemeral.WithEnviron(t.app.Env.Environ))
				errs = append(errs, err)
			}
			for _, id := range args {
				inst, err := ephemeral.Load(ctx, dir, id, ephemeral.WithEnviron(t.app.Env.Environ))
				if err != nil {
					return err
				}
				insts = append(insts, inst)
			}
			stopped := []string{}
			for _, inst := range insts {
				if err := ephemeral.Stop(context.WithoutCancel(ctx), inst); err != nil {
					errs = append(errs, err)
					continue
				}
				stopped = append(stopped, inst.ID)
				if !t.app.Globals.JSON {
					fmt.Fprintf(t.app.Env.Stdout, "stopped %s (%s)\n", inst.ID, inst.Provider)
				}
			}
			if t.app.Globals.JSON {
				if err := cli.WriteJSON(t.app.Env.Stdout, struct {
					Stopped []string `json:"stopped"`
				}{stopped}); err != nil {
					errs = append(errs, err)
				}
			}
			return errors.Join(errs...)
		},
	}, "ps-env ephemeral down 3f9a1c", "ps-env ephemeral down --all")
}
