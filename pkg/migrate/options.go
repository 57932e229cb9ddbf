package migrate

import (
	"errors"
	"fmt"
	"github.com/poststack/poststack/pkg/progress"
	"strings"
	"time"
)

// Defaults of the options.
const (
	DefaultSchema = "poststack"
	DefaultTable  = "schema_migrations"
	// DefaultLockTimeout bounds the wait for another runner's migration lock. It is generous
	// because the other runner may be applying a long migration; CI jobs that start several
	// deploys at once should wait, not fail.
	DefaultLockTimeout = 15 * time.Minute
	// DefaultStatementLockTimeout is the Postgres lock_timeout each migration runs with, so a
	// migration stuck behind a long transaction fails instead of queueing every query behind
	// its own lock request.
	DefaultStatementLockTimeout = 10 * time.Second
)

// Option configures a Migrator; it returns an error for a nonsense value.
type Option func(*config) error

type config struct {
	schema, table   string
	lockTimeout     time.Duration
	stmtLockTimeout time.Duration
	allowDrift      bool
	allowOutOfOrder bool
	appliedBy       string
	progress        progress.Func
	now             func() time.Time
}

// WithSchema sets the schema of the ledger table (default "poststack").
func WithSchema(name string) Option {
	return func(c *config) error {
		if strings.TrimSpace(name) == "" {
			return errors.New("ledger schema name is empty")
		}
		c.schema = name
		return nil
	}
}

// WithTable sets the name of the ledger table (default "schema_migrations").
func WithTable(name string) Option {
	return func(c *config) error {
		if strings.TrimSpace(name) == "" {
			return errors.New("ledger table name is empty")
		}
		c.table = name
		return nil
	}
}

// WithLockTimeout bounds the wait for the migration lock (default 15 minutes).
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("lock timeout %s must be positive", d)
		}
		c.lockTimeout = d
		return nil
	}
}

// WithStatementLockTimeout sets the Postgres lock_timeout each migration runs with (default
// 10s; 0 waits for locks without limit).
func WithStatementLockTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("statement lock timeout %s must not be negative", d)
		}
		c.stmtLockTimeout = d
		return nil
	}
}

// WithAllowDrift lets Up and Down run although applied files changed; each changed file is
// reported through the progress hook.
func WithAllowDrift(allow bool) Option {
	return func(c *config) error { c.allowDrift = allow; return nil }
}

// WithAllowOutOfOrder lets Up apply pending migrations older than the newest applied one.
func WithAllowOutOfOrder(allow bool) Option {
	return func(c *config) error { c.allowOutOfOrder = allow; return nil }
}

// WithAppliedBy sets the applied_by value of ledger rows (default "user@host" of this process).
func WithAppliedBy(who string) Option {
	return func(c *config) error {
		if who == "" {
			return errors.New("applied-by is empty")
		}
		c.appliedBy = who
		return nil
	}
}

// WithProgress sets a hook that receives progress events: a progress.Event whose Data is
// the migrate.Event. It runs on the caller's goroutine and should return quickly.
func WithProgress(fn progress.Func) Option {
	return func(c *config) error { c.progress = fn; return nil }
}

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		c.now = now
		return nil
	}
}
