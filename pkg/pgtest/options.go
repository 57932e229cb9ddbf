package pgtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/progress"
)

// Environment variables pgtest reads (through the getenv of WithGetenv, os.Getenv by default).
const (
	// DatabaseURLEnv names the superuser URL of a server to use instead of starting one; test
	// binaries that share it share templates too (the advisory lock keeps them from racing).
	DatabaseURLEnv = "POSTSTACK_TEST_DATABASE_URL"
	// KeepFailedEnv set to "1" keeps the database of a failed test and logs its name.
	KeepFailedEnv = "POSTSTACK_KEEP_FAILED"
)

// DefaultPoolSize is how many clones a template keeps ready: enough to hide the clone time from
// a few parallel tests without filling the server with idle databases.
const DefaultPoolSize = 4

// Option configures New, NewPool, Open, Start and Server.Database. An option rejects a nonsense
// value with an error, which the caller reports before anything touches a server.
type Option func(*config) error

type config struct {
	adminURL string
	provider string
	image    string
	poolSize int
	// migrations come from dir on disk, or from fsys at fsDir; neither means an empty database.
	dir    string
	fsys   fs.FS
	fsDir  string
	schema string
	table  string
	getenv func(string) string
	// environ is what a started server runs in (PATH finds initdb or the engine).
	environ  []string
	progress progress.Func
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		poolSize: DefaultPoolSize,
		schema:   migrate.DefaultSchema,
		table:    migrate.DefaultTable,
		getenv:   os.Getenv,
		environ:  os.Environ(),
	}
	var errs []error
	for _, opt := range opts {
		if opt == nil {
			continue
		}
		if err := opt(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	return c, nil
}

// WithMigrations applies the migrations of dir (pkg/migrate's file layout) to the template the
// databases are cloned from. The default is no migrations: an empty database.
func WithMigrations(dir string) Option {
	return func(c *config) error {
		if dir == "" {
			return errors.New("WithMigrations: empty directory")
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("WithMigrations %q: %w", dir, err)
		}
		c.dir, c.fsys, c.fsDir = abs, nil, ""
		return nil
	}
}

// WithMigrationsFS is WithMigrations for migrations in dir of fsys, such as an embed.FS.
func WithMigrationsFS(fsys fs.FS, dir string) Option {
	return func(c *config) error {
		if fsys == nil {
			return errors.New("WithMigrationsFS: nil file system")
		}
		if dir == "" {
			dir = "."
		}
		c.dir, c.fsys, c.fsDir = "", fsys, dir
		return nil
	}
}

// WithLedger names the schema and table of the migration ledger (migrate.WithSchema,
// migrate.WithTable), for projects that configure ps-migrate the same way.
func WithLedger(schema, table string) Option {
	return func(c *config) error {
		if schema == "" || table == "" {
			return fmt.Errorf("WithLedger: empty schema %q or table %q", schema, table)
		}
		c.schema, c.table = schema, table
		return nil
	}
}

// WithURL makes databases on the server of adminURL, which must log in as a role allowed to
// create databases (a superuser). The default is POSTSTACK_TEST_DATABASE_URL when set, else a
// server that pgtest starts once per test binary (see WithProvider).
func WithURL(adminURL string) Option {
	return func(c *config) error {
		if adminURL == "" {
			return errors.New("WithURL: empty URL")
		}
		c.adminURL = adminURL
		return nil
	}
}

// WithProvider chooses how pgtest starts its own server when no URL is given:
// ephemeral.Native (the host's PostgreSQL binaries) or ephemeral.Container (a
// container run through pkg/engine on podman or docker). The default is native when the
// binaries exist, else container.
func WithProvider(name string) Option {
	return func(c *config) error {
		switch name {
		case ephemeral.Native, ephemeral.Container:
			c.provider = name
			return nil
		default:
			return fmt.Errorf("WithProvider: unknown provider %q (want %q or %q)", name, ephemeral.Native, ephemeral.Container)
		}
	}
}

// WithImage names the image of the container provider (default: ephemeral's).
func WithImage(image string) Option {
	return func(c *config) error {
		if image == "" {
			return errors.New("WithImage: empty image")
		}
		c.image = image
		return nil
	}
}

// WithPoolSize is how many clones of a template are kept ready ahead of the tests that ask for
// them (default DefaultPoolSize); 0 creates every database on demand. The first request for a
// migration set fixes its pool size.
func WithPoolSize(n int) Option {
	return func(c *config) error {
		if n < 0 || n > 64 {
			return fmt.Errorf("WithPoolSize: %d is out of range 0-64", n)
		}
		c.poolSize = n
		return nil
	}
}

// WithGetenv replaces os.Getenv for the variables pgtest reads (DatabaseURLEnv, KeepFailedEnv).
func WithGetenv(getenv func(string) string) Option {
	return func(c *config) error {
		if getenv == nil {
			return errors.New("WithGetenv: nil function")
		}
		c.getenv = getenv
		return nil
	}
}

// WithEnviron sets the environment pgtest reads its variables from (as WithGetenv) and starts
// its server in: PATH finds initdb or the container engine, DOCKER_HOST and
// POSTSTACK_CONTAINER_RUNTIME pick the engine. Default os.Environ(); nil is the empty
// environment.
func WithEnviron(env []string) Option {
	return func(c *config) error {
		c.environ = append([]string{}, env...)
		c.getenv = environ.Getenv(c.environ)
		return nil
	}
}

// WithProgress receives the progress of Open and Start: template builds and sweeps (Op
// "pgtest"), and the start of the server (pkg/ephemeral's events). Silent by default; for
// plain lines in a test binary's output:
//
//	pgtest.WithProgress(progress.Lines(log.Printf))
func WithProgress(fn progress.Func) Option {
	return func(c *config) error {
		c.progress = fn
		return nil
	}
}
