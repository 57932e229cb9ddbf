package ephemeral_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/progress"
)

// lockHolder takes the migration lock of the server Start is bringing up as soon as pgnative
// reports the postmaster ready (over its private socket, before any migration runs), and
// releases it when migrate reports that it waits for it.
type lockHolder struct {
	t      *testing.T
	conn   *pgx.Conn
	key    int64
	events []progress.Event
}

func (h *lockHolder) progress(e progress.Event) {
	h.events = append(h.events, e)
	ctx := context.Background()
	switch {
	case e.Op == "pgnative" && e.Message == "postgres accepts connections" && h.conn == nil:
		var dir, port string
		for _, a := range e.Attrs {
			switch a.Key {
			case "dir":
				dir = a.Value.String()
			case "port":
				port = a.Value.String()
			}
		}
		conn, err := pgx.Connect(ctx, fmt.Sprintf("host=%s port=%s user=postgres dbname=postgres sslmode=disable", dir, port))
		if err != nil {
			h.t.Errorf("connect to the starting server (dir %q, port %q): %v", dir, port, err)
			return
		}
		m, err := migrate.New(conn, nil)
		if err == nil {
			h.key, err = m.LockKey(ctx)
		}
		if err == nil {
			_, err = conn.Exec(ctx, "select pg_advisory_lock($1)", h.key)
		}
		if err != nil {
			h.t.Errorf("hold the migration lock: %v", err)
		}
		h.conn = conn
	case e.Op == "migrate" && e.Kind == progress.Wait && h.conn != nil:
		if _, err := h.conn.Exec(ctx, "select pg_advisory_unlock($1)", h.key); err != nil {
			h.t.Errorf("release the migration lock: %v", err)
		}
		h.conn.Close(ctx)
	}
}

// TestStartReportsMigrationsAndLockWait: Start reports the server's start as a step, and
// inside it each migration and the wait for a migration lock that another session holds, in
// the order they happen, as pkg/migrate reports them to ps-migrate. The cache is the test's
// own, so that the migrations run rather than come with a cached data directory.
func TestStartReportsMigrationsAndLockWait(t *testing.T) {
	requireNative(t)
	environ, _ := env(t)
	environ = append(environ, "XDG_CACHE_HOME="+t.TempDir())
	h := &lockHolder{t: t}
	inst, err := ephemeral.Start(context.Background(), ephemeral.Options{Provider: ephemeral.Native, Environ: environ,
		Migrate: writeMigrations(t), Progress: h.progress})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
	var lines []string
	for _, e := range h.events {
		if e.Kind != progress.Info {
			// Without times: the order and the words are the contract.
			e.Elapsed, e.Attrs = 0, nil
			lines = append(lines, progress.Line(e))
		}
	}
	want := []string{
		"ephemeral: start native server ...",
		"pgnative: initdb ...",
		"pgnative: initdb: done",
		"migrate: waiting for another run's migration lock",
		"migrate: up 0001_users ...",
		"migrate: up 0001_users: done",
		"migrate: up 0002_seed ...",
		"migrate: up 0002_seed: done",
		"ephemeral: start native server: done",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if inst.Migrations != 2 {
		t.Errorf("%d migrations applied, want 2", inst.Migrations)
	}
}
