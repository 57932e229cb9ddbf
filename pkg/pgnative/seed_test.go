package pgnative_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/pgnative"
)

// TestSeededCache: a seed runs once per key; later starts with the key copy its result, a new
// key seeds again, and every server (seeded or copied) has the seeded state and its own password.
func TestSeededCache(t *testing.T) {
	requireBinaries(t)
	cache := t.TempDir()
	var calls atomic.Int32
	seed := func(table string) pgnative.Option {
		return pgnative.WithSeed("table "+table, func(ctx context.Context, dsn string) error {
			calls.Add(1)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "CREATE TABLE "+table+" (id int PRIMARY KEY); INSERT INTO "+table+" VALUES (7)")
			return err
		})
	}
	tests := []struct {
		name       string
		table      string
		wantSeeded bool
		wantCalls  int32
	}{
		{"cold start seeds, stores only the base entry", "alpha", false, 1},
		{"from the base entry seeds and stores", "alpha", false, 2},
		{"same key copies the entry", "alpha", true, 2},
		{"again", "alpha", true, 2},
		{"another key seeds again", "beta", false, 3},
		{"which is cached too", "beta", true, 3},
	}
	var prevPassword string
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			began := time.Now()
			srv, err := pgnative.Start(ctx, pgnative.WithCacheDir(cache), seed(tc.table))
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Stop(context.Background())
			t.Logf("Start took %v (seeded %v)", time.Since(began), srv.Seeded())
			// Only the very first start runs initdb; every later one copies an entry.
			if srv.Seeded() != tc.wantSeeded || srv.Cached() != (tc.wantSeeded || tc.wantCalls > 1) {
				t.Errorf("Seeded() = %v, Cached() = %v; want seeded %v", srv.Seeded(), srv.Cached(), tc.wantSeeded)
			}
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("seed called %d times so far, want %d", got, tc.wantCalls)
			}
			conn := connect(t, srv.URL())
			if got := queryString(t, conn, "SELECT id::text FROM "+tc.table); got != "7" {
				t.Errorf("seeded row = %q, want 7", got)
			}
			if srv.Password() == prevPassword {
				t.Error("password reused from the previous server")
			}
			prevPassword = srv.Password()
		})
	}
	// Entries hold the initialised configuration, not a server's appended settings.
	confs, _ := filepath.Glob(filepath.Join(cache, "*", "data", "postgresql.conf"))
	if len(confs) != 3 {
		t.Fatalf("cache holds %d entries (%v), want base + 2 seeded", len(confs), confs)
	}
	for _, c := range confs {
		b, err := os.ReadFile(c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "Added by poststack") {
			t.Errorf("%s carries a server's settings", c)
		}
	}
}

// TestSeedFailureCleansUp: a failing seed fails Start, leaves no server and caches nothing.
func TestSeedFailureCleansUp(t *testing.T) {
	requireBinaries(t)
	cache, parent := t.TempDir(), privateTempDir(t)
	warm := func() {
		srv, err := pgnative.Start(context.Background(), pgnative.WithCacheDir(cache), pgnative.WithTempDir(parent))
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.Stop(context.Background())
	}
	warm()
	_, err := pgnative.Start(context.Background(), pgnative.WithCacheDir(cache), pgnative.WithTempDir(parent),
		pgnative.WithSeed("bad", func(ctx context.Context, dsn string) error {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "SELECT * FROM no_such_table")
			return err
		}))
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("Start = %v, want the seed's error", err)
	}
	assertEmpty(t, parent)
	entries, _ := os.ReadDir(cache)
	if len(entries) != 1 {
		t.Errorf("cache holds %d entries, want only the base one", len(entries))
	}
}

// TestSeedCachedOnColdStart: with WithSeedCachedOnColdStart the very first Start (initdb) keeps
// the seeded state, so the second Start with the same key copies it and does not seed.
func TestSeedCachedOnColdStart(t *testing.T) {
	requireBinaries(t)
	cache := t.TempDir()
	var calls atomic.Int32
	seed := pgnative.WithSeed("cold", func(ctx context.Context, dsn string) error {
		calls.Add(1)
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE cold (id int); INSERT INTO cold VALUES (7)")
		return err
	})
	for i, want := range []struct{ cached, seeded bool }{{false, false}, {true, true}} {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		srv, err := pgnative.Start(ctx, pgnative.WithCacheDir(cache), seed, pgnative.WithSeedCachedOnColdStart())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if srv.Cached() != want.cached || srv.Seeded() != want.seeded {
			t.Errorf("start %d: Cached() = %v, Seeded() = %v; want %v, %v", i+1, srv.Cached(), srv.Seeded(), want.cached, want.seeded)
		}
		if got := queryString(t, connect(t, srv.URL()), "SELECT id::text FROM cold"); got != "7" {
			t.Errorf("start %d: seeded row = %q, want 7", i+1, got)
		}
		_ = srv.Stop(context.Background())
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("seed called %d times, want 1", got)
	}
}
