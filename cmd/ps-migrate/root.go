package main

import (
	"flag"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

// tool is what every command's Exec closes over: the app of the run. Each
// command's flags are its own (dbFlags, ledgerFlags and locals), bound to
// its own flag set.
type tool struct {
	app *cli.App
}

const rootHelp = `ps-migrate runs the NNNN_name.sql migrations in --migrations-path against a
Postgres database. Each migration commits together with its ledger row
(poststack.schema_migrations) or not at all; runs hold an advisory lock; an
applied file that changed since stops the run (exit 3) unless --allow-drift.
A failing statement is reported as FILE:LINE:COL with Postgres' DETAIL and
HINT. NNNN_name.rollback.sql undoes NNNN_name.sql. When migrations/poststack.sum
is there (new and hash write it), up and down refuse files that do not match
it (exit 3), so that two branches adding migrations conflict in git.

The database is --database-url (or POSTSTACK_DATABASE_URL), else DATABASE_URL,
else the host-side URL of --env NAME in .poststack.yml; a database_url set by
the project's .env or config file comes after all of these.

Exit codes: 0 done, 1 a migration or the database failed, 2 bad usage or bad
migration files (nothing changed), 3 drift or a failed check, 4 timed out
waiting for the database or the lock, 130 interrupted.`

func newRoot(app *cli.App) *ffcli.Command {
	t := &tool{app: app}
	root := app.Root(&ffcli.Command{
		ShortUsage: "ps-migrate [flags] <command> [args...]",
		ShortHelp:  "ps-migrate: SQL migrations with rollback, locked, transactional and checksummed",
		LongHelp:   rootHelp,
		Subcommands: []*ffcli.Command{
			t.upCommand("up", ""), t.upCommand("migrate", "up"),
			t.downCommand("down", ""), t.downCommand("rollback", "down"),
			t.statusCommand("status", ""), t.statusCommand("migration-status", "status"),
			t.verifyCommand(), t.newCommand(), t.createSchemaCommand(), t.waitCommand(),
			t.testConnectionCommand(), t.showSchemaCommand(), t.dumpSchemaCommand(), t.backupCommand(),
			t.lintCommand(), t.hashCommand(), t.adoptCommand(), t.convertCommand(),
		},
	},
		"ps-migrate --database-url postgres://app:secret@localhost:5433/app up",
		"ps-migrate up --target 12 --dry-run",
		"ps-migrate status --json --exit-code       # exit 3 when migrations are pending",
		"ps-migrate down --steps 1",
		"ps-migrate verify --rollback                # apply, roll back, re-apply each in a scratch database",
		"ps-migrate new add_users_email_index",
		"ps-migrate hash                             # rewrite migrations/poststack.sum after editing migrations",
		"ps-migrate --env staging wait --timeout 60s && ps-migrate --env staging up",
	)
	return root
}

// dbFlags say which database a command works on, besides the global
// --database-url.
type dbFlags struct {
	env         string
	projectFile string
}

func (f *dbFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.env, "env", "", "use the host-side database URL of this environment of the project file")
	fs.StringVar(&f.projectFile, "project-file", config.FileName, "the project file --env reads")
}

// ledgerFlags say where the ledger is and how a run behaves: the flags of
// the commands that build a Migrator.
type ledgerFlags struct {
	dbFlags
	schema               string
	table                string
	lockTimeout          time.Duration
	statementLockTimeout time.Duration
	allowDrift           bool
}

func (f *ledgerFlags) register(fs *flag.FlagSet) {
	f.dbFlags.register(fs)
	fs.StringVar(&f.schema, "schema", migrate.DefaultSchema, "schema of the ledger table")
	fs.StringVar(&f.table, "table", migrate.DefaultTable, "name of the ledger table")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", migrate.DefaultLockTimeout, "how long to wait for another run's migration lock (exit 4 after)")
	fs.DurationVar(&f.statementLockTimeout, "migration-lock-timeout", migrate.DefaultStatementLockTimeout, "Postgres lock_timeout for each migration's statements")
	fs.BoolVar(&f.allowDrift, "allow-drift", false, "go on although applied migration files changed")
}

func newFlagSet(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ContinueOnError) }

// help is a command's short help, or "alias of X" for an alias.
func help(aliasOf, text string) string {
	if aliasOf != "" {
		return "alias of " + aliasOf
	}
	return text
}

func noArgs(args []string) error {
	if len(args) > 0 {
		return exitcode.Usagef("unexpected argument %q", args[0])
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
