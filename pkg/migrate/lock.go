package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
