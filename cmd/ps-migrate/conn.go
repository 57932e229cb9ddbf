package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/variables"
)

// databaseURL finds the database: --database-url or POSTSTACK_DATABASE_URL,
// else DATABASE_URL, else --env's host-side URL. A URL from the project's
// .env or config file ranks last: a checkout must not be able to point a
// run at another database than the one the user named.
func (t *tool) databaseURL(db dbFlags) (string, error) {
	u := t.app.Globals.DatabaseURL
	if u != "" && !t.app.FromProject("database-url") {
		return u, nil
	}
	if db.env == "" {
		if e := t.app.Env.Getenv("DATABASE_URL"); e != "" {
			return e, nil
		}
		if u != "" {
			return u, nil
		}
		return "", exitcode.Usagef("no database: give --database-url (or POSTSTACK_DATABASE_URL), DATABASE_URL, or --env NAME")
	}
	vars, err := t.app.EnvironmentVariables(db.projectFile, db.env, variables.Options{})
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

// dbConfig is connConfig of the command's database URL.
func (t *tool) dbConfig(db dbFlags) (string, *pgx.ConnConfig, error) {
	u, err := t.databaseURL(db)
	if err != nil {
		return "", nil, err
	}
	cfg, err := t.connConfig("database URL", u)
	return u, cfg, err
}

// connect opens one connection to the command's database.
func (t *tool) connect(ctx context.Context, db dbFlags) (*pgx.Conn, error) {
	_, cfg, err := t.dbConfig(db)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", describe(cfg), err)
	}
	return conn, nil
}

// describe names a database in messages, without its password.
func describe(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// withConn runs f with a connection to the database for a command that
// takes no arguments, and closes it afterwards.
func (t *tool) withConn(ctx context.Context, db dbFlags, args []string, f func(*pgx.Conn) error) error {
	if err := noArgs(args); err != nil {
		return err
	}
	conn, err := t.connect(ctx, db)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(conn)
}

// withMigrator is withConn with the migration files loaded and a Migrator
// built on the connection.
func (t *tool) withMigrator(ctx context.Context, l *ledgerFlags, args []string, f func(*migrate.Migrator) error) error {
	if err := noArgs(args); err != nil {
		return err
	}
	m, conn, err := t.migrator(ctx, l)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(m)
}

// options are the migrate options of the command's flags, with progress
// reported through the app's hook: the one list every Migrator of a run is
// built with (Up, Down, Status, Verify, VerifyRollback's, CreateSchema's).
func (t *tool) options(l *ledgerFlags) []migrate.Option {
	return []migrate.Option{
		migrate.WithSchema(l.schema),
		migrate.WithTable(l.table),
		migrate.WithLockTimeout(l.lockTimeout),
		migrate.WithStatementLockTimeout(l.statementLockTimeout),
		migrate.WithAllowDrift(l.allowDrift),
		migrate.WithProgress(t.app.Report),
	}
}

// withCheckedMigrator is withMigrator for the commands that refuse migration
// files the sum file does not list as they are (up, down): the check runs
// after the files are loaded and before anything connects, skipped with
// noSum (--no-sum).
func (t *tool) withCheckedMigrator(ctx context.Context, l *ledgerFlags, noSum bool, args []string, f func(*migrate.Migrator) error) error {
	if err := noArgs(args); err != nil {
		return err
	}
	migs, err := t.source()
	if err != nil {
		return err
	}
	if err := t.checkSum(migs, noSum); err != nil {
		return err
	}
	m, conn, err := t.migratorOf(ctx, l, migs)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return f(m)
}

// noSumUsage is the help of --no-sum on the commands that check the sum file.
const noSumUsage = "do not check the files against the sum file (" + migrate.SumFile + " in the migrations directory); command line only"

// checkSum checks the loaded migration files against the sum file of the
// migrations directory (none there: nothing to check), unless noSum. The
// error names the sum file as the user would find it from the working
// directory: a *migrate.SumError (exit 3) or, for a sum file that is a
// symbolic link, not a regular file or too large, a *safefile.Error (exit 2).
// up, down and lint call it before they connect.
func (t *tool) checkSum(migs []*migrate.Migration, noSum bool) error {
	if noSum {
		return nil
	}
	return t.sumError(migrate.CheckSum(t.app.Path(t.app.Globals.MigrationsPath), migs))
}

// sumError names the sum file in err, which CheckSum or WriteSum returned
// with the absolute path they were given, as the user wrote the migrations
// directory.
func (t *tool) sumError(err error) error {
	dir := t.app.Globals.MigrationsPath
	shown := filepath.Join(dir, migrate.SumFile)
	var se *migrate.SumError
	var fe *safefile.Error
	switch {
	case errors.As(err, &se):
		se.File = shown
	case errors.As(err, &fe) && fe.Path == filepath.Join(t.app.Path(dir), migrate.SumFile):
		fe.Path = shown
	}
	return err
}

// migrator loads the files, connects and builds the Migrator.
func (t *tool) migrator(ctx context.Context, l *ledgerFlags) (*migrate.Migrator, *pgx.Conn, error) {
	migs, err := t.source()
	if err != nil {
		return nil, nil, err
	}
	return t.migratorOf(ctx, l, migs)
}

// migratorOf connects and builds the Migrator of the loaded files migs.
func (t *tool) migratorOf(ctx context.Context, l *ledgerFlags, migs []*migrate.Migration) (*migrate.Migrator, *pgx.Conn, error) {
	conn, err := t.connect(ctx, l.dbFlags)
	if err != nil {
		return nil, nil, err
	}
	m, err := migrate.New(conn, migs, t.options(l)...)
	if err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, nil, exitcode.With(exitcode.Usage, err)
	}
	return m, conn, nil
}

// source loads the migration files, naming them in messages as the user
// would find them from the working directory.
func (t *tool) source() ([]*migrate.Migration, error) {
	dir := t.app.Globals.MigrationsPath
	abs := t.app.Path(dir)
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, exitcode.Usagef("migrations directory %s: not found (set --migrations-path)", dir)
	}
	migs, err := migrate.LoadDir(abs, migrate.WithDefaultCache(t.app.Env.Getenv), migrate.WithRoot(t.app.Env.Dir))
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
