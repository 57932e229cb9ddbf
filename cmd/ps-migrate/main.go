// Command ps-migrate applies, rolls back and checks SQL migrations against
// a Postgres database, locked, transactional and checksummed.
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
	app := cli.New("ps-migrate", cli.OSEnv(stdin, stdout, stderr))
	return app.Run(ctx, rootCommand(app), args)
}

// rootCommand is the command tree; subcommands arrive with their issues.
func rootCommand(app *cli.App) *ffcli.Command {
	return app.Root(&ffcli.Command{
		ShortUsage: "ps-migrate [flags] <command> [args...]",
		ShortHelp:  "ps-migrate: SQL migrations with rollback",
		LongHelp: `ps-migrate runs the NNNN_name.sql migrations in --migrations-path against
--database-url, each in a transaction together with its ledger row, under an
advisory lock, refusing to run when an applied file has changed. Every
migration has a NNNN_name.rollback.sql.

Commands (arriving one by one): up, down, status, verify, new, wait,
show-schema, dump-schema, backup.`,
	},
		"ps-migrate --database-url postgres://app@localhost:5433/app up",
		"POSTSTACK_DATABASE_URL=postgres://… ps-migrate status --json",
		"ps-migrate down --target 3",
	)
}
