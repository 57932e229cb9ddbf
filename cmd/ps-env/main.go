// Command ps-env runs a poststack project's environments: scaffolding (init),
// the lifecycle (up, down, restart, deploy), inspection (status, logs, dry-run,
// config, validate), the environment's database (db reset/snapshot/restore),
// project containers, and throwaway PostgreSQL servers (ephemeral).
package main

import (
	"context"
	"io"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, cli.OSEnv(stdin, stdout, stderr))
}

// runEnv is run with the process environment passed in, for tests.
func runEnv(ctx context.Context, args []string, env cli.Env) int {
	app := cli.New("ps-env", env)
	return app.Run(ctx, rootCommand(app), args)
}

// rootCommand is the command tree; subcommands arrive with their issues,
// and the help names only those that are in it.
func rootCommand(app *cli.App) *ffcli.Command {
	return app.Root(&ffcli.Command{
		ShortUsage: "ps-env [flags] <command> [args...]",
		ShortHelp:  "ps-env: a project's environments, and throwaway PostgreSQL servers for CI and tests",
		LongHelp: `ps-env runs the environments of .poststack.yml. 'ps-env init' scaffolds a
project; 'ps-env up' takes an environment from nothing to running: its own
PostgreSQL container (data in a volume that down keeps), the migrations, the
init containers run to success, the deployment (podman pod or compose file)
rendered with the environment's variables, running and healthy. A second up
with nothing changed changes nothing. status, logs, dry-run, config and
validate inspect; db reset/snapshot/restore work on the environment's
database; containers runs the project's images one by one.
It also starts throwaway (ephemeral) PostgreSQL servers for CI jobs and
tests, on the host's PostgreSQL binaries or in a podman or docker container,
with the project's migrations applied, and lists and stops them.`,
		Subcommands: []*ffcli.Command{initCommand(app), listCommand(app), upCommand(app, "up", ""), upCommand(app, "start", "up"), downCommand(app, "down", ""), downCommand(app, "stop", "down"), restartCommand(app), deployCommand(app), statusCommand(app), logsCommand(app), dryRunCommand(app), configCommand(app), validateCommand(app), switchCommand(app), urlCommand(app), containersCommand(app), ephemeralCommand(app), dbCommand(app)},
	},
		"ps-env init --all --no-interactive",
		"ps-env up",
		"ps-env status",
		"ps-env down --volumes",
		"ps-env switch staging",
		"URL=$(ps-env ephemeral up --migrate migrations)",
		"ps-env --container-runtime docker ephemeral up --provider container --json",
		"ps-env --json ephemeral list",
		"ps-env ephemeral down --all",
	)
}
