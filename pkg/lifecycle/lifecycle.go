// Package lifecycle brings a project's environment up and down: its PostgreSQL (pgenv), its
// migrations (migrate), its init entries run to success and its deployment kept running
// (deploy), and reports what runs (Status). It holds the order of those phases and what makes
// a second `up` a no-op; each phase's work is in its own package.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/variables"
)

// Phases of Up, in order; Options.Only picks one.
const (
	PhaseDB      = "db"
	PhaseMigrate = "migrate"
	PhaseInit    = "init"
	PhaseDeploy  = "deploy"
)

// Phases lists the phases in the order Up runs them.
func Phases() []string { return []string{PhaseDB, PhaseMigrate, PhaseInit, PhaseDeploy} }

// DefaultWaitTimeout is how long Up waits for deployed containers to run and be healthy.
const DefaultWaitTimeout = 120 * time.Second

// Environment is one environment of a project, resolved: its configuration, its variables
// (passwords and the port included), the PostgreSQL container's spec and the engine.
type Environment struct {
	Project *config.File
	Env     *config.Environment
	Vars    *variables.Set
	// Dir is the project's root.
	Dir string
	// Postgres is the database container's spec; unused when the database is external.
	Postgres pgenv.Spec
	// MigrationsDir is the directory of migrations; "" or a missing directory migrates nothing.
	MigrationsDir string
	// LogDir is where container logs are kept (<LogDir>/containers/); "" keeps none.
	LogDir string
	// Engine runs the containers; nil when none was found (EngineErr says why) or none is
	// needed (an external database without containers).
	Engine    *engine.Engine
	EngineErr error
	// Deployer returns the deployer for a kind of file (podman pods, compose files); nil
	// without an engine.
	Deployer func(kind config.StepKind) (deploy.Deployer, error)
}

// deployer returns the deployer of kind, or why there is none.
func (e *Environment) deployer(kind config.StepKind) (deploy.Deployer, error) {
	if e.Deployer == nil {
		return nil, e.noEngine()
	}
	return e.Deployer(kind)
}

func (e *Environment) noEngine() error {
	if e.EngineErr != nil {
		return e.EngineErr
	}
	return exitcode.Usagef("no container engine: install podman or docker, or set postgres.url: for an external database")
}

// Name is the environment's name; Project the project's.
func (e *Environment) Name() string { return e.Env.Name }

// ProjectName is the project's name.
func (e *Environment) ProjectName() string { return e.Project.Project.Name }

// External reports whether the environment's database is an external one (postgres.url:).
func (e *Environment) External() bool { return e.Env.Postgres.External() }

// HostURL is the application's database URL from the host; it carries the password.
func (e *Environment) HostURL() string { return e.Vars.Get("POSTSTACK_HOST_DATABASE_URL") }

// Options tune Up.
type Options struct {
	// Only runs one phase (PhaseDB … PhaseDeploy); "" runs them all.
	Only string
	// NoMigrate skips the migrate phase.
	NoMigrate bool
	// WaitTimeout bounds the wait for deployed containers; 0 is DefaultWaitTimeout.
	WaitTimeout time.Duration
	// Progress receives the phases as steps.
	Progress progress.Func
	// Mask hides secrets in container logs written under LogDir; nil writes them as they are.
	Mask func(string) string
	// Migrate are options for the migrate phase (ledger, lock timeout); progress is added.
	Migrate []migrate.Option
}

func (o Options) runs(phase string) bool {
	if o.Only != "" {
		return o.Only == phase
	}
	return !(phase == PhaseMigrate && o.NoMigrate)
}

// CheckOnly validates an Options.Only value (exit 2).
func CheckOnly(only string) error {
	if only == "" {
		return nil
	}
	for _, p := range Phases() {
		if p == only {
			return nil
		}
	}
	return exitcode.Usagef("--only %q: want one of db, migrate, init, deploy", only)
}

// step brackets one phase or part of it with progress events.
func step(fn progress.Func, name string, f func() error) error {
	start := time.Now()
	fn.Emit(progress.Event{Op: "env", Kind: progress.Start, Step: name})
	err := f()
	if err != nil {
		fn.Emit(progress.Event{Op: "env", Kind: progress.Failed, Step: name, Elapsed: time.Since(start), Err: err})
		return err
	}
	fn.Emit(progress.Event{Op: "env", Kind: progress.Done, Step: name, Elapsed: time.Since(start)})
	return nil
}

// interrupted reports whether err comes from the run being cancelled.
func interrupted(ctx context.Context, err error) bool {
	return ctx.Err() != nil || errors.Is(err, context.Canceled)
}

func wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
