// Command ps-env scaffolds a poststack project and runs its environments:
// Postgres, migrations, init containers and the application's containers.
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

// rootCommand is the command tree; subcommands arrive with their issues.
func rootCommand(app *cli.App) *ffcli.Command {
	return app.Root(&ffcli.Command{
		ShortUsage: "ps-env [flags] <command> [args...]",
		ShortHelp:  "ps-env: set up a poststack project and run its environments",
		LongHelp: `ps-env brings a project's environment up and down: its own Postgres container
(data kept in a named volume), migrations, init containers and the application's
pod or compose deployment, as described by .poststack.yml. It also starts
throwaway (ephemeral) databases for CI and tests, and scaffolds new projects.

Commands (arriving one by one): init, list, up, down, restart, status, deploy,
dry-run, config, logs, switch, url, ephemeral.`,
		Subcommands: []*ffcli.Command{ephemeralCommand(app)},
	},
		"ps-env up                     # start the current environment",
		"ps-env --log-level debug down # stop it; data survives",
		"POSTSTACK_CONTAINER_RUNTIME=docker ps-env status",
		"URL=$(ps-env ephemeral up --migrate migrations)",
	)
}
