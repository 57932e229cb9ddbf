// Package ephemeral starts throwaway PostgreSQL servers for CI jobs and tests, with one of two
// providers behind one API: native (the host's initdb and postgres, through pkg/pgnative) and
// container (an official-compatible postgres image on podman or docker, through pkg/engine). A server may be migrated
// (pkg/migrate) before Start returns, and may outlive the process that started it (Detach), in
// which case it is recorded in a state directory so that List, Load and Stop find it later.
package ephemeral

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgnative"
	"github.com/poststack/poststack/pkg/progress"
)

// Provider names.
const (
	Native    = "native"
	Container = "container"
)

// DefaultImage is the container provider's image when Options.Image is empty: the one
// `ps-build postgres` builds.
const DefaultImage = "poststack/postgres:latest"

// cleanupTimeout bounds the removal of a half-started server after Start failed or was
// cancelled: the caller's context is gone by then, but the cleanup must still run.
const cleanupTimeout = 30 * time.Second

// Options configure Start.
type Options struct {
	Provider string   // "" = native when the host's PostgreSQL binaries exist, else container
	Image    string   // container provider; default DefaultImage
	Engine   string   // container provider: "podman" or "docker"; "" = POSTSTACK_CONTAINER_RUNTIME, else the engine DOCKER_HOST points at, else the installed one (podman first)
	Port     int      // 0 = a free port
	Migrate  string   // directory of migrations to apply (pkg/migrate) before returning; "" = none
	Detach   bool     // keep running after this process exits (the CLI's up); false = tied to the process (tests)
	StateDir string   // where detached instances are recorded; "" = DefaultStateDir of Environ
	Environ  []string // environment (DOCKER_HOST for the container provider, PATH, …); required: pass os.Environ() for the process's
	// Progress receives the progress of Start: the server's start as the step "start native
	// server" or "start container server" (Op "ephemeral"), with pkg/pgnative's events inside
	// it, and each migration and any wait for the migration lock as pkg/migrate reports them
	// (Op "migrate"). Calls are serialised; nil = silent.
	Progress progress.Func

	// pickPort offers the container provider a free port; nil = freePort. Tests use it to
	// offer a port a planted forwarding rule misroutes.
	pickPort func() (int, error)
}

// Instance is a started server. The JSON form is what the state directory holds for a detached
// instance and what `ps-env ephemeral up --json` prints.
type Instance struct {
	ID       string    `json:"id"`
	Provider string    `json:"provider"`
	URL      string    `json:"url"` // superuser URL with its password, sslmode=disable
	Created  time.Time `json:"created"`
	Port     int       `json:"port"`
	Detached bool      `json:"detached"`
	// Migrations is the number of migrations applied by Start.
	Migrations int `json:"migrations,omitempty"`
	// MigratedFromCache is set when the native provider copied a cached data directory that
	// already held these migrations, instead of applying them.
	MigratedFromCache bool `json:"migrated_from_cache,omitempty"`

	// Native provider: the server's private directory and its postmaster.
	Dir string `json:"dir,omitempty"`
	PID int    `json:"pid,omitempty"`

	// Container provider: the container and the engine that runs it. DockerHost is "" when
	// the engine's default socket was used.
	Container   string `json:"container,omitempty"`
	ContainerID string `json:"container_id,omitempty"`
	Image       string `json:"image,omitempty"`
	Engine      string `json:"engine,omitempty"`
	DockerHost  string `json:"docker_host,omitempty"`

	srv *pgnative.Server // native, started by this process
	// password is the superuser's, known before the URL is (Start of the container provider);
	// a recorded instance has it in its URL only.
	password string
	// runPending is set while this process's `run` of the container has not returned: a
	// cancelled run may still leave a container behind, which cleanup must wait for.
	runPending bool
	environ    []string
	stateDir   string // where the record lives; "" when not recorded
}

// ErrNotFound means no recorded instance has the ID given to Load.
var ErrNotFound = errors.New("no such ephemeral instance")

// Start starts a server with o's provider, applies o.Migrate's migrations, records a detached
// instance in the state directory, and returns it. Bad options and bad migration files are
// usage errors (exit 2) reported before anything starts. On any failure, including ctx ending
// at any point, Start removes everything it created (process, directory, container, record)
// before returning the error.
func Start(ctx context.Context, o Options) (_ *Instance, err error) {
	env := o.Environ
	if env == nil {
		return nil, exitcode.Usagef("ephemeral: Options.Environ is nil: pass the environment to run in (os.Environ() for the process's, an empty slice for none)")
	}
	getenv := environ.Getenv(env)
	report := progress.NewReporter("ephemeral", o.Progress)
	if o.Port < 0 || o.Port > 65535 {
		return nil, exitcode.Usagef("ephemeral: port %d is not a TCP port (0-65535, 0 = any free one)", o.Port)
	}
	provider, err := resolveProvider(o.Provider, getenv)
	if err != nil {
		return nil, err
	}
	var stateDir string
	if o.Detach {
		if stateDir, err = resolveStateDir(o.StateDir, getenv); err != nil {
			return nil, err
		}
	}
	var migs []*migrate.Migration
	if o.Migrate != "" {
		if migs, err = loadMigrations(o.Migrate, getenv); err != nil {
			return nil, err
		}
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	inst := &Instance{
		ID:       id,
		Provider: provider,
		Created:  time.Now().UTC(), // full precision: List orders by it, and starts take well under a second
		Detached: o.Detach,
		environ:  env,
	}
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if serr := inst.stop(cctx); serr != nil {
			err = errors.Join(err, fmt.Errorf("ephemeral: clean up %s: %w", inst.ID, serr))
		}
	}()
	end := report.Step("start " + provider + " server")
	switch provider {
	case Native:
		err = startNative(ctx, inst, o, migs, getenv, report)
	case Container:
		err = startContainer(ctx, inst, o, env, report)
	}
	end(err, "id", inst.ID, "port", inst.Port)
	if err != nil {
		return nil, err
	}
	// The native provider applied the set itself, or copied a data directory migrated with
	// exactly this set (its cache key holds every file's checksum): a no-op `up` to verify
	// the ledger would only cost a login and a query.
	if len(migs) > 0 && provider != Native {
		mbegan := time.Now()
		n, err := applyMigrations(ctx, inst.URL, migs, report.Func())
		if err != nil {
			return nil, err
		}
		inst.Migrations += n
		report.Info(fmt.Sprintf("applied %d migrations from %s", inst.Migrations, o.Migrate), time.Since(mbegan))
	}
	if o.Detach {
		if err := inst.save(stateDir); err != nil {
			return nil, err
		}
	}
	// A signal that arrived during the last step must not leave a server the caller will
	// never hear of.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("ephemeral: start: %w", err)
	}
	return inst, nil
}

// Stop stops the server and removes everything of it: process and directory, or container and
// its volumes, and its record. It works on an instance from Start in this process and on one
// from List or Load (a detached server started by another process). Stopping an instance that
// is already gone is not an error.
func Stop(ctx context.Context, inst *Instance) error {
	if inst == nil {
		return errors.New("ephemeral: Stop: nil instance")
	}
	return inst.stop(ctx)
}

func (inst *Instance) stop(ctx context.Context) error {
	var errs []error
	switch inst.Provider {
	case Native:
		errs = append(errs, stopNative(ctx, inst))
	case Container:
		errs = append(errs, stopContainer(ctx, inst))
	default:
		errs = append(errs, fmt.Errorf("ephemeral: instance %s: unknown provider %q", inst.ID, inst.Provider))
	}
	if inst.stateDir != "" {
		errs = append(errs, removeRecord(inst.stateDir, inst.ID))
	}
	return errors.Join(errs...)
}

// resolveProvider picks native when the host has the server binaries, which starts in a
// fraction of the time a container takes and needs no engine.
func resolveProvider(p string, getenv func(string) string) (string, error) {
	switch p {
	case Native, Container:
		return p, nil
	case "":
		if _, err := pgnative.BinDir(pgnative.WithGetenv(getenv)); err == nil {
			return Native, nil
		}
		return Container, nil
	}
	return "", exitcode.Usagef("ephemeral: unknown provider %q (want %q or %q)", p, Native, Container)
}

// loadMigrations reads the migration files before any server starts, so that a broken file is
// exit 2 with nothing to clean up.
func loadMigrations(dir string, getenv func(string) string) ([]*migrate.Migration, error) {
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return nil, exitcode.Usagef("ephemeral: migrations directory %s: not found", dir)
	}
	return migrate.LoadDir(dir, migrate.WithDefaultCache(getenv))
}

// applyMigrations applies migs on the server of url, reporting each through fn.
func applyMigrations(ctx context.Context, url string, migs []*migrate.Migration, fn progress.Func) (int, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, fmt.Errorf("ephemeral: connect to apply migrations: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.New(conn, migs, migrate.WithProgress(fn))
	if err != nil {
		return 0, err
	}
	res, err := m.Up(ctx, 0)
	if err != nil {
		return len(res), fmt.Errorf("ephemeral: migrate: %w", err)
	}
	return len(res), nil
}

// newID is short enough to type after `ps-env ephemeral down`, random enough never to collide
// among the instances of one machine.
func newID() (string, error) {
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ephemeral: random id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// randomPassword is 128 bits in hex: nothing to escape in URLs or environment variables.
func randomPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("ephemeral: random password: %w", err)
	}
	return hex.EncodeToString(b), nil
}
