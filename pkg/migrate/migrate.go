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
package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlscan"
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

// cancelGrace is how long a cancelled migration may take to stop after the server was asked to
// cancel it, before the connection is dropped (which also rolls the transaction back).
const cancelGrace = 10 * time.Second

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

// State is one row of Status: a version known from the files, the ledger or both.
type State struct {
	Version     int64  `json:"version"`
	Name        string `json:"name"`
	Status      Status `json:"status"`
	File        string `json:"file,omitempty"`
	Description string `json:"description,omitempty"`
	// Applied* are zero for pending migrations.
	AppliedAt time.Time     `json:"applied_at,omitzero"`
	Duration  time.Duration `json:"duration_ns,omitempty"`
	AppliedBy string        `json:"applied_by,omitempty"`
	// Migration is nil for missing files.
	Migration *Migration `json:"-"`
}

// Option configures a Migrator; it returns an error for a nonsense value.
type Option func(*config) error

type config struct {
	schema, table   string
	lockTimeout     time.Duration
	stmtLockTimeout time.Duration
	allowDrift      bool
	allowOutOfOrder bool
	appliedBy       string
	progress        func(Event)
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

// WithProgress sets a hook that receives progress events. It runs on the caller's goroutine
// and should return quickly.
func WithProgress(fn func(Event)) Option {
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

func (m *Migrator) emit(e Event) {
	if m.cfg.progress != nil {
		m.cfg.progress(e)
	}
}

// Migrations returns the migrations the Migrator was built with.
func (m *Migrator) Migrations() []*Migration { return m.migs }

// ledgerRow is one applied migration as the ledger records it.
type ledgerRow struct {
	version   int64
	name      string
	checksum  string
	rollback  *string
	appliedAt time.Time
	duration  time.Duration
	appliedBy string
}

// Ledger columns to read: the checks need only the first three.
const (
	ledgerChecks = iota
	ledgerStatus
	ledgerRollback
)

// readLedger returns the applied migrations in version order; a missing ledger means none.
func (m *Migrator) readLedger(ctx context.Context, cols int) ([]ledgerRow, error) {
	sel := "version, name, checksum"
	switch cols {
	case ledgerStatus:
		sel += ", applied_at, coalesce((extract(epoch from execution_time) * 1000000)::bigint, 0), applied_by"
	case ledgerRollback:
		sel += ", rollback_sql"
	}
	rows, err := m.conn.Query(ctx, "SELECT "+sel+" FROM "+m.ledger+" ORDER BY version", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, m.ledgerErr(err)
	}
	defer rows.Close()
	var out []ledgerRow
	for rows.Next() {
		var r ledgerRow
		var us int64
		dst := []any{&r.version, &r.name, &r.checksum}
		switch cols {
		case ledgerStatus:
			dst = append(dst, &r.appliedAt, &us, &r.appliedBy)
		case ledgerRollback:
			dst = append(dst, &r.rollback)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("read ledger %s: %w", m.ledger, err)
		}
		r.duration = time.Duration(us) * time.Microsecond
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, m.ledgerErr(err)
	}
	return out, nil
}

func (m *Migrator) ledgerErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
		return nil // undefined_table / invalid_schema_name: nothing applied yet
	}
	return fmt.Errorf("read ledger %s: %w", m.ledger, err)
}

// ensureLedger creates the ledger schema and table when missing. The schema is created only
// when it does not exist, because CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on
// the database even when the schema is there.
func (m *Migrator) ensureLedger(ctx context.Context) error {
	var tableExists, schemaExists bool
	err := m.conn.QueryRow(ctx,
		"SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)",
		m.ledger, m.cfg.schema).Scan(&tableExists, &schemaExists)
	if err != nil {
		return fmt.Errorf("look for ledger %s: %w", m.ledger, err)
	}
	if tableExists {
		return nil
	}
	var b strings.Builder
	b.WriteString("BEGIN;\n")
	if !schemaExists {
		fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", pgx.Identifier{m.cfg.schema}.Sanitize())
	}
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %s (
	version        bigint PRIMARY KEY,
	name           text NOT NULL,
	checksum       text NOT NULL,
	rollback_sql   text,
	applied_at     timestamptz NOT NULL DEFAULT now(),
	execution_time interval,
	applied_by     text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE %s IS 'Migrations applied by poststack (ps-migrate); do not edit by hand';
COMMIT;`, m.ledger, m.ledger)
	if _, err := m.exec(ctx, b.String()); err != nil {
		m.rollbackIfOpen(ctx)
		return fmt.Errorf("create ledger %s: %w", m.ledger, err)
	}
	return nil
}

// CreateSchema creates the ledger schema and table if they do not exist.
func (m *Migrator) CreateSchema(ctx context.Context) error {
	return m.withLock(ctx, func() error { return m.ensureLedger(ctx) })
}

// LockKey returns the session advisory lock key runs take. It is derived from the database
// and the ledger's schema and table, so that runs against different ledgers of one server do
// not wait for each other.
func (m *Migrator) LockKey(ctx context.Context) (int64, error) {
	var db string
	if err := m.conn.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return 0, fmt.Errorf("read current database: %w", err)
	}
	sum := sha256.Sum256([]byte(db + "\x00" + m.cfg.schema + "\x00" + m.cfg.table))
	return int64(binary.BigEndian.Uint64(sum[:8])), nil
}

// withLock runs fn holding the migration lock, and releases it even when ctx is cancelled.
func (m *Migrator) withLock(ctx context.Context, fn func() error) (err error) {
	key, err := m.LockKey(ctx)
	if err != nil {
		return err
	}
	if err := m.acquire(ctx, key); err != nil {
		return err
	}
	defer func() {
		if uerr := m.release(context.WithoutCancel(ctx), key); uerr != nil && err == nil {
			err = uerr
		}
	}()
	return fn()
}

func (m *Migrator) acquire(ctx context.Context, key int64) error {
	start := m.cfg.now()
	delay := 50 * time.Millisecond
	waiting := false
	for {
		var ok bool
		if err := m.conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("wait for the migration lock: %w", ctx.Err())
			}
			return fmt.Errorf("take the migration lock: %w", err)
		}
		waited := m.cfg.now().Sub(start)
		if ok {
			m.emit(Event{Kind: EventLockAcquired, Duration: waited})
			return nil
		}
		if !waiting {
			waiting = true
			m.emit(Event{Kind: EventLockWait})
		}
		left := m.cfg.lockTimeout - waited
		if left <= 0 {
			return &LockTimeoutError{Timeout: m.cfg.lockTimeout, Key: key, Holders: m.lockHolders(ctx, key)}
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for the migration lock: %w", ctx.Err())
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}

// lockHolders names the sessions holding the lock, for the timeout message; best effort.
func (m *Migrator) lockHolders(ctx context.Context, key int64) []int32 {
	rows, err := m.conn.Query(ctx, `SELECT pid FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND classid = (($1::bigint >> 32) & 4294967295)::oid AND objid = ($1::bigint & 4294967295)::oid
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`, key)
	if err != nil {
		return nil
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil
	}
	return pids
}

func (m *Migrator) release(ctx context.Context, key int64) error {
	if m.conn.IsClosed() {
		return nil // the server dropped the session lock with the session
	}
	// An aborted transaction left open would make the unlock fail and keep the lock.
	m.rollbackIfOpen(ctx)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		// A cancel request racing with this query can abort it; one retry covers that.
		var ok bool
		if err = m.conn.QueryRow(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&ok); err == nil {
			if !ok {
				return fmt.Errorf("release the migration lock %d: it was not held", key)
			}
			return nil
		}
		if m.conn.IsClosed() {
			return nil
		}
	}
	return fmt.Errorf("release the migration lock %d: %w", key, err)
}

// exec sends sql as one simple-protocol query and returns how many of its statements
// completed. Cancelling ctx sends the server a cancel request, so the connection stays usable
// and an open transaction can be rolled back; if the server does not react within cancelGrace,
// the connection is dropped.
func (m *Migrator) exec(ctx context.Context, sql string) (completed int, err error) {
	pg := m.conn.PgConn()
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	execDone := make(chan struct{})
	watcherDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(watcherDone)
		cctx, cancel := context.WithTimeout(hard, cancelGrace)
		defer cancel()
		if pg.CancelRequest(cctx) != nil {
			hardCancel()
			return
		}
		t := time.NewTimer(cancelGrace)
		defer t.Stop()
		select {
		case <-execDone:
		case <-t.C:
			hardCancel()
		}
	})
	defer func() {
		close(execDone)
		if !stop() {
			// Wait for the cancel request to be delivered, so it cannot hit the next query.
			<-watcherDone
		}
	}()
	mrr := pg.Exec(hard, sql)
	for mrr.NextResult() {
		if _, err := mrr.ResultReader().Close(); err != nil {
			break
		}
		completed++
	}
	return completed, mrr.Close()
}

// rollbackIfOpen ends a transaction a failed query left open.
func (m *Migrator) rollbackIfOpen(ctx context.Context) {
	pg := m.conn.PgConn()
	if pg.IsClosed() || pg.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// A late-arriving cancel request can abort a ROLLBACK too; try again then.
	for attempt := 0; attempt < 3 && !pg.IsClosed() && pg.TxStatus() != 'I'; attempt++ {
		_ = pg.Exec(rctx, "ROLLBACK").Close()
	}
}

// quoteLiteral quotes s as an E” string literal, which reads the same whatever
// standard_conforming_strings is.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "E'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func (m *Migrator) setLockTimeout(local bool) string {
	ms := m.cfg.stmtLockTimeout.Milliseconds()
	if m.cfg.stmtLockTimeout > 0 && ms == 0 {
		ms = 1
	}
	if local {
		return fmt.Sprintf("SET LOCAL lock_timeout = %d", ms)
	}
	return fmt.Sprintf("SET lock_timeout = %d", ms)
}

// drifts compares the ledger with the files. It reports missing files through the progress
// hook when notify is set.
func (m *Migrator) drifts(rows []ledgerRow, notify bool) []Drift {
	var out []Drift
	for _, r := range rows {
		mig, ok := m.byVersion[r.version]
		if !ok {
			if notify {
				m.emit(Event{Kind: EventMissingFile, Version: r.version, Name: r.name})
			}
			continue
		}
		if mig.Checksum != r.checksum || mig.Name != r.name {
			out = append(out, Drift{
				Version: r.version, File: mig.Up.File,
				AppliedName: r.name, Name: mig.Name,
				AppliedChecksum: r.checksum, Checksum: mig.Checksum,
			})
		}
	}
	return out
}

// checkDrift fails on drift unless it is allowed, in which case it reports each one.
func (m *Migrator) checkDrift(rows []ledgerRow, notify bool) error {
	ds := m.drifts(rows, notify)
	if len(ds) == 0 {
		return nil
	}
	if !m.cfg.allowDrift {
		return &DriftError{Drifts: ds}
	}
	if notify {
		for _, d := range ds {
			m.emit(Event{Kind: EventDriftAllowed, Version: d.Version, Name: d.Name, Migration: m.byVersion[d.Version], Err: &DriftError{Drifts: []Drift{d}}})
		}
	}
	return nil
}

// planUp lists the migrations Up would apply, in order.
func (m *Migrator) planUp(ctx context.Context, target int64, notify bool) ([]*Migration, error) {
	if target < 0 {
		return nil, exitcode.Usagef("target version %d is negative", target)
	}
	if target > 0 {
		if _, ok := m.byVersion[target]; !ok {
			return nil, exitcode.Usagef("target version %d: no migration has that version", target)
		}
	}
	rows, err := m.readLedger(ctx, ledgerChecks)
	if err != nil {
		return nil, err
	}
	if err := m.checkDrift(rows, notify); err != nil {
		return nil, err
	}
	applied := make(map[int64]bool, len(rows))
	var latest int64
	for _, r := range rows {
		applied[r.version] = true
		latest = max(latest, r.version)
	}
	var pending []*Migration
	var early []int64
	for _, mig := range m.migs {
		if target > 0 && mig.Version > target {
			break
		}
		if applied[mig.Version] {
			continue
		}
		if mig.Version < latest {
			early = append(early, mig.Version)
		}
		pending = append(pending, mig)
	}
	if len(early) > 0 && !m.cfg.allowOutOfOrder {
		return nil, &OutOfOrderError{Versions: early, Latest: latest}
	}
	return pending, nil
}

// readTexts reads the SQL of the migrations about to be applied (and of their rollbacks, which
// the ledger keeps) before any of them runs, so that a file changed since Load stops the run
// before it changes anything.
func readTexts(migs []*Migration) error {
	for _, mig := range migs {
		if _, err := mig.Up.Text(); err != nil {
			return err
		}
		if mig.Down != nil {
			if _, err := mig.Down.Text(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Plan returns the migrations Up(ctx, target) would apply, after the same checks (drift,
// order), without taking the lock or changing anything: the dry run.
func (m *Migrator) Plan(ctx context.Context, target int64) ([]*Migration, error) {
	return m.planUp(ctx, target, false)
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

func (m *Migrator) applyUp(ctx context.Context, mig *Migration) (Result, error) {
	res := Result{Version: mig.Version, Name: mig.Name, File: mig.Up.File, Direction: DirectionUp, Migration: mig}
	m.emit(Event{Kind: EventStart, Direction: DirectionUp, Version: mig.Version, Name: mig.Name, Migration: mig})
	start := m.cfg.now()
	var rollback *string
	if mig.Down != nil {
		rollback = &mig.Down.SQL
	}
	var err error
	if mig.Up.NoTransaction {
		err = m.runStatements(ctx, mig, DirectionUp, mig.Up)
		if err == nil {
			err = m.record(ctx, mig, rollback, m.cfg.now().Sub(start))
		}
	} else {
		rb := "NULL"
		if rollback != nil {
			rb = quoteLiteral(*rollback)
		}
		prefix := fmt.Sprintf("BEGIN;\n%s;\nINSERT INTO %s (version, name, checksum, rollback_sql, applied_by) VALUES (%d, %s, %s, %s, %s);\n",
			m.setLockTimeout(true), m.ledger, mig.Version, quoteLiteral(mig.Name), quoteLiteral(mig.Checksum), rb, quoteLiteral(m.cfg.appliedBy))
		suffix := fmt.Sprintf("\n;\nUPDATE %s SET execution_time = clock_timestamp() - now() WHERE version = %d;\nCOMMIT;", m.ledger, mig.Version)
		err = m.runTransaction(ctx, mig, DirectionUp, mig.Up, prefix, 3, suffix)
	}
	res.Duration = m.cfg.now().Sub(start)
	if err != nil {
		m.emit(Event{Kind: EventFailed, Direction: DirectionUp, Version: mig.Version, Name: mig.Name, Migration: mig, Duration: res.Duration, Err: err})
		return res, err
	}
	m.emit(Event{Kind: EventDone, Direction: DirectionUp, Version: mig.Version, Name: mig.Name, Migration: mig, Duration: res.Duration})
	return res, nil
}

// record inserts the ledger row of a no-transaction migration after its statements ran.
func (m *Migrator) record(ctx context.Context, mig *Migration, rollback *string, d time.Duration) error {
	_, err := m.conn.Exec(ctx, "INSERT INTO "+m.ledger+
		" (version, name, checksum, rollback_sql, applied_by, execution_time) VALUES ($1, $2, $3, $4, $5, make_interval(secs => $6))",
		mig.Version, mig.Name, mig.Checksum, rollback, m.cfg.appliedBy, d.Seconds())
	if err != nil {
		return fmt.Errorf("%s ran completely but could not be recorded in %s; its changes are in place, so record it or undo them by hand: %w",
			mig.Up.File, m.ledger, err)
	}
	return nil
}

// runTransaction sends prefix + script + suffix as one query. prefix opens the transaction and
// holds prefixStmts statements; suffix ends with COMMIT.
func (m *Migrator) runTransaction(ctx context.Context, mig *Migration, dir Direction, script Script, prefix string, prefixStmts int, suffix string) error {
	completed, err := m.exec(ctx, prefix+script.SQL+suffix)
	if err == nil && m.conn.PgConn().TxStatus() != 'I' {
		// The script swallowed the COMMIT (an unterminated quote or comment that our suffix
		// happened to close); nothing may be kept.
		m.rollbackIfOpen(ctx)
		return fmt.Errorf("%s: the file does not end cleanly (unterminated quote, comment or dollar quote?); rolled back", script.File)
	}
	if err == nil {
		return nil
	}
	m.rollbackIfOpen(ctx)
	if ctx.Err() != nil {
		if m.conn.IsClosed() {
			// The server did not stop in time and the connection was dropped: it either
			// finished the whole query, COMMIT included, or discarded all of it.
			return fmt.Errorf("%s: interrupted and disconnected; the %s and its ledger change were committed together or not at all, so check the ledger: %w",
				script.File, noun(dir), ctx.Err())
		}
		return fmt.Errorf("%s: interrupted; the %s was rolled back: %w", script.File, noun(dir), ctx.Err())
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if m.conn.IsClosed() {
			return fmt.Errorf("%s: connection lost; the file and its ledger row commit together or not at all, so check the ledger to see whether it was applied: %w", script.File, err)
		}
		return fmt.Errorf("%s: %w", script.File, err)
	}
	me := &MigrationError{Migration: mig, Direction: dir, File: script.File, Err: pgErr}
	if pgErr.Position > 0 {
		pos := int(pgErr.Position) - utf8.RuneCountInString(prefix)
		if pos >= 1 && pos <= utf8.RuneCountInString(script.SQL)+1 {
			me.Line, me.Col = sqlscan.CharPosition(script.SQL, pos)
		}
	} else if i := completed - prefixStmts; i >= 0 {
		// Without a position (a runtime error), the count of statements that completed before
		// the error says which one failed; the server splits at the same semicolons.
		if stmts := sqlscan.Split(script.SQL); i < len(stmts) {
			me.Line, me.Col = stmts[i].Line, stmts[i].Col
		}
	}
	me.Source = sourceLine(script.SQL, me.Line)
	return me
}

// runStatements runs a no-transaction script statement by statement.
func (m *Migrator) runStatements(ctx context.Context, mig *Migration, dir Direction, script Script) (err error) {
	var old string
	if err := m.conn.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&old); err != nil {
		return fmt.Errorf("%s: read lock_timeout: %w", script.File, err)
	}
	if _, err := m.exec(ctx, m.setLockTimeout(false)); err != nil {
		return fmt.Errorf("%s: set lock_timeout: %w", script.File, err)
	}
	defer func() {
		if m.conn.IsClosed() {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, rerr := m.conn.Exec(rctx, "SELECT set_config('lock_timeout', $1, false)", old); rerr != nil && err == nil {
			err = fmt.Errorf("%s: restore lock_timeout: %w", script.File, rerr)
		}
	}()
	stmts := sqlscan.Split(script.SQL)
	for i, st := range stmts {
		if ctx.Err() != nil {
			return newHalfAppliedError(script, dir, stmts, i, false, ctx.Err())
		}
		if _, err := m.exec(ctx, st.SQL); err != nil {
			m.rollbackIfOpen(ctx)
			if ctx.Err() != nil {
				return newHalfAppliedError(script, dir, stmts, i, true, ctx.Err())
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				return fmt.Errorf("%s:%d:%d: %w", script.File, st.Line, st.Col, err)
			}
			me := &MigrationError{Migration: mig, Direction: dir, File: script.File, Err: pgErr, NoTransaction: true,
				Line: st.Line, Col: st.Col}
			if pgErr.Position > 0 {
				me.Line, me.Col = st.Position(int(pgErr.Position))
			}
			me.Source = sourceLine(script.SQL, me.Line)
			return me
		}
	}
	if m.conn.PgConn().TxStatus() != 'I' {
		m.rollbackIfOpen(ctx)
		return fmt.Errorf("%s: the file leaves a transaction open (BEGIN without COMMIT); it was rolled back and not recorded", script.File)
	}
	return nil
}

func noun(dir Direction) string {
	if dir == DirectionDown {
		return "rollback"
	}
	return "migration"
}

// sourceLine returns line n (1-based) of text, or "" when n is 0.
func sourceLine(text string, n int) string {
	if n <= 0 {
		return ""
	}
	for i := 1; i < n; i++ {
		_, rest, ok := strings.Cut(text, "\n")
		if !ok {
			return ""
		}
		text = rest
	}
	line, _, _ := strings.Cut(text, "\n")
	return line
}

// DownTarget says how far Down rolls back. Build it with ToVersion or Steps; the zero value is
// rejected.
type DownTarget struct {
	version int64
	steps   int
	byStep  bool
	set     bool
}

// ToVersion rolls back every applied migration newer than v, newest first; v = 0 rolls back all.
func ToVersion(v int64) DownTarget { return DownTarget{version: v, set: true} }

// Steps rolls back the n (at least 1) newest applied migrations.
func Steps(n int) DownTarget { return DownTarget{steps: n, byStep: true, set: true} }

// Step is one rollback that Down would run.
type Step struct {
	Version int64
	Name    string
	// Migration is nil when the file is gone and the rollback comes from the ledger.
	Migration *Migration
	Script    Script
	// FromLedger is set when Script is the ledger's copy of the rollback SQL.
	FromLedger bool
}

// PlanDown returns the steps Down(ctx, to) would run, after the same checks, without taking
// the lock or changing anything.
func (m *Migrator) PlanDown(ctx context.Context, to DownTarget) ([]Step, error) {
	return m.planDown(ctx, to, false)
}

func (m *Migrator) planDown(ctx context.Context, to DownTarget, notify bool) ([]Step, error) {
	switch {
	case !to.set:
		return nil, exitcode.Usagef("down needs a target version or a number of steps")
	case to.byStep && to.steps < 1:
		return nil, exitcode.Usagef("down steps must be 1 or more, not %d", to.steps)
	case to.version < 0:
		return nil, exitcode.Usagef("down target version %d is negative", to.version)
	}
	rows, err := m.readLedger(ctx, ledgerRollback)
	if err != nil {
		return nil, err
	}
	if err := m.checkDrift(rows, notify); err != nil {
		return nil, err
	}
	if to.version > 0 {
		_, inFiles := m.byVersion[to.version]
		inLedger := false
		for _, r := range rows {
			inLedger = inLedger || r.version == to.version
		}
		if !inFiles && !inLedger {
			return nil, exitcode.Usagef("target version %d: no migration has that version", to.version)
		}
	}
	var steps []Step
	var missing []int64
	var missingNames []string
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if to.byStep && len(steps) == to.steps || !to.byStep && r.version <= to.version {
			break
		}
		st := Step{Version: r.version, Name: r.name, Migration: m.byVersion[r.version]}
		switch {
		case st.Migration != nil && st.Migration.Down != nil:
			// Read before any step runs: a file changed since Load stops Down unchanged.
			if _, err := st.Migration.Down.Text(); err != nil {
				return nil, err
			}
			st.Script = *st.Migration.Down
		case r.rollback != nil:
			d, _ := parseDirectives(*r.rollback)
			file := fmt.Sprintf("%d_%s.rollback.sql", r.version, r.name)
			if st.Migration != nil {
				file = strings.TrimSuffix(st.Migration.Up.File, sqlExt) + rollbackExt
			}
			st.Script = Script{File: "ledger copy of " + file, SQL: *r.rollback, NoTransaction: d.NoTransaction}
			st.FromLedger = true
		default:
			missing = append(missing, r.version)
			missingNames = append(missingNames, r.name)
		}
		steps = append(steps, st)
	}
	if len(missing) > 0 {
		return nil, &MissingRollbackError{Versions: missing, Names: missingNames}
	}
	return steps, nil
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

func (m *Migrator) applyDown(ctx context.Context, st Step) (Result, error) {
	res := Result{Version: st.Version, Name: st.Name, File: st.Script.File, Direction: DirectionDown, Migration: st.Migration}
	m.emit(Event{Kind: EventStart, Direction: DirectionDown, Version: st.Version, Name: st.Name, Migration: st.Migration})
	start := m.cfg.now()
	var err error
	if st.Script.NoTransaction {
		err = m.runStatements(ctx, st.Migration, DirectionDown, st.Script)
		if err == nil {
			if _, derr := m.conn.Exec(ctx, "DELETE FROM "+m.ledger+" WHERE version = $1", st.Version); derr != nil {
				err = fmt.Errorf("%s ran completely but version %d could not be removed from %s; its changes are in place: %w",
					st.Script.File, st.Version, m.ledger, derr)
			}
		}
	} else {
		prefix := fmt.Sprintf("BEGIN;\n%s;\nDELETE FROM %s WHERE version = %d;\n", m.setLockTimeout(true), m.ledger, st.Version)
		err = m.runTransaction(ctx, st.Migration, DirectionDown, st.Script, prefix, 3, "\n;\nCOMMIT;")
	}
	res.Duration = m.cfg.now().Sub(start)
	if err != nil {
		m.emit(Event{Kind: EventFailed, Direction: DirectionDown, Version: st.Version, Name: st.Name, Migration: st.Migration, Duration: res.Duration, Err: err})
		return res, err
	}
	m.emit(Event{Kind: EventDone, Direction: DirectionDown, Version: st.Version, Name: st.Name, Migration: st.Migration, Duration: res.Duration})
	return res, nil
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
