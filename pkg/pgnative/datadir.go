package pgnative

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// initdbArgs make the cluster independent of the caller's locale and environment, so that one
// cached data directory serves every caller.
func initdbArgs() []string {
	return []string{
		"--no-sync",
		"--username=" + Superuser,
		"--auth-host=scram-sha-256",
		"--auth-local=trust",
		"--encoding=UTF8",
		"--locale=C",
		// 1 MB WAL segments instead of 16: every start copies the cached data directory, and
		// one preallocated 16 MB segment was 40% of it.
		"--wal-segsize=1",
	}
}

// defaultSettings suit a server whose data is thrown away: no durability, room for the many
// connections of parallel tests, modest memory so that several servers fit on a CI machine.
func defaultSettings() map[string]string {
	return map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_connections":    "200",
		"shared_buffers":     "32MB",
		"timezone":           "UTC",
		// Keep few recycled WAL segments in the directories the cache copies.
		"min_wal_size": "2MB",
		"log_timezone": "UTC",
		// Parallel-query segments as files in the data directory, so that a
		// killed server leaves nothing in /dev/shm: Stop removes them.
		"dynamic_shared_memory_type": "mmap",
	}
}

// cacheEntries names the base entry and, with WithSeed, the seeded one; both nil without a cache.
func (s *Server) cacheEntries(cfg *config) (base, seeded *cacheEntry, err error) {
	root := cfg.resolveCacheDir()
	if root == "" {
		return nil, nil, nil
	}
	key, err := cacheKey(s.bins, initdbArgs())
	if err != nil {
		return nil, nil, err
	}
	base = &cacheEntry{dir: filepath.Join(root, key)}
	if cfg.seed != nil {
		e := seededEntry(*base, cfg.seed.key)
		seeded = &e
	}
	return base, seeded, nil
}

// prepareData fills dataDir from the base cache entry, or with initdb (storing the result in
// the cache). entry is nil without a cache.
func (s *Server) prepareData(ctx context.Context, entry *cacheEntry) error {
	if entry != nil {
		if v, ok := entry.lookup(); ok {
			began := time.Now()
			err := copyTree(entry.dataDir(), s.dataDir, s.id)
			if err == nil {
				s.version, s.cacheHit = v, true
				s.report.Info("data directory copied from the cache", time.Since(began), "cache", entry.dir)
				return ctx.Err()
			}
			// A damaged entry must not break Start: fall back to initdb, which replaces nothing
			// in the cache (the entry's name is taken), and say so.
			s.report.Warn("cannot copy the cached data directory; running initdb", err, "cache", entry.dir)
			entry = nil
			if err := removeAll(s.dataDir); err != nil {
				return err
			}
		}
	}
	version, err := serverVersion(ctx, s.bins.postgres, childEnv())
	if err != nil {
		return err
	}
	s.version = version
	if err := s.initdb(ctx); err != nil {
		return err
	}
	if entry != nil {
		// A copy in memory now, written to the (disk) cache while the server starts.
		began := time.Now()
		snap, err := s.snapshot(-1)
		if err != nil {
			s.report.Warn("cannot store the data directory in the cache", err, "cache", entry.dir)
			return nil
		}
		s.report.Info("initialised data directory copied for the cache", time.Since(began))
		s.storeAsync(&s.stores, *entry, snap, version, false)
	}
	return nil
}

// initdb creates the cluster with a password nobody keeps: the cached copy must not carry a
// usable secret, so every server, cached or not, gets its own password from setPassword.
func (s *Server) initdb(ctx context.Context) (err error) {
	done := s.report.Step("initdb")
	defer func() { done(err) }()
	throwaway, err := randomToken()
	if err != nil {
		return err
	}
	pwfile := filepath.Join(s.dir, "initdb.pw")
	if err := os.WriteFile(pwfile, []byte(throwaway+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	defer os.Remove(pwfile)
	if err := s.id.chown(pwfile); err != nil {
		return err
	}
	args := append([]string{"--pgdata=" + s.dataDir, "--pwfile=" + pwfile}, initdbArgs()...)
	cmd := s.id.command(ctx, s.dir, s.bins.initdb, args...)
	out, err := cmd.CombinedOutput()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("pgnative: initdb: %w", ctxErr)
	}
	if err != nil {
		return fmt.Errorf("pgnative: %s %s: %w\n%s", s.bins.initdb, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// writeConfig appends our settings to postgresql.conf, where the last value of a name wins.
// The file is per server (copied or freshly made), so the cache stays independent of them.
func (s *Server) writeConfig(user map[string]string) error {
	settings := defaultSettings()
	maps.Copy(settings, user)
	settings["listen_addresses"] = "127.0.0.1"
	settings["unix_socket_directories"] = s.dir
	settings["unix_socket_permissions"] = "0700"
	var b strings.Builder
	b.WriteString("\n# Added by poststack pgnative for a throwaway server.\n")
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = '%s'\n", name, strings.ReplaceAll(settings[name], "'", "''"))
	}
	path := filepath.Join(s.dataDir, "postgresql.conf")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("pgnative: %w", err)
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return fmt.Errorf("pgnative: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pgnative: write %s: %w", path, err)
	}
	return nil
}

// launch starts the postmaster, retrying on another free port when the chosen one was taken in
