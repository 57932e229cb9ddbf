package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/envdb"
	"github.com/poststack/poststack/pkg/pgenv"
)

// dbProject is a project whose environment dev stands on the test server as an environment's
// container would: the application's role and database provisioned, the superuser's password
// kept in .poststack/ beside the application's.
type dbProject struct {
	dir, admin, db, role, password string
	environ                        []string
}

func newDBProject(t *testing.T) *dbProject {
	t.Helper()
	admin := testenv.Postgres(t)
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	adminPW, _ := u.User.Password()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(b)
	p := &dbProject{dir: t.TempDir(), admin: admin, db: "dbcmd_" + id, role: "dbcmd_" + id + "_user", password: "pw " + id + " @/:"}
	p.environ = []string{"HOME=" + filepath.Join(p.dir, "home"), "XDG_CACHE_HOME=" + filepath.Join(p.dir, "home", "cache")}
	ctx := context.Background()
	if err := pgenv.Provision(ctx, admin, p.db, p.role, p.password); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cleanup(t) })
	files := map[string]string{
		".poststack.yml": fmt.Sprintf("environment: dev\nproject:\n  name: dbcmd\nenvironments:\n  dev:\n    postgres:\n      database: %s\n      user: %s\n      port: %s\n    seed:\n      - db/seed.sql\n  external:\n    postgres:\n      url: %q\n",
			p.db, p.role, u.Port(), admin),
		"migrations/0001_items.sql":           "CREATE TABLE items (id int PRIMARY KEY);\n",
		"migrations/0002_one.sql":             "INSERT INTO items VALUES (1);\n",
		"db/seed.sql":                         "INSERT INTO items VALUES (10);\n",
		".poststack/.gitignore":               "*\n",
		".poststack/dbcmd-dev.password":       p.password + "\n",
		".poststack/dbcmd-dev.admin-password": adminPW + "\n",
	}
	if err := os.MkdirAll(filepath.Join(p.dir, ".poststack"), 0o700); err != nil {
		t.Fatal(err)
	}
	p.write(t, files)
	return p
}

func (p *dbProject) write(t *testing.T, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(p.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (p *dbProject) target() envdb.Target {
	return envdb.Target{AdminURL: p.admin, Database: p.db, Owner: p.role}
}

func (p *dbProject) cleanup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := envdb.Settle(ctx, p.target()); err != nil {
		t.Errorf("settle: %v", err)
	}
	conn, err := pgx.Connect(ctx, p.admin)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select datname from pg_database where datdba = (select oid from pg_roles where rolname = $1)", p.role)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	for _, n := range names {
		id := pgx.Identifier{n}.Sanitize()
		for _, q := range []string{"ALTER DATABASE " + id + " WITH IS_TEMPLATE false", "DROP DATABASE " + id + " WITH (FORCE)"} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Errorf("cleanup: %s: %v", q, err)
			}
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{p.role}.Sanitize()); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// ids are the rows of items, as the application's role sees them.
func (p *dbProject) ids(t *testing.T) []int {
	t.Helper()
	u, _ := url.Parse(p.admin)
	u.User, u.Path = url.UserPassword(p.role, p.password), "/"+p.db
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "select id from items order by id")
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func (p *dbProject) exec(t *testing.T, sql string) {
	t.Helper()
	u, _ := url.Parse(p.admin)
	u.User, u.Path = url.UserPassword(p.role, p.password), "/"+p.db
	conn, err := pgx.Connect(context.Background(), u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

func (p *dbProject) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	return runIn(t, p.dir, p.environ, args...)
}

func TestDBCommands(t *testing.T) {
	p := newDBProject(t)
	check := func(args []string, wantCode int, stdoutRE, stderrRE string) string {
		t.Helper()
		code, stdout, stderr := p.run(t, args...)
		if code != wantCode || !regexp.MustCompile(stdoutRE).MatchString(stdout) || !regexp.MustCompile(stderrRE).MatchString(stderr) {
			t.Errorf("ps-env %s: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout ~ %s, stderr ~ %s", strings.Join(args, " "), code, stdout, stderr, wantCode, stdoutRE, stderrRE)
		}
		if strings.Contains(stdout+stderr, p.password) {
			t.Errorf("ps-env %s shows the password", strings.Join(args, " "))
		}
		return stdout
	}
	db := regexp.QuoteMeta(p.db)

	check([]string{"db", "reset"}, 0, `^reset `+db+`: 2 migrations, 1 seed file, from template `+db+`__tpl_[0-9a-f]{16} \(built now\) in \d+ ms\n$`, ``)
	if got := p.ids(t); !slices.Equal(got, []int{1, 10}) {
		t.Errorf("after reset: %v", got)
	}
	p.exec(t, "INSERT INTO items VALUES (50)")
	out := check([]string{"--json", "db", "reset", "dev"}, 0, `"duration_ms": \d+`, ``)
	var res struct {
		Environment, Database string
		Built, Swapped        bool
		Seeds                 int
		Dropped               []string `json:"dropped_templates"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Environment != "dev" || res.Database != p.db || res.Built || !res.Swapped || res.Seeds != 1 || res.Dropped == nil {
		t.Errorf("--json db reset: %+v (%v)\n%s", res, err, out)
	}
	if got := p.ids(t); !slices.Equal(got, []int{1, 10}) {
		t.Errorf("after the second reset: %v", got)
	}
	check([]string{"db", "reset", "--no-seed"}, 0, `^reset `+db+`: 2 migrations, 0 seed files, from template .* \(built now\)`, ``)
	if got := p.ids(t); !slices.Equal(got, []int{1}) {
		t.Errorf("after reset --no-seed: %v", got)
	}

	p.exec(t, "INSERT INTO items VALUES (20)")
	check([]string{"db", "snapshot", "s1"}, 0, `^snapshot s1 of `+db+`: \d`, ``)
	check([]string{"db", "snapshot", "s1", "dev"}, 2, `^$`, `snapshot s1 of `+db+` exists .*--force`)
	check([]string{"db", "snapshot", "s1", "--force"}, 0, `^snapshot s1 of `, ``)
	check([]string{"db", "snapshot", `x"; drop database postgres; --`}, 2, `^$`, `snapshot name`)
	check([]string{"db", "snapshot"}, 2, `^$`, `missing argument`)
	p.exec(t, "DELETE FROM items")
	check([]string{"db", "restore", "s1"}, 0, `^restored `+db+` from snapshot s1 \(taken .*\) in \d+ ms\n$`, ``)
	if got := p.ids(t); !slices.Equal(got, []int{1, 20}) {
		t.Errorf("after restore: %v", got)
	}
	check([]string{"db", "restore", "nosuch"}, 2, `^$`, `no snapshot nosuch of `+db)
	check([]string{"db", "snapshots"}, 0, `^NAME +TAKEN +SIZE\ns1 +`, ``)
	out = check([]string{"--json", "db", "snapshots"}, 0, ``, ``)
	var list struct {
		Snapshots []struct {
			Name string
			Size int64 `json:"size_bytes"`
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Snapshots) != 1 || list.Snapshots[0].Name != "s1" || list.Snapshots[0].Size <= 0 {
		t.Errorf("--json db snapshots: %+v (%v)\n%s", list, err, out)
	}
	check([]string{"db", "drop-snapshot", "s1"}, 0, `^dropped snapshot s1 of `+db+`\n$`, ``)
	check([]string{"db", "drop-snapshot", "s1"}, 2, `^$`, `no snapshot s1`)
	check([]string{"db", "snapshots"}, 0, `^no snapshots of `+db+`\n$`, ``)
	check([]string{"--json", "db", "snapshots"}, 0, `"snapshots": \[\]`, ``)

	check([]string{"db", "reset", "external"}, 2, `^$`, `environment external: db reset needs the environment's own PostgreSQL container; for an external database use ps-migrate`)
	check([]string{"db", "reset", "nope"}, 2, `^$`, `environment "nope" is not defined`)
	check([]string{"db", "reset", "dev", "more"}, 2, `^$`, `unexpected argument "more"`)
	check([]string{"db"}, 2, `^$`, ``)
	check([]string{"--migrations-path", "nowhere", "db", "reset"}, 2, `^$`, `migrations directory nowhere: not found`)

	// A failing seed names the file as .poststack.yml does, and leaves the database alone.
	p.write(t, map[string]string{"db/seed.sql": "INSERT INTO items VALUES (11);\nINSERT INTO nope VALUES (1);\n"})
	check([]string{"db", "reset"}, 1, `^$`, `\nps-env: db/seed.sql:2:13: ERROR: relation "nope" does not exist \(SQLSTATE 42P01\)\n`)
	if got := p.ids(t); !slices.Equal(got, []int{1, 20}) {
		t.Errorf("after a failed reset: %v", got)
	}
}
