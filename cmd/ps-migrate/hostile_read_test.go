package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
)

// TestHostileMigrationFiles performs issue 9's reading attacks on ps-migrate: a migrations
// directory holding a link to a file of the user's outside the project (its first line a
// directive the loader would have quoted), a link to /dev/zero, a FIFO. Each command exits 2
// at once naming the file, under GitHub Actions too; no output, annotation or step summary
// holds the secret; the database is not touched (no ledger).
func TestHostileMigrationFiles(t *testing.T) {
	db := testenv.Database(t)
	secret := filepath.Join(t.TempDir(), "shadow")
	write(t, secret, "-- poststack:TOPSECRET-root-hash\nselect 1;\n")
	tests := []struct {
		name   string
		plant  func(t *testing.T, file string)
		reason string
	}{
		{"link to a secret outside", func(t *testing.T, f string) { symlinkTo(t, secret, f) }, "is a symbolic link to"},
		{"link to /dev/zero", func(t *testing.T, f string) { symlinkTo(t, "/dev/zero", f) }, `is a symbolic link to "/dev/zero", outside the project directory`},
		{"FIFO", func(t *testing.T, f string) {
			if err := syscall.Mkfifo(f, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "is a named pipe (FIFO), not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := project(t, map[string]string{"0001_init.sql": "create table hostile_t (a int);\n"})
			tt.plant(t, filepath.Join(dir, "migrations", "0002_x.sql"))
			summary := filepath.Join(t.TempDir(), "summary.md")
			env := []string{"DATABASE_URL=" + db, "GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=" + summary}
			for _, cmd := range []string{"status", "up", "verify"} {
				r := runWithin(t, dir, env, cmd)
				if r.code != 2 || !strings.Contains(r.stderr, "migrations/0002_x.sql: "+tt.reason) {
					t.Errorf("%s: exit %d, stderr %q; want exit 2 naming migrations/0002_x.sql: %s", cmd, r.code, r.stderr, tt.reason)
				}
				sum, _ := os.ReadFile(summary)
				if out := r.stdout + r.stderr + string(sum); strings.Contains(out, "TOPSECRET") {
					t.Errorf("%s: the secret reached the output or the step summary:\n%s", cmd, out)
				}
			}
			if ledgerExists(t, db) {
				t.Error("the database was changed: a ledger exists")
			}
		})
	}
}

// TestLinkInsideProjectIsApplied: a migration linked to a file elsewhere in the project is
// followed (ps-migrate gives the project as the loader's root).
func TestLinkInsideProjectIsApplied(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, map[string]string{"0001_init.sql": "create table linked_a (a int);\n"})
	if err := os.Mkdir(filepath.Join(dir, "sql"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "sql", "b.sql"), "create table linked_b (a int);\n")
	symlinkTo(t, "../sql/b.sql", filepath.Join(dir, "migrations", "0002_b.sql"))
	r := runIn(t, dir, []string{"DATABASE_URL=" + db}, "up")
	if r.code != 0 || !strings.Contains(r.stdout, "applied 0002_b") {
		t.Fatalf("up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func runWithin(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- runIn(t, dir, env, args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(5 * time.Second):
		t.Fatalf("ps-migrate %v blocked", args)
		return result{}
	}
}

func ledgerExists(t *testing.T, db string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "select to_regclass('poststack.schema_migrations') is not null").Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func symlinkTo(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
