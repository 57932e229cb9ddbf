package envdb_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/envdb"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/progress"
)

// world is an environment emulated on the test server: an owner role and its database, as
// pgenv.Provision makes them, and a project directory of migrations and seeds.
type world struct {
	admin   string
	dir     string
	target  envdb.Target
	ownerPW string
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

var baseMigrations = map[string]string{
	"migrations/0001_items.sql":          "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);\n",
	"migrations/0001_items.rollback.sql": "DROP TABLE items;\n",
	"migrations/0002_base.sql":           "INSERT INTO items VALUES (1, 'from a migration');\n",
	"db/seed.sql":                        "-- seed rows\nINSERT INTO items VALUES (10, 'seeded');\nINSERT INTO items VALUES (11, 'seeded too');\n",
}

// newWorld provisions an environment whose database is called db (random when "") on the test
// server.
func newWorld(t testing.TB, db string) *world {
	t.Helper()
	return newWorldOn(t, testenv.Postgres(t), db)
}

// newWorldOn is newWorld on the server of the superuser URL admin.
func newWorldOn(t testing.TB, admin, db string) *world {
	t.Helper()
	id := randomHex(t, 4)
	if db == "" {
		db = "envdb_" + id
	}
	w := &world{admin: admin, dir: t.TempDir(), ownerPW: "pw " + randomHex(t, 8) + " '\"\\"}
	owner := "envdb_owner_" + id
	ctx := context.Background()
	if err := pgenv.Provision(ctx, admin, db, owner, w.ownerPW); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// A reset leaves the next spare to the server: wait for it, or it would outlive the role.
		if err := envdb.Settle(context.Background(), w.target); err != nil {
			t.Errorf("settle: %v", err)
		}
		cleanup(t, admin, owner)
	})
	w.write(t, baseMigrations)
	w.target = envdb.Target{
		AdminURL: admin, Database: db, Owner: owner, OwnerPassword: w.ownerPW,
		Seeds: []string{filepath.Join(w.dir, "db", "seed.sql")}, SeedRoot: w.dir,
	}
	w.load(t)
	return w
}

// cleanup drops every database the owner owns, templates included, and the owner.
func cleanup(t testing.TB, admin, owner string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("cleanup: %v", err)
		return
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "select datname from pg_database where datdba = (select oid from pg_roles where rolname = $1)", owner)
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
		if _, err := conn.Exec(ctx, "ALTER DATABASE "+id+" WITH IS_TEMPLATE false"); err != nil {
			t.Errorf("cleanup %s: %v", n, err)
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE "+id+" WITH (FORCE)"); err != nil {
			t.Errorf("cleanup %s: %v", n, err)
		}
	}
	if _, err := conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{owner}.Sanitize()); err != nil {
		t.Errorf("cleanup: drop role %s: %v", owner, err)
	}
}

func (w *world) write(t testing.TB, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(w.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// load reads the migrations again, as every run of ps-env does.
func (w *world) load(t testing.TB) {
	t.Helper()
	migs, err := migrate.LoadDir(filepath.Join(w.dir, "migrations"))
	if err != nil {
		t.Fatal(err)
	}
	w.target.Migrations = migs
}

// url is the database's URL as the application's role.
func (w *world) url(t testing.TB) string {
	t.Helper()
	u, err := url.Parse(w.admin)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(w.target.Owner, w.ownerPW)
	u.Path = "/" + w.target.Database
	return u.String()
}

func (w *world) conn(t testing.TB) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.url(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// ids returns the ids in items, as the application sees them.
func (w *world) ids(t testing.TB) []int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.url(t))
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

func (w *world) exec(t testing.TB, sql string) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), w.url(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatal(err)
	}
}

// databases lists the names on the server that start with prefix, with datistemplate, once the
// background work of the last reset is done.
func (w *world) databases(t testing.TB, prefix string) map[string]bool {
	t.Helper()
	if err := envdb.Settle(context.Background(), w.target); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), w.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "select datname, datistemplate from pg_database where starts_with(datname, $1)", prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var name string
		var tpl bool
		if err := rows.Scan(&name, &tpl); err != nil {
			t.Fatal(err)
		}
		out[name] = tpl
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func reset(t testing.TB, w *world, opts envdb.ResetOptions) *envdb.ResetResult {
	t.Helper()
	res, err := envdb.Reset(context.Background(), w.target, opts)
	if err != nil {
		t.Fatalf("reset: %v", err)
	}
	return res
}

func TestResetBuildsThenClones(t *testing.T) {
	w := newWorld(t, "")
	var events []progress.Event
	res := reset(t, w, envdb.ResetOptions{Progress: func(e progress.Event) { events = append(events, e) }})
	if !res.Built || res.Swapped || res.Migrations != 2 || res.Seeds != 1 || res.Database != w.target.Database {
		t.Errorf("first reset = %+v, want a built template cloned, 2 migrations, 1 seed", res)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11}) {
		t.Errorf("after the first reset: ids %v, want [1 10 11]", got)
	}
	var steps []string
	for _, e := range events {
		if e.Kind == progress.Done {
			steps = append(steps, e.Op+": "+e.Step)
		}
	}
	wantSteps := []string{"migrate: up 0001_items", "migrate: up 0002_base", "envdb: seed db/seed.sql", "envdb: template " + res.Template}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("progress steps %q, want %q", steps, wantSteps)
	}
	if dbs := w.databases(t, w.target.Database); len(dbs) != 3 || !dbs[res.Template] || dbs[w.target.Database] {
		t.Errorf("databases %v: want the database, its template and a spare", dbs)
	}

	// The application's objects and the ledger are the owner's, the ledger complete.
	conn := w.conn(t)
	var owner string
	if err := conn.QueryRow(context.Background(), "select tableowner from pg_tables where tablename = 'items'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != w.target.Owner {
		t.Errorf("items is owned by %s, want %s", owner, w.target.Owner)
	}
	var applied int
	if err := conn.QueryRow(context.Background(), "select count(*) from poststack.schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 2 {
		t.Errorf("ledger has %d rows, want 2", applied)
	}
	var dbOwner string
	if err := conn.QueryRow(context.Background(), "select pg_get_userbyid(datdba) from pg_database where datname = current_database()").Scan(&dbOwner); err != nil {
		t.Fatal(err)
	}
	if dbOwner != w.target.Owner {
		t.Errorf("the database is owned by %s, want %s", dbOwner, w.target.Owner)
	}
	conn.Close(context.Background())

	// A change of the data, and a session left open: the next reset clones the template.
	w.exec(t, "INSERT INTO items VALUES (99, 'the application wrote this')")
	open := w.conn(t)
	events = nil
	res2 := reset(t, w, envdb.ResetOptions{Progress: func(e progress.Event) { events = append(events, e) }})
	if res2.Built || !res2.Swapped || res2.Template != res.Template {
		t.Errorf("second reset = %+v, want the spare copy of %s swapped in", res2, res.Template)
	}
	if len(events) != 0 {
		t.Errorf("a clone reported %d events, want none: %v", len(events), events)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11}) {
		t.Errorf("after the second reset: ids %v, want [1 10 11]", got)
	}
	if err := open.Ping(context.Background()); err == nil {
		t.Error("the session open during the reset still works; it was on the dropped database")
	}
	// The old database, renamed away, is dropped in the background, and a new spare made.
	if dbs := w.databases(t, w.target.Database); len(dbs) != 3 || !dbs[res.Template] || dbs[w.target.Database] {
		t.Errorf("databases after the swap %v: want the database, its template and a spare", dbs)
	}
	if res3 := reset(t, w, envdb.ResetOptions{}); !res3.Swapped {
		t.Errorf("third reset = %+v, want a spare swapped in", res3)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11}) {
		t.Errorf("after the third reset: ids %v, want [1 10 11]", got)
	}
}

func TestResetNoSeed(t *testing.T) {
	w := newWorld(t, "")
	seeded := reset(t, w, envdb.ResetOptions{})
	bare := reset(t, w, envdb.ResetOptions{NoSeed: true})
	if !bare.Built || bare.Seeds != 0 || bare.Template == seeded.Template {
		t.Errorf("--no-seed reset = %+v, want its own template, no seeds", bare)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1}) {
		t.Errorf("after --no-seed: ids %v, want [1]", got)
	}
	// Both templates stay: alternating does not rebuild.
	again := reset(t, w, envdb.ResetOptions{})
	if again.Built || again.Template != seeded.Template || len(bare.Dropped) != 0 {
		t.Errorf("seeded again = %+v (bare dropped %v), want a clone of %s", again, bare.Dropped, seeded.Template)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11}) {
		t.Errorf("seeded again: ids %v, want [1 10 11]", got)
	}
	// An environment without seed files: --no-seed or not, the same template.
	w.target.Seeds = nil
	none := reset(t, w, envdb.ResetOptions{})
	if none.Built || none.Template != bare.Template {
		t.Errorf("no seed files = %+v, want a clone of %s", none, bare.Template)
	}
}

func TestResetAfterEdits(t *testing.T) {
	w := newWorld(t, "")
	first := reset(t, w, envdb.ResetOptions{})

	w.write(t, map[string]string{"migrations/0003_more.sql": "INSERT INTO items VALUES (2, 'a new migration');\n"})
	w.load(t)
	second := reset(t, w, envdb.ResetOptions{})
	if !second.Built || second.Template == first.Template || !slices.Equal(second.Dropped, []string{first.Template}) {
		t.Errorf("after a new migration: %+v, want a new template replacing %s", second, first.Template)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 2, 10, 11}) {
		t.Errorf("after a new migration: ids %v, want [1 2 10 11]", got)
	}

	w.write(t, map[string]string{"db/seed.sql": "INSERT INTO items VALUES (12, 'an edited seed');\n"})
	third := reset(t, w, envdb.ResetOptions{})
	if !third.Built || third.Template == second.Template {
		t.Errorf("after a seed edit: %+v, want a new template", third)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 2, 12}) {
		t.Errorf("after a seed edit: ids %v, want [1 2 12]", got)
	}
	if dbs := w.databases(t, w.target.Database); len(dbs) != 3 {
		t.Errorf("databases %v: want the database, one template and its spare", dbs)
	}
}

func TestResetFailures(t *testing.T) {
	w := newWorld(t, "")
	reset(t, w, envdb.ResetOptions{})
	w.exec(t, "INSERT INTO items VALUES (99, 'kept')")
	before := w.databases(t, w.target.Database)

	w.write(t, map[string]string{"migrations/0003_bad.sql": "INSERT INTO items VALUES (3, 'x');\nSELECT no_such_column FROM items;\n"})
	w.load(t)
	_, err := envdb.Reset(context.Background(), w.target, envdb.ResetOptions{})
	var me *migrate.MigrationError
	if !errors.As(err, &me) || me.Line != 2 || exitcode.Of(err) != exitcode.Failure {
		t.Errorf("failing migration: %v (exit %d), want a MigrationError at line 2, exit 1", err, exitcode.Of(err))
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 99}) {
		t.Errorf("after a failed reset: ids %v, want the database untouched", got)
	}
	if after := w.databases(t, w.target.Database); len(after) != len(before) {
		t.Errorf("databases after the failed build %v, before %v: the scratch database stayed", after, before)
	}

	os.Remove(filepath.Join(w.dir, "migrations", "0003_bad.sql"))
	w.load(t)
	w.write(t, map[string]string{"db/seed.sql": "INSERT INTO items VALUES (10, 'ok');\n\n  INSERT INTO nope VALUES (1);\n"})
	_, err = envdb.Reset(context.Background(), w.target, envdb.ResetOptions{})
	var se *envdb.SeedError
	want := `db/seed.sql:3:15: ERROR: relation "nope" does not exist (SQLSTATE 42P01)`
	if !errors.As(err, &se) || err.Error() != want || exitcode.Of(err) != exitcode.Failure {
		t.Errorf("failing seed: %v (exit %d), want %s, exit 1", err, exitcode.Of(err), want)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 99}) {
		t.Errorf("after a failed seed: ids %v, want the database untouched", got)
	}

	// A seed file outside the project is not read.
	outside := filepath.Join(t.TempDir(), "outside.sql")
	if err := os.WriteFile(outside, []byte("INSERT INTO items VALUES (50, 'outside');\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(w.dir, "db", "link.sql")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	w.target.Seeds = []string{link}
	_, err = envdb.Reset(context.Background(), w.target, envdb.ResetOptions{})
	if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "outside the project directory") {
		t.Errorf("seed link out of the project: %v (exit %d), want exit 2", err, exitcode.Of(err))
	}
}

func TestResetWithoutOwnerPassword(t *testing.T) {
	w := newWorld(t, "")
	w.target.OwnerPassword = ""
	reset(t, w, envdb.ResetOptions{})
	var owner string
	if err := w.conn(t).QueryRow(context.Background(), "select tableowner from pg_tables where tablename = 'items'").Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != w.target.Owner {
		t.Errorf("under SET ROLE, items is owned by %s, want %s", owner, w.target.Owner)
	}
}

func TestSnapshotRestore(t *testing.T) {
	w := newWorld(t, "")
	ctx := context.Background()
	reset(t, w, envdb.ResetOptions{})
	w.exec(t, "INSERT INTO items VALUES (20, 'before the snapshot')")
	open := w.conn(t) // a session the snapshot must end
	snap, err := envdb.TakeSnapshot(ctx, w.target, "before", envdb.SnapshotOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Name != "before" || snap.Size <= 0 || snap.Created.IsZero() {
		t.Errorf("snapshot = %+v", snap)
	}
	if err := open.Ping(ctx); err == nil {
		t.Error("the session open during the snapshot still works")
	}
	w.exec(t, "DELETE FROM items WHERE id < 20; INSERT INTO items VALUES (30, 'after')")

	res, err := envdb.Restore(ctx, w.target, "before")
	if err != nil {
		t.Fatal(err)
	}
	if res.Snapshot.Template != snap.Template || res.Database != w.target.Database {
		t.Errorf("restore = %+v", res)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 20}) {
		t.Errorf("after restore: ids %v, want [1 10 11 20]", got)
	}
	// A snapshot stays for later restores.
	w.exec(t, "DELETE FROM items")
	if _, err := envdb.Restore(ctx, w.target, "before"); err != nil {
		t.Fatal(err)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 20}) {
		t.Errorf("after a second restore: ids %v, want [1 10 11 20]", got)
	}

	// An existing name needs --force.
	w.exec(t, "INSERT INTO items VALUES (21, 'second take')")
	_, err = envdb.TakeSnapshot(ctx, w.target, "before", envdb.SnapshotOptions{})
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "--force") {
		t.Errorf("snapshot over an existing name: %v (exit %d), want exit 2 naming --force", err, exitcode.Of(err))
	}
	if _, err := envdb.TakeSnapshot(ctx, w.target, "before", envdb.SnapshotOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := envdb.TakeSnapshot(ctx, w.target, "other.one-2", envdb.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	w.exec(t, "DELETE FROM items")
	if _, err := envdb.Restore(ctx, w.target, "before"); err != nil {
		t.Fatal(err)
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 20, 21}) {
		t.Errorf("after restoring the replaced snapshot: ids %v, want [1 10 11 20 21]", got)
	}

	// Restoring what is not there leaves the database alone.
	_, err = envdb.Restore(ctx, w.target, "nosuch")
	if exitcode.Of(err) != exitcode.Usage {
		t.Errorf("restore of a missing snapshot: %v (exit %d), want exit 2", err, exitcode.Of(err))
	}
	if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 20, 21}) {
		t.Errorf("after a failed restore: ids %v", got)
	}

	// Listed: the two snapshots, not the template, not a database dressed up as a snapshot, not
	// another database's snapshot.
	other := newWorld(t, "")
	reset(t, other, envdb.ResetOptions{})
	if _, err := envdb.TakeSnapshot(ctx, other.target, "theirs", envdb.SnapshotOptions{}); err != nil {
		t.Fatal(err)
	}
	forged := w.target.Database + "__snap_forged"
	admin, err := pgx.Connect(ctx, w.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	for _, q := range []string{
		"CREATE DATABASE " + pgx.Identifier{forged}.Sanitize() + " OWNER " + pgx.Identifier{w.target.Owner}.Sanitize(),
		"ALTER DATABASE " + pgx.Identifier{forged}.Sanitize() + " WITH IS_TEMPLATE true",
		// The right name, but another database's mark.
		"COMMENT ON DATABASE " + pgx.Identifier{forged}.Sanitize() + ` IS 'poststack-envdb {"kind":"snapshot","database":"` + w.target.Database + `","name":"forged-elsewhere"}'`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	list, err := envdb.Snapshots(ctx, w.target)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range list {
		names = append(names, s.Name)
		if s.Size <= 0 {
			t.Errorf("snapshot %s has size %d", s.Name, s.Size)
		}
	}
	if !slices.Equal(names, []string{"before", "other.one-2"}) {
		t.Errorf("snapshots %q, want [before other.one-2]", names)
	}
	if _, err := envdb.Restore(ctx, w.target, "forged"); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("restore of the forged snapshot: %v, want exit 2", err)
	}
	if _, err := envdb.TakeSnapshot(ctx, w.target, "forged", envdb.SnapshotOptions{Force: true}); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("snapshot over a database that is not one: %v, want exit 2", err)
	}

	dropped, err := envdb.DropSnapshot(ctx, w.target, "other.one-2")
	if err != nil {
		t.Fatal(err)
	}
	if dbs := w.databases(t, w.target.Database); func() bool { _, ok := dbs[dropped.Template]; return ok }() {
		t.Errorf("%s is still there after DropSnapshot", dropped.Template)
	}
	if _, err := envdb.DropSnapshot(ctx, w.target, "other.one-2"); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("dropping it twice: %v, want exit 2", err)
	}
	if list, err := envdb.Snapshots(ctx, other.target); err != nil || len(list) != 1 || list[0].Name != "theirs" {
		t.Errorf("the other database's snapshots: %v, %v", list, err)
	}
}

func TestSnapshotNames(t *testing.T) {
	w := newWorld(t, "")
	ctx := context.Background()
	reset(t, w, envdb.ResetOptions{})
	before := w.databases(t, "")
	for _, name := range []string{
		"", "-x", ".x", "a b", "ü", "a/b", `x"; drop database postgres; --`, "x'; drop database postgres; --",
		strings.Repeat("a", envdb.MaxSnapshotName+1),
	} {
		if _, err := envdb.TakeSnapshot(ctx, w.target, name, envdb.SnapshotOptions{}); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("snapshot %q: %v, want exit 2", name, err)
		}
		if _, err := envdb.Restore(ctx, w.target, name); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("restore %q: %v, want exit 2", name, err)
		}
		if _, err := envdb.DropSnapshot(ctx, w.target, name); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("drop %q: %v, want exit 2", name, err)
		}
	}
	if after := w.databases(t, ""); len(after) != len(before) {
		t.Errorf("refused names changed the databases: %d before, %d after", len(before), len(after))
	}
	if _, err := envdb.TakeSnapshot(ctx, w.target, strings.Repeat("a", envdb.MaxSnapshotName), envdb.SnapshotOptions{}); err != nil {
		t.Errorf("the longest name: %v", err)
	}
}

// TestHostileDatabaseName: a database name full of SQL is a name, and one of 63 bytes still
// leaves room for its templates' and snapshots' names.
func TestHostileDatabaseName(t *testing.T) {
	for _, db := range []string{
		`x"; DROP DATABASE postgres; --` + randomHex(t, 3),
		"é" + strings.Repeat("x", 55) + randomHex(t, 3), // 63 bytes, a two-byte character first
	} {
		t.Run(db[:8], func(t *testing.T) {
			w := newWorld(t, db)
			ctx := context.Background()
			res := reset(t, w, envdb.ResetOptions{})
			if len(res.Template) > 63 {
				t.Errorf("template name %q is %d bytes", res.Template, len(res.Template))
			}
			w.exec(t, "INSERT INTO items VALUES (40, 'x')")
			snap, err := envdb.TakeSnapshot(ctx, w.target, strings.Repeat("s", envdb.MaxSnapshotName), envdb.SnapshotOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(snap.Template) > 63 {
				t.Errorf("snapshot name %q is %d bytes", snap.Template, len(snap.Template))
			}
			if again := reset(t, w, envdb.ResetOptions{}); again.Built {
				t.Error("the second reset built the template again: its name was not found")
			}
			if _, err := envdb.Restore(ctx, w.target, snap.Name); err != nil {
				t.Fatal(err)
			}
			if got := w.ids(t); !slices.Equal(got, []int{1, 10, 11, 40}) {
				t.Errorf("after restore: ids %v", got)
			}
			if list, err := envdb.Snapshots(ctx, w.target); err != nil || len(list) != 1 {
				t.Errorf("snapshots %v, %v: want one", list, err)
			}
			if dbs := w.databases(t, "postgres"); len(dbs) == 0 {
				t.Error("the postgres database is gone")
			}
		})
	}
}

func TestTargetChecked(t *testing.T) {
	w := newWorld(t, "")
	for name, edit := range map[string]func(*envdb.Target){
		"no admin URL": func(t *envdb.Target) { t.AdminURL = "" },
		"no database":  func(t *envdb.Target) { t.Database = "" },
		"no owner":     func(t *envdb.Target) { t.Owner = "" },
		"template1":    func(t *envdb.Target) { t.Database = "template1" },
		"postgres":     func(t *envdb.Target) { t.Database = "postgres" },
		"too long":     func(t *envdb.Target) { t.Database = strings.Repeat("x", 64) },
		"the admin's own": func(t *envdb.Target) {
			u, _ := url.Parse(t.AdminURL)
			u.Path = "/" + t.Database
			t.AdminURL = u.String()
		},
		"bad admin URL":     func(t *envdb.Target) { t.AdminURL = "postgres://%zz" },
		"nul in the name":   func(t *envdb.Target) { t.Database = "a\x00b" },
		"invalid UTF-8 too": func(t *envdb.Target) { t.Owner = "\xff" },
	} {
		tg := w.target
		edit(&tg)
		if _, err := envdb.Reset(context.Background(), tg, envdb.ResetOptions{}); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("%s: %v, want exit 2", name, err)
		}
	}
}
