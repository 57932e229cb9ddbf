package main

import (
	"context"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/lifecycle"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/variables"
)

// resolveEnv loads environment name ("" = the current one) of ./.poststack.yml with its
// variables, passwords and port, and the container engine when one is needed (a database
// container, or containers to run). Its secrets are registered for masking.
func resolveEnv(ctx context.Context, app *cli.App, name string) (*lifecycle.Environment, error) {
	p, e, vars, err := app.Environment(config.FileName, name, variables.Options{})
	if err != nil {
		return nil, err
	}
	f := p.File
	g := app.Globals
	env := &lifecycle.Environment{
		Project: f, Env: e, Vars: vars, Dir: f.Dir,
		MigrationsDir: app.Path(g.MigrationsPath),
	}
	if g.LogDir != "" {
		env.LogDir = app.Path(g.LogDir)
	}
	project := f.Project.Name
	base := project + "-" + e.Name
	pg := e.Postgres
	env.Postgres = pgenv.Spec{
		Project: project, Environment: e.Name, Image: pg.Image, Bind: pg.Bind, Port: pg.Port,
		Database: pg.Database, User: pg.User, Password: vars.Get("DB_PASSWORD"),
		Container: base + "-postgres", Network: base, Volume: base + "-pgdata",
	}
	if g.PostgresContainerName != "" && len(f.Environments) == 1 {
		env.Postgres.Container = g.PostgresContainerName
	}
	if !pg.External() {
		if pg.PortAuto {
			if env.Postgres.Port, err = app.AutoPort(f, e)(project, e.Name); err != nil {
				return nil, err
			}
		}
		if env.Postgres.AdminPassword, err = secret.AdminPassword(f.Dir, project, e.Name); err != nil {
			return nil, err
		}
		app.AddSecret(env.Postgres.AdminPassword)
	}
	if !pg.External() || len(e.Init) > 0 || e.Deployment != nil {
		// Commands that need no engine (db reset on a reachable server, status of an external
		// database) still work without one; those that do report why there is none.
		if eng, err := engine.Detect(g.ContainerRuntime, engine.WithEnviron(app.Env.Environ)); err != nil {
			env.EngineErr = err
		} else {
			env.Engine = eng
			env.Deployer = deployers(ctx, app, eng)
		}
	}
	return env, nil
}
