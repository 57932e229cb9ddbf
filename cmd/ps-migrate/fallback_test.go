package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/internal/testenv"
)

// appliedVersions lists the ledger's versions, oldest first.
func appliedVersions(t *testing.T, db string) []string {
	t.Helper()
	conn := connect(t, db)
	rows, err := conn.Query(context.Background(), "select version::text from poststack.schema_migrations order by version")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

var three = map[string]string{
	"0001_a.sql": "CREATE TABLE a (id int);\n", "0001_a.rollback.sql": "DROP TABLE a;\n",
	"0002_b.sql": "CREATE TABLE b (id int);\n", "0002_b.rollback.sql": "DROP TABLE b;\n",
	"0003_c.sql": "CREATE TABLE c (id int);\n", "0003_c.rollback.sql": "DROP TABLE c;\n",
}

// A repository's .env (or a stray variable) must not turn a bare `down` into "roll back
// everything", nor relax the drift check: --target, --steps and --allow-drift come from the
// command line only.
func TestAttackFallbacksDoNotDestroy(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, three)
	env := []string{"DATABASE_URL=" + db, "POSTSTACK_TARGET=0", "POSTSTACK_STEPS=3", "POSTSTACK_ALLOW_DRIFT=true"}
	write(t, filepath.Join(dir, ".env"), "POSTSTACK_TARGET=0\nPOSTSTACK_TARGET_VERSION=0\nPOSTSTACK_STEPS=3\nPOSTSTACK_ALLOW_DRIFT=true\n")
	if r := runIn(t, dir, env, "up"); r.code != 0 {
		t.Fatalf("up: exit %d %s", r.code, r.stderr)
	}
	r := runIn(t, dir, env, "down")
	if r.code != 2 || !strings.Contains(r.stderr, "say how far") {
		t.Fatalf("a bare down: exit %d, want 2 asking how far\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.Join(appliedVersions(t, db), ","); got != "1,2,3" {
		t.Fatalf("after a bare down with POSTSTACK_TARGET=0 in .env and the environment: applied %q, want 1,2,3", got)
	}
	if r := runIn(t, dir, env, "down", "--steps", "1"); r.code != 0 {
		t.Fatalf("down --steps 1: exit %d %s", r.code, r.stderr)
	}
	if got := strings.Join(appliedVersions(t, db), ","); got != "1,2" {
		t.Fatalf("down --steps 1 with POSTSTACK_STEPS=3 around: applied %q, want 1,2", got)
	}

	// Drift: an applied file changes; POSTSTACK_ALLOW_DRIFT must not let up go on.
	write(t, filepath.Join(dir, "migrations", "0001_a.sql"), "CREATE TABLE a (id bigint);\n")
	r = runIn(t, dir, env, "up")
	if r.code != 3 || !strings.Contains(r.stderr, "0001") {
		t.Fatalf("up with drift and POSTSTACK_ALLOW_DRIFT: exit %d, want 3\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := strings.Join(appliedVersions(t, db), ","); got != "1,2" {
		t.Fatalf("drifted up changed the ledger: %q", got)
	}
}

// verify --rollback's scratch database is the command line's to name: POSTSTACK_SCRATCH_URL in
// .env or the environment must not point the round trip (which rolls migrations back) at a
// database that holds data.
func TestAttackScratchURLFromDotEnvIsIgnored(t *testing.T) {
	db := testenv.Database(t)
	victim := testenv.Database(t)
	vconn := connect(t, victim)
	if _, err := vconn.Exec(context.Background(), "CREATE TABLE canary (v text); INSERT INTO canary VALUES ('alive')"); err != nil {
		t.Fatal(err)
	}
	dir := project(t, three)
	write(t, filepath.Join(dir, ".env"), "POSTSTACK_SCRATCH_URL="+victim+"\n")
	r := runIn(t, dir, []string{"DATABASE_URL=" + db, "POSTSTACK_SCRATCH_URL=" + victim}, "verify", "--rollback")
	if r.code != 0 {
		t.Fatalf("verify --rollback: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var n int
	if err := vconn.QueryRow(context.Background(),
		"select count(*) from pg_tables where schemaname = 'public' and tablename <> 'canary'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	var v string
	if err := vconn.QueryRow(context.Background(), "select v from canary").Scan(&v); err != nil || v != "alive" || n != 0 {
		t.Fatalf("the victim database was used: canary %q (%v), %d other tables", v, err, n)
	}
}

// A database URL from the project's .env ranks below DATABASE_URL and --env: a checkout cannot
// redirect `up` to another database on the machine.
func TestAttackDotEnvDatabaseURLRanksLast(t *testing.T) {
	db := testenv.Database(t)
	victim := testenv.Database(t)
	dir := project(t, three)
	write(t, filepath.Join(dir, ".env"), "POSTSTACK_DATABASE_URL="+victim+"\n")
	if r := runIn(t, dir, []string{"DATABASE_URL=" + db}, "up"); r.code != 0 {
		t.Fatalf("up: exit %d %s", r.code, r.stderr)
	}
	if got := strings.Join(appliedVersions(t, db), ","); got != "1,2,3" {
		t.Fatalf("DATABASE_URL's database: applied %q", got)
	}
	var n int
	if err := connect(t, victim).QueryRow(context.Background(),
		"select count(*) from pg_namespace where nspname = 'poststack'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the .env's database was migrated (%d, %v)", n, err)
	}
	// With nothing else named, the .env's URL is still used: that is what .env is for.
	os.Remove(filepath.Join(dir, ".env"))
	write(t, filepath.Join(dir, ".env"), "POSTSTACK_DATABASE_URL="+db+"\n")
	if r := runIn(t, dir, nil, "status"); r.code != 0 || !strings.Contains(r.stdout, "3 applied") {
		t.Fatalf("status from .env alone: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
