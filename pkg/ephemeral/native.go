package ephemeral

import (
	"context"
	"fmt"

	"github.com/poststack/poststack/pkg/pgnative"
)

// startNative runs a pgnative server: a cached initialised data directory copied into /dev/shm
// (or $TMPDIR), durability off, 127.0.0.1 only.
func startNative(ctx context.Context, inst *Instance, o Options, getenv func(string) string, logf func(string, ...any)) error {
	opts := []pgnative.Option{pgnative.WithGetenv(getenv)}
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
	if srv.Cached() {
		logf("native PostgreSQL %s: data directory copied from the cache", srv.Version())
	} else {
		logf("native PostgreSQL %s: initdb (cached for next time)", srv.Version())
	}
	return nil
}

// stopNative stops a server of this process directly, and any other through its directory.
func stopNative(ctx context.Context, inst *Instance) error {
	if inst.srv != nil {
		return inst.srv.Stop(ctx)
	}
	if inst.Dir == "" {
		return nil
	}
	return pgnative.StopDir(ctx, inst.Dir)
}

// nativeAlive reports whether a recorded native server still runs.
func nativeAlive(inst *Instance) bool {
	_, ok := pgnative.Running(inst.Dir)
	return ok
}
