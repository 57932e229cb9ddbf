package ephemeral

import (
	"context"
	"fmt"

	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgnative"
	"github.com/poststack/poststack/pkg/progress"
)

// startNative runs a pgnative server: a cached initialised data directory copied into /dev/shm
// (or $TMPDIR), durability off, 127.0.0.1 only. With migrations, the cache also keeps the
// migrated data directory of each migration set (pgnative.WithSeed), so that a later start
// with the same set copies it instead of applying every migration again; Start's ordinary Up
// then finds nothing pending and only verifies the ledger and checksums.
func startNative(ctx context.Context, inst *Instance, o Options, migs []*migrate.Migration, getenv func(string) string, report progress.Reporter) error {
	opts := []pgnative.Option{pgnative.WithGetenv(getenv), pgnative.WithProgress(report.Func())}
	seeded := 0
	if len(migs) > 0 {
		key, err := migrate.SetDigest(migs, migrate.DefaultSchema, migrate.DefaultTable)
		if err != nil {
			return fmt.Errorf("ephemeral: %w", err)
		}
		opts = append(opts, pgnative.WithSeed(key, func(ctx context.Context, dsn string) error {
			n, err := applyMigrations(ctx, dsn, migs, report.Func())
			seeded = n
			return err
		}))
	}
	if o.Port != 0 {
		opts = append(opts, pgnative.WithPort(o.Port))
	}
	if o.Detach {
		opts = append(opts, pgnative.WithDetach())
	}
	srv, err := pgnative.Start(ctx, opts...)
	if err != nil {
		return fmt.Errorf("ephemeral: native server: %w", err)
	}
	inst.srv = srv
	inst.URL, inst.Port = srv.URL(), srv.Port()
	inst.Dir, inst.PID = srv.Dir(), srv.PID()
	if err := writeKeyFile(inst); err != nil {
		return err
	}
	switch {
	case srv.Seeded():
		// The entry's key covers exactly this set: every migration came with the copy.
		inst.Migrations = len(migs)
		inst.MigratedFromCache = true
		report.Info(fmt.Sprintf("native PostgreSQL %s: migrated data directory copied from the cache", srv.Version()), 0)
	case srv.Cached():
		inst.Migrations = seeded
		report.Info(fmt.Sprintf("native PostgreSQL %s: data directory copied from the cache", srv.Version()), 0)
	default:
		inst.Migrations = seeded
		report.Info(fmt.Sprintf("native PostgreSQL %s: initdb (cached for next time)", srv.Version()), 0)
	}
	return nil
}

// stopNative stops a server of this process directly, and a recorded one through its
// directory once the directory and its postmaster proved to be the instance's.
func stopNative(ctx context.Context, inst *Instance) error {
	if inst.srv != nil {
		return inst.srv.Stop(ctx)
	}
	if inst.Dir == "" {
		return nil
	}
	if _, err := nativeRunning(inst); err != nil {
		return err
	}
	return pgnative.StopDir(ctx, inst.Dir)
}
