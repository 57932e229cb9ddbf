// Package migrate applies and rolls back versioned SQL migrations on PostgreSQL.
//
// Migrations come from Load (files "<version>_<name>.sql" and "<version>_<name>.rollback.sql");
// a Migrator applies them over one *pgx.Conn and records each in a ledger table
// (poststack.schema_migrations by default).
//
// The guarantees:
//   - A transactional migration and its ledger row commit in one transaction or not at all.
//     The whole file, the ledger row and the COMMIT go to the server as one multi-statement
//     query (one round trip); the ledger row is inserted before the file's SQL, so whatever
//     the file does, a COMMIT can never persist its effects without the row.
//   - Runs that change something hold a session advisory lock, polled with
//     pg_try_advisory_lock up to the lock timeout (a blocking pg_advisory_lock would hold a
//     snapshot and stall a concurrent CREATE INDEX CONCURRENTLY). A run with nothing to do
//     reads the ledger without the lock and returns.
//   - Applied files are checksummed; a changed file stops Up and Down (DriftError) unless
//     WithAllowDrift.
//   - A failing statement is reported at its file:line:col (MigrationError), and the run stops
//     with the earlier migrations applied.
//   - Cancelling the context sends the server a cancel request, so the running migration rolls
//     back on a connection that stays usable, and the lock is released.
//
// Migrations marked "-- poststack:no-transaction" run statement by statement outside a
// transaction and are recorded after their last statement succeeds; when one fails, the
// statements before it stay in effect (that is what running outside a transaction means).
//
// The sum file (SumFile, "poststack.sum" in the migrations directory) lists every migration
// and rollback file in version order with its checksum, under a first line that hashes the
// rest: "sum1 sha256:<hex>", then "<file name> sha256:<hex>" a line. WriteSum writes it;
// CheckSum refuses (SumError, exit code 3) files that do not match it, so that two branches
// each adding a migration conflict in git on its first and last lines. See sum.go.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/progress"
)

// Direction tells whether a result applied or rolled back a migration.
type Direction string

// Directions.
const (
	DirectionUp   Direction = "up"
	DirectionDown Direction = "down"
)

// EventKind names a progress event.
type EventKind string

// Progress events, in the order a run produces them.
const (
	// EventLockWait: the lock is held by another session; waiting (sent once per wait).
	EventLockWait EventKind = "lock-wait"
	// EventLockAcquired: the lock is held by this run (Duration is the wait).
	EventLockAcquired EventKind = "lock-acquired"
	// EventStart: a migration (or rollback) starts.
	EventStart EventKind = "start"
	// EventDone: it finished (Duration is how long it ran).
	EventDone EventKind = "done"
	// EventFailed: it failed (Err says why).
	EventFailed EventKind = "failed"
	// EventMissingFile: an applied version has no file any more (a warning; not drift).
	EventMissingFile EventKind = "missing-file"
	// EventDriftAllowed: an applied file changed and WithAllowDrift let the run go on.
	EventDriftAllowed EventKind = "drift-allowed"
)

// Event reports progress to the hook given with WithProgress.
type Event struct {
	Kind      EventKind
	Direction Direction
	Version   int64
	Name      string
	// Migration is nil for lock events and for missing files.
	Migration *Migration
	Duration  time.Duration
	Err       error
}

// Result is one migration applied or rolled back.
type Result struct {
	Version   int64
	Name      string
	File      string
	Direction Direction
	Duration  time.Duration
	// Migration is nil when a rollback ran from the ledger's copy of a deleted file.
	Migration *Migration
	// Err is set on the Failed result of a PartialError.
	Err error
}

// Status is the state of one version.
type Status string

// States of a version.
const (
	StatusApplied     Status = "applied"
	StatusPending     Status = "pending"
	StatusChanged     Status = "changed"      // applied, and the file changed since
	StatusMissingFile Status = "missing-file" // applied, and the file is gone
)

// State is one row of Status: a version known from the files, the ledger or both. It has no
// JSON form of its own: ps-migrate status --json renders it (durations as duration_ms).
type State struct {
	Version     int64
	Name        string
	Status      Status
	File        string
	Description string
	// Applied* and Duration are zero for pending migrations.
	AppliedAt time.Time
	Duration  time.Duration
	AppliedBy string
	// Migration is nil for missing files.
	Migration *Migration
}

// Migrator applies migrations over one connection. It is not safe for concurrent use; run
// several Migrators on several connections instead (the advisory lock serialises them).
type Migrator struct {
	conn      *pgx.Conn
	migs      []*Migration
	byVersion map[int64]*Migration
	cfg       config
	ledger    string // quoted schema.table
}

// New returns a Migrator for migrations (as Load returns them: sorted, unique versions).
func New(conn *pgx.Conn, migrations []*Migration, opts ...Option) (*Migrator, error) {
	if conn == nil {
		return nil, errors.New("migrate: nil connection")
	}
	cfg := config{
		schema:          DefaultSchema,
		table:           DefaultTable,
		lockTimeout:     DefaultLockTimeout,
		stmtLockTimeout: DefaultStatementLockTimeout,
		now:             time.Now,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("migrate: %w", err))
		}
	}
	if cfg.appliedBy == "" {
		cfg.appliedBy = defaultAppliedBy()
	}
	byVersion := make(map[int64]*Migration, len(migrations))
	for i, m := range migrations {
		if m == nil || m.Version <= 0 {
			return nil, fmt.Errorf("migrate: migration %d has no valid version", i)
		}
		if i > 0 && migrations[i-1].Version >= m.Version {
			return nil, fmt.Errorf("migrate: migrations must be sorted by unique version (%d after %d)", m.Version, migrations[i-1].Version)
		}
		byVersion[m.Version] = m
	}
	return &Migrator{
		conn:      conn,
		migs:      migrations,
		byVersion: byVersion,
		cfg:       cfg,
		ledger:    pgx.Identifier{cfg.schema, cfg.table}.Sanitize(),
	}, nil
}

func defaultAppliedBy() string {
	name := "unknown"
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		name += "@" + h
	}
	return name
}

// emit sends e to the progress hook in the common shape, e itself as its Data.
func (m *Migrator) emit(e Event) {
	if m.cfg.progress != nil {
		m.cfg.progress(e.Progress())
	}
}

// Label names a migration as its file does ("0007_add_index"), or as version_name when
// the file is gone (m is nil).
func Label(version int64, name string, m *Migration) string {
	if m != nil {
		return strings.TrimSuffix(filepath.Base(m.Up.File), ".sql")
	}
	return fmt.Sprintf("%d_%s", version, name)
}

// Label is the Label of the event's migration; "" for lock events.
func (e Event) Label() string {
	if e.Migration == nil && e.Version == 0 && e.Name == "" {
		return ""
	}
	return Label(e.Version, e.Name, e.Migration)
}

// Progress is e in the common shape of pkg/progress.
func (e Event) Progress() progress.Event {
	p := progress.Event{Op: "migrate", Elapsed: e.Duration, Err: e.Err, Data: e}
	if e.Version != 0 {
		p.Attrs = []slog.Attr{slog.Int64("version", e.Version), slog.String("name", e.Name)}
	}
	switch e.Kind {
	case EventLockWait:
		p.Kind, p.Message = progress.Wait, "waiting for another run's migration lock"
	case EventLockAcquired:
		p.Kind, p.Message = progress.Info, "migration lock acquired"
	case EventStart:
		p.Kind, p.Step = progress.Start, string(e.Direction)+" "+e.Label()
	case EventDone:
		p.Kind, p.Step = progress.Done, string(e.Direction)+" "+e.Label()
	case EventFailed:
		p.Kind, p.Step = progress.Failed, string(e.Direction)+" "+e.Label()
	case EventMissingFile:
		p.Kind, p.Step, p.Message = progress.Warn, e.Label(), "applied migration has no file any more"
	case EventDriftAllowed:
		p.Kind, p.Step, p.Message = progress.Warn, e.Label(), "applied migration file changed; going on (drift allowed)"
	}
	return p
}

// emitResult reports a migration or rollback starting or ending; an EventDone with an error
// goes out as EventFailed.
func (m *Migrator) emitResult(kind EventKind, res Result, err error) {
	if kind == EventDone && err != nil {
		kind = EventFailed
	}
	m.emit(Event{Kind: kind, Direction: res.Direction, Version: res.Version, Name: res.Name, Migration: res.Migration, Duration: res.Duration, Err: err})
}

// Migrations returns the migrations the Migrator was built with.
func (m *Migrator) Migrations() []*Migration { return m.migs }

// CreateSchema creates the ledger schema and table if they do not exist.
func (m *Migrator) CreateSchema(ctx context.Context) error {
	return m.withLock(ctx, func() error { return m.ensureLedger(ctx) })
}

// Up applies the pending migrations up to target (0: all), each in its own transaction with
// its ledger row, and returns what it applied. When nothing is pending it returns without
// taking the lock. A failure returns a *PartialError whose Err is a *MigrationError (SQL
// error), a context error (cancelled) or a connection error.
func (m *Migrator) Up(ctx context.Context, target int64) ([]Result, error) {
	pending, err := m.planUp(ctx, target, true)
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	if err := readTexts(pending); err != nil {
		return nil, err
	}
	var results []Result
	err = m.withLock(ctx, func() error {
		if err := m.ensureLedger(ctx); err != nil {
			return err
		}
		// Another runner may have applied some while this one waited for the lock.
		pending, err := m.planUp(ctx, target, false)
		if err != nil {
			return err
		}
		if err := readTexts(pending); err != nil {
			return err
		}
		for _, mig := range pending {
			if err := ctx.Err(); err != nil {
				return &PartialError{Applied: results, Err: fmt.Errorf("interrupted before %s: %w", mig.Up.File, err)}
			}
			res, err := m.applyUp(ctx, mig)
			if err != nil {
				res.Err = err
				return &PartialError{Applied: results, Failed: &res, Err: err}
			}
			results = append(results, res)
		}
		return nil
	})
	return results, err
}

// Down rolls back applied migrations newest first, each rollback in one transaction with the
// removal of its ledger row. Before it changes anything it checks that every step has rollback
// SQL (the rollback file, else the copy the ledger kept when the migration was applied).
func (m *Migrator) Down(ctx context.Context, to DownTarget) ([]Result, error) {
	steps, err := m.planDown(ctx, to, true)
	if err != nil || len(steps) == 0 {
		return nil, err
	}
	var results []Result
	err = m.withLock(ctx, func() error {
		steps, err := m.planDown(ctx, to, false)
		if err != nil {
			return err
		}
		for _, st := range steps {
			if err := ctx.Err(); err != nil {
				return &PartialError{Applied: results, Err: fmt.Errorf("interrupted before %s: %w", st.Script.File, err)}
			}
			res, err := m.applyDown(ctx, st)
			if err != nil {
				res.Err = err
				return &PartialError{Applied: results, Failed: &res, Err: err}
			}
			results = append(results, res)
		}
		return nil
	})
	return results, err
}

// Status lists every version known from the files or the ledger, in version order.
func (m *Migrator) Status(ctx context.Context) ([]State, error) {
	rows, err := m.readLedger(ctx, ledgerStatus)
	if err != nil {
		return nil, err
	}
	applied := make(map[int64]ledgerRow, len(rows))
	for _, r := range rows {
		applied[r.version] = r
	}
	var out []State
	i := 0
	for _, mig := range m.migs {
		for ; i < len(rows) && rows[i].version < mig.Version; i++ {
			out = append(out, missingState(rows[i]))
		}
		st := State{Version: mig.Version, Name: mig.Name, File: mig.Up.File, Description: mig.Description, Migration: mig, Status: StatusPending}
		if r, ok := applied[mig.Version]; ok {
			i++
			st.Status = StatusApplied
			if r.checksum != mig.Checksum || r.name != mig.Name {
				st.Status = StatusChanged
			}
			st.AppliedAt, st.Duration, st.AppliedBy = r.appliedAt, r.duration, r.appliedBy
		}
		out = append(out, st)
	}
	for ; i < len(rows); i++ {
		out = append(out, missingState(rows[i]))
	}
	return out, nil
}

func missingState(r ledgerRow) State {
	return State{Version: r.version, Name: r.name, Status: StatusMissingFile, AppliedAt: r.appliedAt, Duration: r.duration, AppliedBy: r.appliedBy}
}

// Verify compares the checksums of the applied migrations with their files. It returns the
// drifts and, when there are any, a *DriftError (exit code 3) whatever WithAllowDrift says.
func (m *Migrator) Verify(ctx context.Context) ([]Drift, error) {
	rows, err := m.readLedger(ctx, ledgerChecks)
	if err != nil {
		return nil, err
	}
	ds := m.drifts(rows, true)
	if len(ds) > 0 {
		return ds, &DriftError{Drifts: ds}
	}
	return nil, nil
}
