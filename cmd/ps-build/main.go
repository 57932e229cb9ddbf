// Command ps-build builds the base, postgres and project container images
// in dependency order.
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
	app := cli.New("ps-build", cli.OSEnv(stdin, stdout, stderr))
	return app.Run(ctx, rootCommand(app), args)
}

// rootCommand is the command tree; subcommands arrive with their issues.
func rootCommand(app *cli.App) *ffcli.Command {
	return app.Root(&ffcli.Command{
		ShortUsage: "ps-build [flags] <command> [args...]",
		ShortHelp:  "ps-build: build the project's container images",
		LongHelp: `ps-build builds the base image, the postgres image (containers/postgres/ when
present, else the built-in one) and every project image under
--project-containers-path, in dependency order, with podman or docker.`,
	},
		"ps-build                                   # build everything",
		"ps-build --container-runtime docker --project-container-prefix myapp",
	)
}
