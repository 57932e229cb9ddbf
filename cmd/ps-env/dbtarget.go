package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/envdb"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

// dbEnv is an environment's database as the db commands see it.
type dbEnv struct {
	Environment string
	Target      envdb.Target
}

// dbTarget resolves ENV (the current environment when "") to its database on the
// environment's own PostgreSQL container: the application's role and database, and the
// container's superuser, whose password is kept in .poststack/.
func dbTarget(ctx context.Context, app *cli.App, name string) (*dbEnv, error) {
	env, err := resolveEnv(ctx, app, name)
	if err != nil {
		return nil, err
	}
	if env.External() {
		return nil, exitcode.Usagef("environment %s: db reset needs the environment's own PostgreSQL container; for an external database use ps-migrate", env.Name())
	}
	vars := env.Vars
	d := &dbEnv{
		Environment: env.Name(),
		Target: envdb.Target{
			AdminURL: env.Postgres.AdminURL(), Database: vars.Get("DB_NAME"), Owner: vars.Get("DB_USER"), OwnerPassword: vars.Get("DB_PASSWORD"),
			SeedRoot: env.Dir, AppliedBy: "ps-env db reset",
		},
	}
	for _, sf := range env.Env.Seed {
		d.Target.Seeds = append(d.Target.Seeds, sf.File)
	}
	return d, nil
}

// loadMigrations loads the migrations of --migrations-path, named as the user wrote the
// directory, as ps-migrate does.
func (d *dbEnv) loadMigrations(app *cli.App) error {
	dir := app.Globals.MigrationsPath
	abs := app.Path(dir)
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return exitcode.Usagef("migrations directory %s: not found (set --migrations-path)", dir)
	}
	migs, err := migrate.LoadDir(abs, migrate.WithDefaultCache(app.Env.Getenv), migrate.WithRoot(app.Env.Dir))
	if err != nil {
		return err
	}
	for _, m := range migs {
		m.Up.File = dbRel(abs, dir, m.Up.File)
		if m.Down != nil {
			m.Down.File = dbRel(abs, dir, m.Down.File)
		}
	}
	d.Target.Migrations = migs
	return nil
}

func dbRel(abs, dir, file string) string {
	if rest, ok := strings.CutPrefix(file, abs+string(filepath.Separator)); ok {
		return filepath.Join(dir, rest)
	}
	return file
}
