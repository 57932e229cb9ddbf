package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgschema"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/variables"
)

// tool holds what every command shares: the app and the flags that say
// where the database and the ledger are.
type tool struct {
	app *cli.App

	env           string
	projectFile   string
	schema        string
	table         string
	lockTimeout   time.Duration
	sqlLockTimout time.Duration
	allowDrift    bool
}

const rootHelp = `ps-migrate runs the NNNN_name.sql migrations in --migrations-path against a
Postgres database. Each migration commits together with its ledger row
(poststack.schema_migrations) or not at all; runs hold an advisory lock; an
applied file that changed since stops the run (exit 3) unless --allow-drift.
A failing statement is reported as FILE:LINE:COL with Postgres' DETAIL and
HINT. NNNN_name.rollback.sql undoes NNNN_name.sql.

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
		},
	},
		"ps-migrate --database-url postgres://app:secret@localhost:5433/app up",
		"ps-migrate up --target 12 --dry-run",
		"ps-migrate status --json --exit-code       # exit 3 when migrations are pending",
		"ps-migrate down --steps 1",
		"ps-migrate verify --rollback                # apply, roll back, re-apply each in a scratch database",
		"ps-migrate new add_users_email_index",
		"ps-migrate --env staging wait --timeout 60s && ps-migrate --env staging up",
	)
	return root
}

// connFlags registers the flags every database command takes.
func (t *tool) connFlags(fs *flag.FlagSet) {
	fs.StringVar(&t.env, "env", "", "use the host-side database URL of this environment of the project file")
	fs.StringVar(&t.projectFile, "project-file", config.FileName, "the project file --env reads")
}

// ledgerFlags registers the flags of commands that use the ledger.
func (t *tool) ledgerFlags(fs *flag.FlagSet) {
	t.connFlags(fs)
	fs.StringVar(&t.schema, "schema", migrate.DefaultSchema, "schema of the ledger table")
	fs.StringVar(&t.table, "table", migrate.DefaultTable, "name of the ledger table")
	fs.DurationVar(&t.lockTimeout, "lock-timeout", migrate.DefaultLockTimeout, "how long to wait for another run's migration lock (exit 4 after)")
	fs.DurationVar(&t.sqlLockTimout, "migration-lock-timeout", migrate.DefaultStatementLockTimeout, "Postgres lock_timeout for each migration's statements")
	fs.BoolVar(&t.allowDrift, "allow-drift", false, "go on although applied migration files changed")
}

// withConn runs f with a connection to the database for a command that
// takes no arguments, and closes it afterwards.
func (t *tool) withConn(ctx context.Context, args []string, f func(*pgx.Conn) error) error {
	if err := noArgs(args); err != nil {
		return err
	}
	conn, err := t.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// withMigrator is withConn with the migration files loaded and a Migrator
// built on the connection.
func (t *tool) withMigrator(ctx context.Context, args []string, f func(*migrate.Migrator) error) error {
	if err := noArgs(args); err != nil {
		return err
	}
	m, conn, err := t.migrator(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(m)
}

func newFlagSet(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ContinueOnError) }

// databaseURL finds the database: --database-url or POSTSTACK_DATABASE_URL,
// else DATABASE_URL, else --env's host-side URL. A URL from the project's
// .env or config file ranks last: a checkout must not be able to point a
// run at another database than the one the user named.
func (t *tool) databaseURL() (string, error) {
	u := t.app.Globals.DatabaseURL
	if u != "" && !t.app.FromProject("database-url") {
		return u, nil
	}
	if t.env == "" {
		if e := t.app.Env.Getenv("DATABASE_URL"); e != "" {
			return e, nil
		}
		if u != "" {
			return u, nil
		}
		return "", exitcode.Usagef("no database: give --database-url (or POSTSTACK_DATABASE_URL), DATABASE_URL, or --env NAME")
	}
	vars, err := t.app.EnvironmentVariables(t.projectFile, t.env, variables.Options{})
	if err != nil {
		return "", err
	}
	return vars.Get("POSTSTACK_HOST_DATABASE_URL"), nil
}

// urlScheme matches the scheme of a URL.
var urlScheme = regexp.MustCompile(`^\s*([A-Za-z][A-Za-z0-9+.-]*)://`)

// maxShownDSN bounds how much of a connection string an error quotes.
const maxShownDSN = 200

// connConfig parses a connection string (what names it in messages). Its
// passwords are registered with the app's masker before it is parsed, in
// every form a parser's error could quote them, and a parse error is
// reworded around a masked copy of the string: pgx's own redaction is best
// effort and leaves fragments of malformed strings.
func (t *tool) connConfig(what, u string) (*pgx.ConnConfig, error) {
	for _, pw := range secret.DSNPasswords(u) {
		t.app.AddSecret(pw)
	}
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		reason := err.Error()
		var pce *pgconn.ParseConfigError
		if errors.As(err, &pce) {
			// "cannot parse `<the string, half redacted>`: <reason>"
			if i := strings.LastIndex(reason, "`: "); i >= 0 {
				reason = reason[i+3:]
			}
		}
		if m := urlScheme.FindStringSubmatch(u); m != nil && m[1] != "postgres" && m[1] != "postgresql" {
			reason += "; a URL must start with postgres:// or postgresql:// (in lower case)"
		}
		shown := secret.MaskDSN(u)
		if len(shown) > maxShownDSN {
			shown = strings.ToValidUTF8(shown[:maxShownDSN], "") + "…"
		}
		return nil, exitcode.Usagef("invalid %s: %s: %s", what, shown, reason)
	}
	// A password from PGPASSWORD or a passfile is one too.
	t.app.AddSecret(cfg.Password)
	return cfg, nil
}

// connect opens one connection to the database.
func (t *tool) connect(ctx context.Context) (*pgx.Conn, error) {
	u, err := t.databaseURL()
	if err != nil {
		return nil, err
	}
	cfg, err := t.connConfig("database URL", u)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", describe(cfg), err)
	}
	return conn, nil
}

func describe(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// source loads the migration files, naming them in messages as the user
// would find them from the working directory.
func (t *tool) source() ([]*migrate.Migration, error) {
	dir := t.app.Globals.MigrationsPath
	abs := t.app.Path(dir)
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, exitcode.Usagef("migrations directory %s: not found (set --migrations-path)", dir)
	}
	// Without a usable home there is no cache; loading is only slower.
	cache, _ := migrate.CachePath(abs, t.app.Env.Getenv)
	migs, err := migrate.LoadDir(abs, migrate.WithCache(cache), migrate.WithRoot(t.app.Env.Dir))
	if abs == dir {
		return migs, err
	}
	// LoadDir names files by the absolute path it was given; show them
	// as the user wrote the directory.
	rename := func(file string) string {
		if rest, ok := strings.CutPrefix(file, abs+string(filepath.Separator)); ok {
			return filepath.Join(dir, rest)
		}
		return file
	}
	var se *migrate.SourceError
	if errors.As(err, &se) {
		for i := range se.Problems {
			se.Problems[i].File = rename(se.Problems[i].File)
		}
	}
	for _, m := range migs {
		m.Up.File = rename(m.Up.File)
		if m.Down != nil {
			m.Down.File = rename(m.Down.File)
		}
	}
	return migs, err
}

// migrator loads the files, connects and builds the Migrator, reporting
// progress through the app's hook.
func (t *tool) migrator(ctx context.Context) (*migrate.Migrator, *pgx.Conn, error) {
	migs, err := t.source()
	if err != nil {
		return nil, nil, err
	}
	conn, err := t.connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	m, err := migrate.New(conn, migs,
		migrate.WithSchema(t.schema),
		migrate.WithTable(t.table),
		migrate.WithLockTimeout(t.lockTimeout),
		migrate.WithStatementLockTimeout(t.sqlLockTimout),
		migrate.WithAllowDrift(t.allowDrift),
		migrate.WithProgress(t.app.Report),
	)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, exitcode.With(exitcode.Usage, err)
	}
	return m, conn, nil
}

// report renders results (text or JSON), the step summary under Actions,
// and an annotation for a failing migration.
func (t *tool) report(verb string, results []migrate.Result, err error) error {
	var pe *migrate.PartialError
	if errors.As(err, &pe) {
		results = pe.Applied
	}
	out := t.app.Env.Stdout
	if t.app.Globals.JSON {
		type row struct {
			Version    int64  `json:"version"`
			Name       string `json:"name"`
			Direction  string `json:"direction"`
			DurationMS int64  `json:"duration_ms"`
		}
		rows := []row{}
		for _, r := range results {
			rows = append(rows, row{r.Version, r.Name, string(r.Direction), r.Duration.Milliseconds()})
		}
		if jerr := writeJSON(out, map[string]any{"results": rows, "error": errString(err)}); jerr != nil {
			return jerr
		}
	} else {
		for _, r := range results {
			fmt.Fprintf(out, "%s %s (%s)\n", verb, label(r.Version, r.Name, r.Migration), r.Duration.Round(time.Millisecond))
		}
		if len(results) == 0 && err == nil {
			fmt.Fprintln(out, "nothing to do")
		}
	}
	t.summary(verb, results, err)
	var me *migrate.MigrationError
	if errors.As(err, &me) {
		t.app.Actions.Error(firstLine(me.Error()), me.File, me.Line, me.Col)
	}
	return err
}

// summary writes the GitHub Actions step summary: what ran and how long.
func (t *tool) summary(verb string, results []migrate.Result, err error) {
	if !t.app.Actions.Enabled() || (len(results) == 0 && err == nil) {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### ps-migrate %s\n\n| version | name | direction | duration |\n|---:|---|---|---:|\n", verb)
	for _, r := range results {
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", r.Version, r.Name, r.Direction, r.Duration.Round(time.Millisecond))
	}
	if err != nil {
		fmt.Fprintf(&b, "\n**Failed:** `%s`\n", strings.ReplaceAll(firstLine(t.app.Secrets.Mask(err.Error())), "`", "'"))
	}
	if serr := t.app.Actions.AddStepSummary(b.String()); serr != nil {
		t.app.Logger.Warn("step summary", "err", serr)
	}
}

func (t *tool) upCommand(name, aliasOf string) *ffcli.Command {
	fs := newFlagSet("ps-migrate " + name)
	t.ledgerFlags(fs)
	var target int64
	var dryRun bool
	fs.Int64Var(&target, "target", 0, "apply up to and including this version (default: all)")
	fs.Int64Var(&target, "target-version", 0, "alias of --target")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would run; change nothing, take no lock")
	return t.app.Examples(&ffcli.Command{
		Name:       name,
		ShortUsage: "ps-migrate " + name + " [--target V] [--dry-run]",
		ShortHelp:  help(aliasOf, "apply pending migrations, each with its ledger row in one transaction"),
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withMigrator(ctx, args, func(m *migrate.Migrator) error {
				if dryRun {
					plan, err := m.Plan(ctx, target)
					if err != nil {
						return err
					}
					return t.renderPlan("would apply", plan)
				}
				results, err := m.Up(ctx, target)
				return t.report("applied", results, err)
			})
		},
	}, "ps-migrate up", "ps-migrate up --target 7 --dry-run")
}

func (t *tool) renderPlan(verb string, plan []*migrate.Migration) error {
	if t.app.Globals.JSON {
		rows := []map[string]any{}
		for _, m := range plan {
			rows = append(rows, map[string]any{"version": m.Version, "name": m.Name, "file": m.Up.File, "no_transaction": m.Up.NoTransaction})
		}
		return writeJSON(t.app.Env.Stdout, map[string]any{"plan": rows})
	}
	if len(plan) == 0 {
		fmt.Fprintln(t.app.Env.Stdout, "nothing to do")
	}
	for _, m := range plan {
		fmt.Fprintf(t.app.Env.Stdout, "%s %s\n", verb, m.Up.File)
	}
	return nil
}

func (t *tool) downCommand(name, aliasOf string) *ffcli.Command {
	fs := newFlagSet("ps-migrate " + name)
	t.ledgerFlags(fs)
	target := int64(-1)
	var steps int
	var dryRun bool
	fs.Int64Var(&target, "target", -1, "roll back every migration newer than this version (0: all)")
	fs.Int64Var(&target, "target-version", -1, "alias of --target")
	fs.IntVar(&steps, "steps", 0, "roll back this many of the newest migrations")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be rolled back; change nothing")
	return t.app.Examples(&ffcli.Command{
		Name:       name,
		ShortUsage: "ps-migrate " + name + " --target V | --steps N [--dry-run]",
		ShortHelp:  help(aliasOf, "roll back migrations newest first, each in its own transaction"),
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			var to migrate.DownTarget
			switch {
			case target >= 0 && steps != 0:
				return exitcode.Usagef("give --target or --steps, not both")
			case target >= 0:
				to = migrate.ToVersion(target)
			case steps > 0:
				to = migrate.Steps(steps)
			case steps < 0:
				return exitcode.Usagef("--steps must be at least 1")
			default:
				return exitcode.Usagef("say how far: --target V (0 rolls back everything) or --steps N")
			}
			m, conn, err := t.migrator(ctx)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			if dryRun {
				plan, err := m.PlanDown(ctx, to)
				if err != nil {
					return err
				}
				if len(plan) == 0 {
					fmt.Fprintln(t.app.Env.Stdout, "nothing to do")
				}
				for _, s := range plan {
					fmt.Fprintf(t.app.Env.Stdout, "would roll back %s\n", label(s.Version, s.Name, nil))
				}
				return nil
			}
			results, err := m.Down(ctx, to)
			return t.report("rolled back", results, err)
		},
	}, "ps-migrate down --steps 1", "ps-migrate down --target 3 --dry-run")
}

func (t *tool) statusCommand(name, aliasOf string) *ffcli.Command {
	fs := newFlagSet("ps-migrate " + name)
	t.ledgerFlags(fs)
	var exitCode bool
	fs.BoolVar(&exitCode, "exit-code", false, "exit 3 when anything is pending, changed or missing its file")
	return t.app.Examples(&ffcli.Command{
		Name:       name,
		ShortUsage: "ps-migrate " + name + " [--json] [--exit-code]",
		ShortHelp:  help(aliasOf, "show each migration: applied, pending, changed or missing-file"),
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withMigrator(ctx, args, func(m *migrate.Migrator) error {
				states, err := m.Status(ctx)
				if err != nil {
					return err
				}
				counts := map[migrate.Status]int{}
				for _, s := range states {
					counts[s.Status]++
				}
				if t.app.Globals.JSON {
					if states == nil {
						states = []migrate.State{}
					}
					if err := writeJSON(t.app.Env.Stdout, states); err != nil {
						return err
					}
				} else {
					tw := tabwriter.NewWriter(t.app.Env.Stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "VERSION\tNAME\tSTATUS\tAPPLIED AT\tDURATION")
					for _, s := range states {
						at, d := "-", "-"
						if !s.AppliedAt.IsZero() {
							at = s.AppliedAt.Local().Format(time.DateTime)
							d = s.Duration.Round(time.Millisecond).String()
						}
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.Version, s.Name, s.Status, at, d)
					}
					tw.Flush()
					fmt.Fprintf(t.app.Env.Stdout, "%d applied, %d pending, %d changed, %d missing-file\n",
						counts[migrate.StatusApplied], counts[migrate.StatusPending], counts[migrate.StatusChanged], counts[migrate.StatusMissingFile])
				}
				if exitCode {
					if n := len(states) - counts[migrate.StatusApplied]; n > 0 {
						return exitcode.With(exitcode.Check, fmt.Errorf("%d of %d migrations are not applied as they are on disk", n, len(states)))
					}
				}
				return nil
			})
		},
	}, "ps-migrate status", "ps-migrate status --json --exit-code")
}

func (t *tool) verifyCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate verify")
	t.ledgerFlags(fs)
	var rollback bool
	var scratch string
	fs.BoolVar(&rollback, "rollback", false, "in a scratch database, apply, roll back and re-apply each migration and compare the catalog")
	fs.StringVar(&scratch, "scratch-url", "", "with --rollback: an empty database to use, refused (exit 2) if it holds a ledger or any object; the migrations stay applied there (default: a temporary database created next to the target and dropped)")
	return t.app.Examples(&ffcli.Command{
		Name:       "verify",
		ShortUsage: "ps-migrate verify [--rollback [--scratch-url URL]]",
		ShortHelp:  "check applied migrations against their files (exit 3 on drift); --rollback tests every rollback",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if rollback {
				return t.verifyRollback(ctx, scratch)
			}
			m, conn, err := t.migrator(ctx)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			// Verify returns the drifts together with a *DriftError: the
			// listing is the command's output, the error only its exit code.
			drifts, err := m.Verify(ctx)
			var drift *migrate.DriftError
			if err != nil && !errors.As(err, &drift) {
				return err
			}
			switch {
			case t.app.Globals.JSON:
				type verifyResult struct {
					Drifts []migrate.Drift `json:"drifts"`
				}
				if drifts == nil {
					drifts = []migrate.Drift{}
				}
				if err := writeJSON(t.app.Env.Stdout, verifyResult{Drifts: drifts}); err != nil {
					return err
				}
			case len(drifts) == 0:
				fmt.Fprintln(t.app.Env.Stdout, "every applied migration matches its file")
			default:
				for _, d := range drifts {
					fmt.Fprintln(t.app.Env.Stdout, d.String())
				}
			}
			if len(drifts) > 0 {
				return exitcode.Checkf("%d applied %s changed since they were applied", len(drifts), plural(len(drifts), "migration", "migrations"))
			}
			return nil
		},
	}, "ps-migrate verify", "ps-migrate verify --rollback")
}

func (t *tool) newCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate new")
	return t.app.Examples(&ffcli.Command{
		Name:       "new",
		ShortUsage: "ps-migrate new NAME",
		ShortHelp:  "create the next NNNN_NAME.sql and NNNN_NAME.rollback.sql",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("new takes one NAME, e.g. ps-migrate new add_users")
			}
			created, err := migrate.Create(t.app.Path(t.app.Globals.MigrationsPath), args[0])
			if err != nil {
				return err
			}
			for _, p := range created {
				rel, rerr := filepath.Rel(t.app.Env.Dir, p)
				if rerr != nil {
					rel = p
				}
				fmt.Fprintln(t.app.Env.Stdout, rel)
			}
			return nil
		},
	}, "ps-migrate new add_users_email_index")
}

func (t *tool) createSchemaCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate create-schema")
	t.ledgerFlags(fs)
	return &ffcli.Command{
		Name:       "create-schema",
		ShortUsage: "ps-migrate create-schema",
		ShortHelp:  "create the ledger schema and table if missing (up does it on first use)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withConn(ctx, args, func(conn *pgx.Conn) error {
				m, err := migrate.New(conn, nil, migrate.WithSchema(t.schema), migrate.WithTable(t.table), migrate.WithLockTimeout(t.lockTimeout))
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				if err := m.CreateSchema(ctx); err != nil {
					return err
				}
				fmt.Fprintf(t.app.Env.Stdout, "ledger %s ready\n", pgx.Identifier{t.schema, t.table}.Sanitize())
				return nil
			})
		},
	}
}

func (t *tool) waitCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate wait")
	t.connFlags(fs)
	timeout := 60 * time.Second
	fs.DurationVar(&timeout, "timeout", timeout, "give up after this long (exit 4)")
	return t.app.Examples(&ffcli.Command{
		Name:       "wait",
		ShortUsage: "ps-migrate wait [--timeout 60s]",
		ShortHelp:  "wait until the database accepts connections",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			u, err := t.databaseURL()
			if err != nil {
				return err
			}
			cfg, err := t.connConfig("database URL", u)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			label := "waiting for " + describe(cfg)
			t.app.Progress.Start(label)
			start := time.Now()
			last, err := migrate.WaitReady(ctx, cfg)
			if err != nil {
				t.app.Progress.Done(label, err)
				if errors.Is(err, context.DeadlineExceeded) {
					return exitcode.With(exitcode.Timeout, fmt.Errorf("%s did not accept connections within %s: %v", describe(cfg), timeout, last))
				}
				return err
			}
			t.app.Progress.Done(label, nil)
			fmt.Fprintf(t.app.Env.Stdout, "%s is ready (%s)\n", describe(cfg), time.Since(start).Round(time.Millisecond))
			return nil
		},
	}, "ps-migrate wait --timeout 2m")
}

func (t *tool) testConnectionCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate test-connection")
	t.connFlags(fs)
	return &ffcli.Command{
		Name:       "test-connection",
		ShortUsage: "ps-migrate test-connection",
		ShortHelp:  "connect once and show the server, user and database",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withConn(ctx, args, func(conn *pgx.Conn) error {
				var version, user, db string
				if err := conn.QueryRow(ctx, "select current_setting('server_version'), current_user, current_database()").Scan(&version, &user, &db); err != nil {
					return err
				}
				if t.app.Globals.JSON {
					return writeJSON(t.app.Env.Stdout, map[string]string{"server_version": version, "user": user, "database": db})
				}
				fmt.Fprintf(t.app.Env.Stdout, "connected: PostgreSQL %s, user %s, database %s\n", version, user, db)
				return nil
			})
		},
	}
}

func (t *tool) showSchemaCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate show-schema")
	t.connFlags(fs)
	var schema string
	fs.StringVar(&schema, "schema", migrate.DefaultSchema, "ledger schema, left out of the listing")
	return t.app.Examples(&ffcli.Command{
		Name:       "show-schema",
		ShortUsage: "ps-migrate show-schema [--json]",
		ShortHelp:  "list the application schemas: tables, columns, indexes, constraints, views, functions",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withConn(ctx, args, func(conn *pgx.Conn) error {
				s, err := pgschema.Snapshot(ctx, conn, pgschema.Options{Exclude: []string{schema}})
				if err != nil {
					return err
				}
				if t.app.Globals.JSON {
					return writeJSON(t.app.Env.Stdout, s)
				}
				return s.WriteText(t.app.Env.Stdout)
			})
		},
	}, "ps-migrate show-schema", "ps-migrate show-schema --json | jq '.tables[].name'")
}

func (t *tool) dumpSchemaCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate dump-schema")
	t.connFlags(fs)
	var out string
	fs.StringVar(&out, "o", "", "write to `FILE` (atomically) instead of standard output")
	fs.StringVar(&out, "output", "", "same as -o")
	return t.app.Examples(&ffcli.Command{
		Name:       "dump-schema",
		ShortUsage: "ps-migrate dump-schema [-o FILE]",
		ShortHelp:  "pg_dump --schema-only, stripped of what varies between runs, for diffs in review",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			u, err := t.databaseURL()
			if err != nil {
				return err
			}
			// pg_dump gets the URL as it is, but only once pgx accepts it.
			if _, err := t.connConfig("database URL", u); err != nil {
				return err
			}
			if out == "" {
				return pgschema.DumpSchema(ctx, u, t.app.Env.Stdout, pgschema.WithEnviron(t.app.Env.Environ))
			}
			return atomicfile.Write(t.app.Path(out), atomicfile.Public, func(f *os.File) error { return pgschema.DumpSchema(ctx, u, f, pgschema.WithEnviron(t.app.Env.Environ)) })
		},
	}, "ps-migrate dump-schema -o schema.sql && git diff --exit-code schema.sql")
}

func (t *tool) backupCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate backup")
	t.connFlags(fs)
	var out string
	fs.StringVar(&out, "o", "", "backup `FILE` (default: <database>-<UTC time>.dump)")
	fs.StringVar(&out, "output", "", "same as -o")
	return t.app.Examples(&ffcli.Command{
		Name:       "backup",
		ShortUsage: "ps-migrate backup [-o FILE]",
		ShortHelp:  "pg_dump --format=custom of the whole database; restore with pg_restore",
		LongHelp: `backup writes a pg_dump custom-format archive of the whole database (schema
and data), mode 0600 even over an existing file. Restore it into an empty database with
  pg_restore --no-owner --dbname "$DATABASE_URL" FILE
or over an existing one (dropping what the archive holds first) with
  pg_restore --clean --if-exists --no-owner --dbname "$DATABASE_URL" FILE`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			u, err := t.databaseURL()
			if err != nil {
				return err
			}
			cfg, err := t.connConfig("database URL", u)
			if err != nil {
				return err
			}
			if out == "" {
				out = fmt.Sprintf("%s-%s.dump", cfg.Database, time.Now().UTC().Format("20060102T150405Z"))
			}
			label := "backup of " + cfg.Database
			t.app.Progress.Start(label)
			err = pgschema.Backup(ctx, u, t.app.Path(out), pgschema.WithEnviron(t.app.Env.Environ))
			t.app.Progress.Done(label, err)
			if err != nil {
				return err
			}
			fmt.Fprintf(t.app.Env.Stdout, "%s\nrestore: pg_restore --no-owner --dbname \"$DATABASE_URL\" %s\n", out, out)
			return nil
		},
	}, "ps-migrate backup -o before-release.dump")
}

// label names a migration as its file does ("0007_add_index"), or as
// version_name when the file is gone.
func label(version int64, name string, m *migrate.Migration) string {
	if m != nil {
		return strings.TrimSuffix(filepath.Base(m.Up.File), ".sql")
	}
	return fmt.Sprintf("%d_%s", version, name)
}

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

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func errString(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
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

// verifyRollback runs migrate.VerifyRollback in scratch, a database given
// by --scratch-url or created for the run next to the target and dropped
// afterwards.
func (t *tool) verifyRollback(ctx context.Context, scratchURL string) (err error) {
	migs, err := t.source()
	if err != nil {
		return err
	}
	if scratchURL == "" {
		u, err := t.databaseURL()
		if err != nil {
			return err
		}
		admin, err := t.connect(ctx)
		if err != nil {
			return err
		}
		defer admin.Close(context.WithoutCancel(ctx))
		name, drop, err := migrate.CreateScratchDatabase(ctx, admin)
		if err != nil {
			return fmt.Errorf("%w (give an empty database with --scratch-url)", err)
		}
		defer func() {
			if derr := drop(context.WithoutCancel(ctx)); derr != nil && err == nil {
				err = derr
			}
		}()
		if scratchURL, err = replaceDatabase(u, name); err != nil {
			return err
		}
	}
	cfg, err := t.connConfig("scratch URL", scratchURL)
	if err != nil {
		return err
	}
	scratch, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("connect to the scratch database %s: %w", describe(cfg), err)
	}
	defer scratch.Close(context.WithoutCancel(ctx))
	problems, err := migrate.VerifyRollback(ctx, scratch, migs,
		migrate.WithSchema(t.schema), migrate.WithTable(t.table),
		migrate.WithStatementLockTimeout(t.sqlLockTimout), migrate.WithProgress(t.app.Report))
	if err != nil {
		return err
	}
	if t.app.Globals.JSON {
		type row struct {
			Version int64    `json:"version"`
			Name    string   `json:"name"`
			Stage   string   `json:"stage"`
			Diffs   []string `json:"differences"`
		}
		rows := []row{}
		for _, p := range problems {
			rows = append(rows, row{p.Version, p.Name, p.Stage, p.Diffs})
		}
		if err := writeJSON(t.app.Env.Stdout, map[string]any{"checked": len(migs), "problems": rows}); err != nil {
			return err
		}
	} else {
		for _, p := range problems {
			fmt.Fprintln(t.app.Env.Stdout, p.String())
		}
	}
	if len(problems) > 0 {
		return exitcode.Checkf("%d of %d migrations do not roll back cleanly", len(problems), len(migs))
	}
	if !t.app.Globals.JSON {
		fmt.Fprintf(t.app.Env.Stdout, "%d migrations applied, rolled back and applied again: every rollback restores the schema\n", len(migs))
	}
	return nil
}

// replaceDatabase returns the URL u with its database (the path) set to
// db. Anything but a postgres:// URL is an error: returning u unchanged
// would run the check in the real database.
func replaceDatabase(u, db string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		return "", exitcode.Usagef("verify --rollback needs a postgres:// URL to derive a scratch database from; give --scratch-url")
	}
	parsed.Path = "/" + db
	parsed.RawPath = ""
	return parsed.String(), nil
}
