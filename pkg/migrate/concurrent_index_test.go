package migrate

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/progress"
)

// TestConcurrentIndexWhileAnotherRunnerWaits runs a no-transaction CREATE
// INDEX CONCURRENTLY while a second runner waits for the migration lock.
// CONCURRENTLY waits for every open transaction that might use the table,
// so a waiter that held a transaction open while polling the lock would
// deadlock both; the waiter must poll outside any transaction.
func TestConcurrentIndexWhileAnotherRunnerWaits(t *testing.T) {
	dbURL := freshDB(t)
	migs := load(t, map[string]string{
		"1_t.sql": "CREATE TABLE t (id int PRIMARY KEY, v text);\nINSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;\n",
		// The sleep keeps the first runner inside this migration while the
		// second one arrives.
		"2_idx.sql": "-- poststack:no-transaction\nSELECT pg_sleep(0.5);\nCREATE INDEX CONCURRENTLY t_v ON t (v);\n",
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := newMigrator(t, connect(t, dbURL), migs).Up(ctx, 1); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	first := newMigrator(t, connect(t, dbURL), migs, WithProgress(func(pe progress.Event) {
		e := pe.Data.(Event)
		if e.Kind == EventStart && e.Version == 2 {
			close(started)
		}
	}))
	var waited atomic.Bool
	second := newMigrator(t, connect(t, dbURL), migs, WithProgress(func(pe progress.Event) {
		e := pe.Data.(Event)
		if e.Kind == EventLockWait {
			waited.Store(true)
		}
	}))
	done := make(chan error, 1)
	go func() {
		_, err := first.Up(ctx, 0)
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the first runner ended before starting the index migration: %v", err)
	}
	applied, err := second.Up(ctx, 0)
	if err != nil {
		t.Fatalf("the waiting runner: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the runner building the index: %v", err)
	}
	if !waited.Load() {
		t.Error("the second runner never waited for the lock: the test did not overlap the runs")
	}
	if len(applied) != 0 {
		t.Errorf("the waiting runner applied %d migrations again", len(applied))
	}
	var valid bool
	if err := connect(t, dbURL).QueryRow(ctx, "select indisvalid from pg_index where indexrelid = 't_v'::regclass").Scan(&valid); err != nil || !valid {
		t.Fatalf("index t_v valid=%v, %v", valid, err)
	}
	if got := ledgerVersions(t, connect(t, dbURL)); len(got) != 2 {
		t.Fatalf("ledger %v, want versions 1 and 2", got)
	}
}
