package main

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/envdb"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/variables"
)

// dbEnv is an environment's database as the db commands see it.
type dbEnv struct {
	Environment string
	Target      envdb.Target
}

// dbTarget resolves ENV (the current environment when "") to its database on the
// environment's own PostgreSQL container: the application's role and database, and the
// container's superuser, whose password is kept in .poststack/.
func dbTarget(app *cli.App, env string) (*dbEnv, error) {
	p, err := loadProject(app)
	if err != nil {
		return nil, err
	}
	e, err := p.File.Environment(env)
	if err != nil {
		return nil, err
	}
	if e.Postgres.External() {
		return nil, exitcode.Usagef("environment %s: db reset needs the environment's own PostgreSQL container; for an external database use ps-migrate", e.Name)
	}
	vars, err := app.EnvironmentVariables(config.FileName, e.Name, variables.Options{})
	if err != nil {
		return nil, err
	}
	host, err := url.Parse(vars.Get("POSTSTACK_HOST_DATABASE_URL"))
	if err != nil {
		return nil, exitcode.Usagef("environment %s: database URL: %v", e.Name, err)
	}
	adminPW, err := secret.AdminPassword(p.File.Dir, p.File.Project.Name, e.Name)
	if err != nil {
		return nil, err
	}
	app.AddSecret(adminPW)
	admin := url.URL{Scheme: "postgres", User: url.UserPassword(pgenv.AdminUser, adminPW), Host: host.Host, Path: "/postgres", RawQuery: "sslmode=disable"}
	d := &dbEnv{
		Environment: e.Name,
		Target: envdb.Target{
			AdminURL: admin.String(), Database: vars.Get("DB_NAME"), Owner: vars.Get("DB_USER"), OwnerPassword: vars.Get("DB_PASSWORD"),
			SeedRoot: p.File.Dir, AppliedBy: "ps-env db reset",
		},
	}
	for _, sf := range e.Seed {
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
