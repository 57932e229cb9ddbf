package pgnative

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/progress"
)

// maxSeededEntries bounds the seeded entries kept per base entry: every changed migration set
// makes a new one, and a developer editing migrations would otherwise fill the disk.
const maxSeededEntries = 8

// seed is what WithSeed configured.
type seed struct {
	key   string
	apply func(ctx context.Context, dsn string) error
}

// WithSeed makes Start bring the new server into a state named by key (typically a migrated
// schema, key a hash of the migration set) and cache that state: apply receives a superuser
// connection string over the server's private unix socket (trusted, no password) and must
// leave the server in the state key names, whatever it finds there. When the cache holds an
// entry for key (and the same server build and initdb arguments), Start copies it instead of
// the initialised one and does not call apply; Seeded reports that. Otherwise Start calls
// apply, then stops the server cleanly, keeps a copy of its data directory as the entry and
// starts it again. Callers should still verify the state cheaply (a migrator's no-op Up),
// since key is theirs to get right. At most 8 seeded entries are kept per server build, the
// most recently used ones.
func WithSeed(key string, apply func(ctx context.Context, dsn string) error) Option {
	return func(c *config) error {
		if key == "" {
			return errors.New("WithSeed: empty key")
		}
		if apply == nil {
			return errors.New("WithSeed: nil apply function")
		}
		c.seed = &seed{key: key, apply: apply}
		return nil
	}
}

// WithSeedCachedOnColdStart makes a Start that runs initdb (nothing cached yet) keep WithSeed's
// state in the cache too, so that the next Start with the same key copies it. By default such a
// cold start stays as fast as it can be and keeps only the initialised entry: keeping the seeded
// one costs a clean stop, a copy and a restart, and the second Start keeps it instead. For a
// caller that starts the same seeded state again and again (ps-migrate lint), the second run is
// then a cached one. The entry is written to the cache while the server runs, and Stop waits
// for it (with WithDetach, Start does). Without WithSeed it changes nothing.
func WithSeedCachedOnColdStart() Option {
	return func(c *config) error {
		c.seedColdStart = true
		return nil
	}
}

// seededEntry names the entry of a seed key next to its base entry, so that the bound on
// seeded entries is per base entry and a server upgrade leaves old ones to age out.
func seededEntry(base cacheEntry, key string) cacheEntry {
	sum := sha256.Sum256([]byte(key))
	return cacheEntry{dir: base.dir + seededInfix + hex.EncodeToString(sum[:])[:24]}
}

const seededInfix = "-seed-"

// socketDSN is a trusted superuser connection over the private socket.
func (s *Server) socketDSN() string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=postgres sslmode=disable",
		quoteDSN(s.dir), s.port, Superuser)
}

// useSeeded copies a seeded entry into the data directory; false when there is none or it
// cannot be copied (then the data directory is left absent for the ordinary path).
func (s *Server) useSeeded(entry cacheEntry) bool {
	v, ok := entry.lookup()
	if !ok {
		return false
	}
	began := time.Now()
	if err := copyTree(entry.dataDir(), s.dataDir, s.id); err != nil {
		// Evicted by another process while we copied, or damaged: the ordinary path still works.
		s.report.Warn("cannot copy the seeded data directory; seeding again", err, "cache", entry.dir)
		_ = removeAll(s.dataDir)
		return false
	}
	// The entry's modification time orders eviction: a used entry is a recent one.
	now := time.Now()
	_ = os.Chtimes(entry.dir, now, now)
	s.version, s.cacheHit, s.seeded = v, true, true
	s.report.Info("data directory copied from a seeded cache entry", time.Since(began), "cache", entry.dir)
	return true
}

// seedAndStore runs the seed on the started server, then stores its data directory as the
// seeded entry: a clean (fast) shutdown so that the copy needs no recovery, a copy into the
// server's private directory (memory, quick) from which the cache entry is written while the
// server starts again on the same port. confSize is postgresql.conf's size before this
// server's settings were appended: the entry must hold the initialised file, as the base one.
func (s *Server) seedAndStore(ctx context.Context, cfg *config, entry *cacheEntry, confSize int64, conn *pgconn.PgConn) (*pgconn.PgConn, error) {
	began := time.Now()
	if err := cfg.seed.apply(ctx, s.socketDSN()); err != nil {
		conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("pgnative: seed: %w", err)
	}
	s.report.Info("seed applied", time.Since(began))
	if entry == nil {
		return conn, nil
	}
	conn.Close(context.WithoutCancel(ctx))
	began = time.Now()
	if err := s.shutdown(ctx); err != nil {
		return nil, err
	}
	stopped := time.Now()
	snap, err := s.snapshot(confSize)
	if err != nil {
		s.report.Warn("cannot keep a copy of the seeded data directory", err)
	}
	snapped := time.Now()
	if snap != "" {
		// A cold start asked to keep the seeded entry writes it while the server is used
		// (Stop waits for it), so that keeping it costs that start little; a detached server
		// outlives this process, so its Start waits.
		wg := &s.stores
		if cfg.seedColdStart && !s.cacheHit && !cfg.detach {
			wg = &s.lateStores
		}
		s.storeAsync(wg, *entry, snap, s.version, true)
	}
	conn, err = s.relaunch(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.report.Info("seeded data directory kept for the cache", time.Since(began), "stop", stopped.Sub(began),
		"copy", snapped.Sub(stopped), "restart", time.Since(snapped))
	return conn, nil
}

// shutdown asks the postmaster for a fast shutdown, which ends with a checkpoint, and waits.
func (s *Server) shutdown(ctx context.Context) error {
	if err := s.proc.Signal(fastStopSignal); err != nil {
		return fmt.Errorf("pgnative: signal postgres: %w", err)
	}
	grace, cancel := context.WithTimeout(ctx, stopGrace)
	defer cancel()
	select {
	case <-s.exited:
		s.proc = nil
		return nil
	case <-grace.Done():
		return fmt.Errorf("pgnative: waiting for postgres to shut down: %w", context.Cause(grace))
	}
}

// relaunch starts the postmaster again on its port, or on another one if that was taken
// meanwhile and the caller did not fix it.
func (s *Server) relaunch(ctx context.Context, cfg *config) (*pgconn.PgConn, error) {
	conn, err := s.startPostmaster(ctx, cfg, s.port)
	if errors.Is(err, errPortInUse) && cfg.port == 0 {
		return s.launch(ctx, cfg)
	}
	return conn, err
}

// snapshot copies the stopped server's data directory into its private directory, with
// postgresql.conf cut back to confSize (or left whole when confSize < 0), and returns the copy.
func (s *Server) snapshot(confSize int64) (string, error) {
	snap, err := os.MkdirTemp(s.dir, "snapshot-")
	if err != nil {
		return "", fmt.Errorf("pgnative: %w", err)
	}
	dst := filepath.Join(snap, "data")
	if err := copyTree(s.dataDir, dst, identity{}); err != nil {
		_ = os.RemoveAll(snap)
		return "", fmt.Errorf("pgnative: %w", err)
	}
	// Files of a running server that a clean shutdown leaves behind only by accident.
	_ = os.Remove(filepath.Join(dst, "postmaster.pid"))
	_ = os.Remove(filepath.Join(dst, "postmaster.opts"))
	if confSize >= 0 {
		if err := os.Truncate(filepath.Join(dst, "postgresql.conf"), confSize); err != nil {
			_ = os.RemoveAll(snap)
			return "", fmt.Errorf("pgnative: %w", err)
		}
	}
	return dst, nil
}

// storeAsync writes the cache entry from src, a copy in the private directory that nothing
// else touches, in the background, as one of wg (Start waits for s.stores before returning, so
// the slow part of a store, creating ~1000 files on a disk, overlaps the server's start; Stop
// for s.lateStores). src's parent is removed.
func (s *Server) storeAsync(wg *sync.WaitGroup, entry cacheEntry, src, version string, seeded bool) {
	wg.Go(func() {
		defer os.RemoveAll(filepath.Dir(src))
		began := time.Now()
		if err := entry.store(src, version); err != nil {
			s.report.Warn("cannot store the data directory in the cache", err, "cache", entry.dir)
			return
		}
		s.report.Info("data directory stored in the cache", time.Since(began), "cache", entry.dir)
		if seeded {
			evictSeeded(entry, maxSeededEntries, s.report)
		}
	})
}

// evictSeeded removes all but the keep most recently used seeded entries of entry's base.
// An entry is renamed away before it is deleted, so that it never looks whole while half gone;
// a process copying from it at that moment fails its copy and seeds again.
func evictSeeded(entry cacheEntry, keep int, report progress.Reporter) {
	root := filepath.Dir(entry.dir)
	prefix, _, ok := strings.Cut(filepath.Base(entry.dir), seededInfix)
	if !ok {
		return
	}
	prefix += seededInfix
	dirents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type aged struct {
		name string
		mod  time.Time
	}
	var all []aged
	for _, d := range dirents {
		if !d.IsDir() || !strings.HasPrefix(d.Name(), prefix) {
			continue
		}
		if info, err := d.Info(); err == nil {
			all = append(all, aged{d.Name(), info.ModTime()})
		}
	}
	if len(all) <= keep {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mod.After(all[j].mod) })
	for _, a := range all[keep:] {
		tok, err := randomToken()
		if err != nil {
			return
		}
		// A staging name: if the removal below is interrupted, it ages out as stale staging.
		trash := filepath.Join(root, stagingPrefix+"evicted-"+tok)
		if err := os.Rename(filepath.Join(root, a.name), trash); err != nil {
			report.Warn("cannot evict a cache entry", err, "dir", a.name)
			continue
		}
		if err := os.RemoveAll(trash); err != nil {
			report.Warn("cannot remove an evicted cache entry", err, "dir", trash)
		}
	}
}
