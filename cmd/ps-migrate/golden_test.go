package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/migrate"
)

// update rewrites testdata/golden from the current output:
//
//	go test ./cmd/ps-migrate/ -run TestGolden -update
var update = flag.Bool("update", false, "rewrite testdata/golden/* from the current output")

// goldenStep is one command line of a scenario; its golden file is
// testdata/golden/<scenario>/<name>.txt.
type goldenStep struct {
	name string
	// args are the command line; {{SCRATCH}} stands for the scenario's
	// scratch database URL.
	args []string
	// env replaces the scenario's environment (DATABASE_URL=<its database>).
	env []string
	// before runs first: it edits files or takes a lock.
	before func(t *testing.T, g *goldenFixture)
	// noStderr leaves stderr out where it is not ours to keep stable (a
	// message of pg_dump or of the dialer).
	noStderr bool
	// files are shown after the output, relative to the project directory.
	files []string
}

// goldenFixture is one scenario's project, database and replacements.
type goldenFixture struct {
	dir     string
	db      string // the database URL
	scratch string // an empty second database, for --scratch-url
	// repl are the exact strings that vary between runs and what stands
	// for them in the golden files, applied in order.
	repl []string
}

// goldenPatterns are the variable parts that have no one known value:
// times, durations and the ledger's applied_by (user@host).
var goldenPatterns = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?`), "TIME"},
	{regexp.MustCompile(`\d{8}T\d{6}Z`), "YYYYMMDDThhmmssZ"},
	{regexp.MustCompile(`"duration_ms": \d+`), `"duration_ms": N`},
	{regexp.MustCompile(`"applied_by": "[^"]*"`), `"applied_by": "USER@HOST"`},
	// "applied 0001_users (3ms)", "… is ready (12ms)".
	{regexp.MustCompile(`\(\d+(\.\d+)?(ns|µs|ms|s)\)`), "(DURATION)"},
	// The DURATION column of status, after APPLIED AT.
	{regexp.MustCompile(`(TIME +)\d+(\.\d+)?(ns|µs|ms|s)`), "${1}DURATION"},
	// The duration cell of a step-summary row: "| 1 | users | up | 3ms |".
	{regexp.MustCompile(`\| \d+(\.\d+)?(ns|µs|ms|s) \|`), "| DURATION |"},
	{regexp.MustCompile(`poststack_verify_[0-9a-z_]+`), "poststack_verify_RANDOM"},
}

func (g *goldenFixture) normalise(s string) string {
	for i := 0; i+1 < len(g.repl); i += 2 {
		if g.repl[i] != "" {
			s = strings.ReplaceAll(s, g.repl[i], g.repl[i+1])
		}
	}
	for _, p := range goldenPatterns {
		s = p.re.ReplaceAllString(s, p.with)
	}
	return s
}

// newGoldenFixture makes the project of files, with databases when withDB.
func newGoldenFixture(t *testing.T, files map[string]string, withDB bool) *goldenFixture {
	t.Helper()
	g := &goldenFixture{dir: project(t, files)}
	g.repl = append(g.repl, g.dir, "$DIR")
	if !withDB {
		return g
	}
	g.db, g.scratch = testenv.Database(t), testenv.Database(t)
	for _, u := range []string{g.db, g.scratch} {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := p.User.Password()
		// Longest first: the URLs, then their parts.
		g.repl = append([]string{u, "$URL"}, g.repl...)
		g.repl = append(g.repl, pw, "$PASSWORD", url.QueryEscape(pw), "$PASSWORD")
		name := strings.TrimPrefix(p.Path, "/")
		if u == g.db {
			g.repl = append(g.repl, name, "$DB")
		} else {
			g.repl = append(g.repl, name, "$SCRATCH")
		}
		user := p.User.Username()
		g.repl = append(g.repl, user+"@"+p.Host, "$USER@$HOST:$PORT", p.Host, "$HOST:$PORT",
			"user "+user+",", "user $USER,", `"user": "`+user+`"`, `"user": "$USER"`,
			`"host": "`+p.Hostname()+`"`, `"host": "$HOST"`, `"port": `+p.Port()+",", `"port": $PORT,`)
	}
	var version string
	if err := connect(t, g.db).QueryRow(context.Background(), "select current_setting('server_version')").Scan(&version); err != nil {
		t.Fatal(err)
	}
	g.repl = append(g.repl, version, "$SERVER_VERSION")
	return g
}

// runGolden runs the steps of a scenario in order and compares each with
// its golden file.
func runGolden(t *testing.T, scenario string, g *goldenFixture, steps []goldenStep) {
	t.Helper()
	dir := filepath.Join("testdata", "golden", scenario)
	var names []string
	for _, s := range steps {
		if s.before != nil {
			s.before(t, g)
		}
		env := s.env
		if env == nil && g.db != "" {
			env = []string{"DATABASE_URL=" + g.db}
		}
		args := make([]string, len(s.args))
		for i, a := range s.args {
			args[i] = strings.ReplaceAll(a, "{{SCRATCH}}", g.scratch)
		}
		r := runIn(t, g.dir, env, args...)
		var b strings.Builder
		fmt.Fprintf(&b, "$ ps-migrate %s\nexit %d\n-- stdout --\n%s", strings.Join(s.args, " "), r.code, r.stdout)
		if !s.noStderr {
			fmt.Fprintf(&b, "-- stderr --\n%s", r.stderr)
		}
		for _, f := range s.files {
			data, err := os.ReadFile(filepath.Join(g.dir, f))
			if err != nil {
				t.Fatalf("%s: %v", s.name, err)
			}
			fmt.Fprintf(&b, "-- file %s --\n%s", f, data)
		}
		got := g.normalise(b.String())
		path := filepath.Join(dir, s.name+".txt")
		names = append(names, s.name+".txt")
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run with -update to create it)", s.name, err)
			continue
		}
		if got != string(want) {
			t.Errorf("%s: output differs from %s\n--- got\n%s\n--- want\n%s", s.name, path, got, want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !slices.Contains(names, e.Name()) {
			if *update {
				os.Remove(filepath.Join(dir, e.Name()))
				continue
			}
			t.Errorf("%s: no step writes it; remove it or run with -update", filepath.Join(dir, e.Name()))
		}
	}
}

func words(s string) []string { return strings.Fields(s) }

func TestGoldenLifecycle(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	runGolden(t, "lifecycle", g, []goldenStep{
		{name: "status-pending", args: words("status")},
		{name: "status-pending-json", args: words("status --json")},
		{name: "status-pending-exit-code", args: words("status --exit-code")},
		{name: "up-dry-run", args: words("up --dry-run")},
		{name: "up-dry-run-json", args: words("up --dry-run --json")},
		{name: "up-target-dry-run", args: words("up --target 1 --dry-run")},
		{name: "up-json", args: words("up --json")},
		{name: "migrate-nothing", args: words("migrate")},
		{name: "up-nothing-json", args: words("up --json")},
		{name: "up-dry-run-nothing", args: words("up --dry-run")},
		{name: "up-dry-run-nothing-json", args: words("up --dry-run --json")},
		{name: "status-applied", args: words("status")},
		{name: "status-applied-json", args: words("status --json")},
		{name: "migration-status-exit-code", args: words("migration-status --exit-code")},
		{name: "verify", args: words("verify")},
		{name: "verify-json", args: words("verify --json")},
		{name: "down-dry-run", args: words("down --steps 1 --dry-run")},
		{name: "down-dry-run-json", args: words("down --steps 1 --dry-run --json")},
		{name: "down-dry-run-all", args: words("down --target 0 --dry-run")},
		{name: "rollback-steps", args: words("rollback --steps 1")},
		{name: "down-json", args: words("down --target 0 --json")},
		{name: "down-nothing", args: words("down --target 0")},
		{name: "down-nothing-json", args: words("down --target 0 --json")},
		{name: "down-dry-run-nothing", args: words("down --target 0 --dry-run")},
		{name: "up", args: words("up")},
		{name: "down-target-version", args: words("down --target-version 0")},
		{name: "up-target", args: words("up --target-version 1")},
		{name: "down-no-target", args: words("down")},
		{name: "down-target-and-steps", args: words("down --target 1 --steps 1")},
		{name: "down-negative-steps", args: words("down --steps -1")},
		{name: "up-extra-argument", args: words("up extra")},
		{name: "up-unknown-flag", args: words("up --frobnicate")},
		{name: "unknown-command", args: words("frobnicate")},
		{name: "no-command", args: nil},
	})
}

func TestGoldenFailingMigration(t *testing.T) {
	files := map[string]string{
		"0001_ok.sql":  "CREATE TABLE a (id int PRIMARY KEY);\n",
		"0002_bad.sql": "-- Description: inserts\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES ('x');\n",
	}
	g := newGoldenFixture(t, files, true)
	runGolden(t, "failing", g, []goldenStep{
		{name: "up", args: words("up")},
		{name: "status", args: words("status")},
		{name: "up-again-json", args: words("up --json")},
	})
	g = newGoldenFixture(t, files, true)
	runGolden(t, "failing-json", g, []goldenStep{
		{name: "up-json", args: words("up --json")},
	})
}

// TestGoldenLedgerRollback rolls back a migration whose files are gone,
// from the SQL the ledger stored.
func TestGoldenLedgerRollback(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	runGolden(t, "ledger-rollback", g, []goldenStep{
		{name: "up", args: words("up")},
		{name: "down-dry-run", args: words("down --steps 1 --dry-run"), before: func(t *testing.T, g *goldenFixture) {
			for _, f := range []string{"0002_email_index.sql", "0002_email_index.rollback.sql"} {
				if err := os.Remove(filepath.Join(g.dir, "migrations", f)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "down-dry-run-json", args: words("down --steps 1 --dry-run --json")},
		{name: "down", args: words("down --steps 1")},
		{name: "status", args: words("status")},
	})
}

// TestJSONErrorIsOneLine: the error of up --json is the message alone; the
// caret and DETAIL lines are stderr's.
func TestJSONErrorIsOneLine(t *testing.T) {
	files := map[string]string{
		"0001_a.sql":   "CREATE TABLE a (id int PRIMARY KEY);\n",
		"0002_dup.sql": "INSERT INTO a VALUES (1);\n\tINSERT INTO a VALUES (1);\n",
	}
	dir := project(t, files)
	r := runIn(t, dir, []string{"DATABASE_URL=" + testenv.Database(t)}, "up", "--json")
	var got struct {
		Error   string            `json:"error"`
		Results []json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 1 {
		t.Fatalf("exit %d, %v\n%s", r.code, err, r.stdout)
	}
	const want = `migrations/0002_dup.sql:2:2: ERROR: duplicate key value violates unique constraint "a_pkey" (SQLSTATE 23505)`
	if got.Error != want || strings.ContainsAny(got.Error, "\n^") || len(got.Results) != 1 {
		t.Errorf("error %q, %d results; want %q and 1 result", got.Error, len(got.Results), want)
	}
	if !strings.Contains(r.stderr, want+"\nDETAIL: Key (id)=(1) already exists.\n 2 | \tINSERT INTO a VALUES (1);\n   | \t^\n") {
		t.Errorf("stderr lacks the detail and caret:\n%s", r.stderr)
	}
}

func TestGoldenFailingDetails(t *testing.T) {
	dup := map[string]string{
		"0001_a.sql":   "CREATE TABLE a (id int PRIMARY KEY);\n",
		"0002_dup.sql": "INSERT INTO a VALUES (1);\n\tINSERT INTO a VALUES (1);\n",
	}
	runGolden(t, "failing-detail", newGoldenFixture(t, dup, true), []goldenStep{
		{name: "up", args: words("up")},
		{name: "up-json", args: words("up --json")},
	})
	raise := map[string]string{
		"0001_raise.sql": "DO $$ BEGIN RAISE EXCEPTION 'boom' USING DETAIL = 'the detail', HINT = 'the hint'; END $$;\n",
	}
	runGolden(t, "failing-raise", newGoldenFixture(t, raise, true), []goldenStep{
		{name: "up", args: words("up")},
	})
	conc := map[string]string{
		"0001_a.sql":   "CREATE TABLE a (id int);\n",
		"0002_idx.sql": "CREATE INDEX CONCURRENTLY a_id ON a (id);\n",
	}
	runGolden(t, "failing-concurrently", newGoldenFixture(t, conc, true), []goldenStep{
		{name: "up", args: words("up")},
	})
	notx := map[string]string{
		"0001_a.sql":  "CREATE TABLE a (id int);\n",
		"0002_nt.sql": "-- poststack:no-transaction\nINSERT INTO a VALUES (1);\nINSERT INTO a VALUES ('x');\n",
	}
	runGolden(t, "failing-no-transaction", newGoldenFixture(t, notx, true), []goldenStep{
		{name: "up", args: words("up")},
	})
}

// TestGoldenGitHubActions pins what a failing run prints under Actions:
// the annotation, the groups and the step summary.
func TestGoldenGitHubActions(t *testing.T) {
	files := map[string]string{
		"0001_ok.sql":  "CREATE TABLE a (id int PRIMARY KEY);\n",
		"0002_bad.sql": "INSERT INTO a VALUES (1);\nSELECT nosuchfunction(1);\n",
	}
	g := newGoldenFixture(t, files, true)
	env := []string{"DATABASE_URL=" + g.db, "GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY=" + filepath.Join(g.dir, "summary.md")}
	runGolden(t, "actions", g, []goldenStep{
		{name: "up", args: words("up"), env: env, files: []string{"summary.md"}},
	})
}

func TestGoldenBadFiles(t *testing.T) {
	files := map[string]string{
		"0001_a.sql":          "select 1;\n",
		"1_duplicate.sql":     "select 1;\n",
		"0003_x.rollback.sql": "select 1;\n",
		"notes_without_v.sql": "select 1;\n",
	}
	g := newGoldenFixture(t, files, false)
	nowhere := []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}
	runGolden(t, "bad-files", g, []goldenStep{
		{name: "up", args: words("up"), env: nowhere},
		{name: "up-json", args: words("up --json"), env: nowhere},
		{name: "status", args: words("status"), env: nowhere},
		{name: "no-directory", args: words("--migrations-path nosuchdir up"), env: nowhere},
	})
}

func TestGoldenDrift(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	drift := func(t *testing.T, g *goldenFixture) {
		mig := filepath.Join(g.dir, "migrations")
		write(t, filepath.Join(mig, "0001_users.sql"), "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n")
		for _, ext := range []string{".sql", ".rollback.sql"} {
			if err := os.Rename(filepath.Join(mig, "0002_email_index"+ext), filepath.Join(mig, "0002_idx"+ext)); err != nil {
				t.Fatal(err)
			}
		}
		write(t, filepath.Join(mig, "0003_more.sql"), "CREATE TABLE more (id int);\n")
	}
	runGolden(t, "drift", g, []goldenStep{
		{name: "up", args: words("up")},
		{name: "up-drift", args: words("up"), before: drift},
		{name: "up-drift-json", args: words("up --json")},
		{name: "up-drift-dry-run", args: words("up --dry-run")},
		{name: "verify", args: words("verify")},
		{name: "verify-json", args: words("verify --json")},
		{name: "status", args: words("status")},
		{name: "status-json", args: words("status --json")},
		{name: "status-exit-code", args: words("status --exit-code")},
		{name: "up-allow-drift", args: words("up --allow-drift")},
		{name: "remove-file", args: words("status"), before: func(t *testing.T, g *goldenFixture) {
			if err := os.Remove(filepath.Join(g.dir, "migrations", "0003_more.sql")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "remove-file-json", args: words("status --json")},
		{name: "down-missing-file", args: words("down --steps 1 --allow-drift")},
	})
}

func TestGoldenVerifyRollback(t *testing.T) {
	files := map[string]string{
		"0001_t.sql":          "CREATE TABLE t (id int, v text);\n",
		"0001_t.rollback.sql": "DROP TABLE t;\n",
		// The rollback forgets the index the migration creates.
		"0002_more.sql":          "ALTER TABLE t ADD COLUMN w int;\nCREATE INDEX t_v ON t (v);\n",
		"0002_more.rollback.sql": "ALTER TABLE t DROP COLUMN w;\n",
	}
	g := newGoldenFixture(t, files, true)
	mig := filepath.Join(g.dir, "migrations")
	runGolden(t, "verify-rollback", g, []goldenStep{
		{name: "broken", args: words("verify --rollback")},
		{name: "broken-json", args: words("verify --rollback --json")},
		{name: "fixed", args: words("verify --rollback"), before: func(t *testing.T, g *goldenFixture) {
			write(t, filepath.Join(mig, "0002_more.rollback.sql"), "DROP INDEX t_v;\nALTER TABLE t DROP COLUMN w;\n")
		}},
		{name: "fixed-json", args: words("verify --rollback --json")},
		{name: "scratch", args: words("verify --rollback --scratch-url {{SCRATCH}}")},
		{name: "scratch-used", args: words("verify --rollback --scratch-url {{SCRATCH}}")},
		{name: "scratch-invalid", args: []string{"verify", "--rollback", "--scratch-url", "mysql://x"}},
		{name: "missing-rollback", args: words("verify --rollback"), before: func(t *testing.T, g *goldenFixture) {
			write(t, filepath.Join(mig, "0003_none.sql"), "CREATE TABLE u (id int);\n")
		}},
		{name: "missing-rollback-json", args: words("verify --rollback --json")},
	})
}

func TestGoldenNew(t *testing.T) {
	g := newGoldenFixture(t, map[string]string{"00009_x.sql": "select 1;\n"}, false)
	runGolden(t, "new", g, []goldenStep{
		{name: "new", args: words("new add_users"), files: []string{"migrations/00010_add_users.sql", "migrations/00010_add_users.rollback.sql"}},
		{name: "new-json", args: words("new --json second")},
		{name: "new-bad-name", args: []string{"new", "bad name!"}},
		{name: "new-no-name", args: words("new")},
		{name: "new-two-names", args: words("new a b")},
	})
}

// TestGoldenSum: hash and new write migrations/poststack.sum; up and down
// (dry runs too) refuse files that do not match it, before they connect.
func TestGoldenSum(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	mig := filepath.Join(g.dir, "migrations")
	sum := []string{"migrations/poststack.sum"}
	runGolden(t, "sum", g, []goldenStep{
		{name: "up-no-sum-file", args: words("up --dry-run")},
		{name: "hash", args: words("hash"), files: sum},
		{name: "hash-json", args: words("hash --json")},
		{name: "up-target", args: words("up --target 1")},
		{name: "changed", args: words("up"), before: func(t *testing.T, g *goldenFixture) {
			write(t, filepath.Join(mig, "0002_email_index.sql"), "CREATE INDEX users_email ON users (lower(email));\n")
		}},
		{name: "changed-json", args: words("up --json")},
		{name: "changed-dry-run-no-sum", args: words("up --dry-run --no-sum")},
		{name: "changed-down-dry-run", args: words("down --steps 1 --dry-run")},
		{name: "hash-after-change", args: words("hash")},
		{name: "up", args: words("up")},
		{name: "added", args: words("up"), before: func(t *testing.T, g *goldenFixture) {
			write(t, filepath.Join(mig, "0003_tags.sql"), "CREATE TABLE tags (id int);\n")
		}},
		{name: "new", args: words("new more_tags"), files: sum},
		{name: "new-no-sum", args: words("new --no-sum again")},
		{name: "added-by-new-no-sum", args: words("up --dry-run")},
		{name: "gone", args: words("up --dry-run"), before: func(t *testing.T, g *goldenFixture) {
			for _, f := range []string{"0005_again.sql", "0005_again.rollback.sql", "0004_more_tags.rollback.sql"} {
				if err := os.Remove(filepath.Join(mig, f)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "hand-edited", args: words("up --dry-run"), before: func(t *testing.T, g *goldenFixture) {
			if r := runIn(t, g.dir, nil, "hash"); r.code != 0 {
				t.Fatal(r.stderr)
			}
			data, err := os.ReadFile(filepath.Join(mig, "poststack.sum"))
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(mig, "poststack.sum"), strings.Replace(string(data), "0003_tags.sql", "0003_tagz.sql", 1))
		}},
		{name: "conflict", args: words("up"), before: func(t *testing.T, g *goldenFixture) {
			write(t, filepath.Join(mig, "poststack.sum"), "<<<<<<< HEAD\nsum1 sha256:0\n=======\nsum1 sha256:1\n>>>>>>> other\n")
		}},
		{name: "malformed", args: words("up"), before: func(t *testing.T, g *goldenFixture) {
			body := "0001_users.sql sha256:abc\n"
			write(t, filepath.Join(mig, "poststack.sum"), fmt.Sprintf("sum1 sha256:%x\n%s", sha256.Sum256([]byte(body)), body))
		}},
		{name: "symlink", args: words("up"), before: func(t *testing.T, g *goldenFixture) {
			os.Remove(filepath.Join(mig, "poststack.sum"))
			if err := os.Symlink("/etc/passwd", filepath.Join(mig, "poststack.sum")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "hash-symlink", args: words("hash")},
		{name: "hash-extra-argument", args: words("hash x")},
		{name: "hash-no-migrations-dir", args: words("hash --migrations-path nope")},
	})
}

func TestGoldenCreateSchema(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	runGolden(t, "create-schema", g, []goldenStep{
		{name: "create-schema", args: words("create-schema")},
		{name: "create-schema-again-json", args: words("create-schema --json")},
		{name: "create-schema-custom", args: words("create-schema --schema audit --table ledger")},
		{name: "status-custom", args: words("status --schema audit --table ledger")},
		{name: "create-schema-extra-argument", args: words("create-schema x")},
	})
}

func TestGoldenConnection(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	nowhere := []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}
	runGolden(t, "connection", g, []goldenStep{
		{name: "no-database", args: words("status"), env: []string{}},
		{name: "invalid-url", args: words("status"), env: []string{"DATABASE_URL=mysql://u:secret@x/y"}},
		{name: "wait", args: words("wait --timeout 10s")},
		{name: "wait-json", args: words("wait --json --timeout 10s")},
		{name: "wait-nowhere", args: words("wait --timeout 400ms"), env: nowhere, noStderr: true},
		{name: "test-connection", args: words("test-connection")},
		{name: "test-connection-json", args: words("test-connection --json")},
		{name: "test-connection-nowhere", args: words("test-connection"), env: nowhere, noStderr: true},
		{name: "test-connection-precedence", args: words("test-connection"), env: []string{"POSTSTACK_DATABASE_URL=" + g.db, nowhere[0]}},
		{name: "status-nowhere", args: words("status"), env: nowhere, noStderr: true},
	})
}

func TestGoldenLockTimeout(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	ctx := context.Background()
	holder := connect(t, g.db)
	m, err := migrate.New(holder, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := m.LockKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pid int32
	if err := holder.QueryRow(ctx, "select pg_backend_pid() from (select pg_advisory_lock($1)) l", key).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	g.repl = append(g.repl, fmt.Sprint(key), "$LOCK_KEY", fmt.Sprintf("pid %d ", pid), "pid $PID ")
	runGolden(t, "lock", g, []goldenStep{
		{name: "up", args: words("up --lock-timeout 300ms")},
		{name: "up-json", args: words("up --json --lock-timeout 300ms")},
		// Nothing pending takes no lock, and a dry run never does.
		{name: "up-dry-run", args: words("up --dry-run --lock-timeout 300ms")},
	})
}

func TestGoldenSchemaCommands(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	runGolden(t, "schema", g, []goldenStep{
		{name: "up", args: words("up")},
		{name: "show-schema", args: words("show-schema")},
		{name: "show-schema-json", args: words("show-schema --json")},
		{name: "backup", args: words("backup -o db.dump")},
		{name: "backup-json", args: words("backup --json -o db2.dump")},
		{name: "backup-default-name", args: words("backup")},
		{name: "backup-nowhere", args: words("backup -o x.dump"), env: []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}, noStderr: true},
		{name: "dump-schema-nowhere", args: words("dump-schema"), env: []string{"DATABASE_URL=postgres://u:p@127.0.0.1:1/none"}, noStderr: true},
		{name: "show-schema-extra-argument", args: words("show-schema x")},
	})
}

// TestGoldenDumpSchema keeps pg_dump's text out of the golden files: it
// follows the installed pg_dump, not this code. What is pinned is that
// stdout and -o agree and that the stripped lines are gone.
func TestGoldenDumpSchema(t *testing.T) {
	g := newGoldenFixture(t, basic, true)
	env := []string{"DATABASE_URL=" + g.db}
	if r := runIn(t, g.dir, env, "up"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	a := runIn(t, g.dir, env, "dump-schema")
	b := runIn(t, g.dir, env, "dump-schema", "-o", "schema.sql")
	file, err := os.ReadFile(filepath.Join(g.dir, "schema.sql"))
	if err != nil || a.code != 0 || b.code != 0 || b.stdout != "" || a.stdout != string(file) {
		t.Fatalf("dump-schema: exit %d/%d, %v, stdout and -o differ:\n%s\n%s", a.code, b.code, err, a.stdout, b.stderr)
	}
	if !strings.Contains(a.stdout, "CREATE TABLE public.users") || strings.Contains(a.stdout, "Dumped from") {
		t.Fatalf("dump-schema output lacks users or keeps the version line:\n%s", a.stdout)
	}
}

func TestGoldenHelp(t *testing.T) {
	g := newGoldenFixture(t, basic, false)
	steps := []goldenStep{{name: "root", args: words("--help")}}
	for _, c := range []string{"up", "migrate", "down", "rollback", "status", "migration-status", "verify", "new",
		"create-schema", "wait", "test-connection", "show-schema", "dump-schema", "backup", "hash", "lint", "adopt", "convert"} {
		steps = append(steps, goldenStep{name: c, args: []string{c, "--help"}})
	}
	runGolden(t, "help", g, steps)
}

// TestGoldenAdoptConvert converts goose files and adopts a goose ledger made
// by SQL as goose makes it (the real goose runs in e2e/adopt_test.go).
func TestGoldenAdoptConvert(t *testing.T) {
	g := newGoldenFixture(t, map[string]string{}, true)
	sql := func(stmts ...string) func(t *testing.T, g *goldenFixture) {
		return func(t *testing.T, g *goldenFixture) {
			for _, s := range stmts {
				if _, err := connect(t, g.db).Exec(context.Background(), s); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	writeGoose := func(t *testing.T, g *goldenFixture) {
		if err := os.MkdirAll(filepath.Join(g.dir, "db"), 0o755); err != nil {
			t.Fatal(err)
		}
		write(t, filepath.Join(g.dir, "db", "00001_users.sql"), "-- +goose Up\nCREATE TABLE users (id int PRIMARY KEY);\n-- +goose Down\nDROP TABLE users;\n")
		write(t, filepath.Join(g.dir, "db", "00002_index.sql"), "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n")
		write(t, filepath.Join(g.dir, "db", "00003_seed.go"), "package db\n")
	}
	runGolden(t, "adopt", g, []goldenStep{
		{name: "convert-unconvertible", args: words("convert --from goose db"), before: writeGoose},
		{name: "convert-dry-run", args: words("convert --from goose --dry-run db"), before: func(t *testing.T, g *goldenFixture) {
			if err := os.Remove(filepath.Join(g.dir, "db", "00003_seed.go")); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "convert", args: words("convert --from goose db"), files: []string{"migrations/00001_users.sql", "migrations/00002_index.sql"}},
		{name: "convert-again", args: words("convert --from goose db")},
		{name: "convert-json", args: words("convert --json --from golang-migrate --migrations-path gm-out db")},
		{name: "convert-no-dir", args: words("convert --from goose")},
		{name: "convert-bad-from", args: words("convert --from flyway db")},
		{name: "adopt-no-ledger", args: words("adopt --from goose")},
		{name: "adopt-dry-run", args: words("adopt --from goose --dry-run"), before: sql(
			"CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp NULL DEFAULT now())",
			"INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true)",
			"CREATE TABLE users (id int PRIMARY KEY)")},
		{name: "adopt", args: words("adopt --from goose")},
		{name: "adopt-again-json", args: words("adopt --from goose --json")},
		{name: "status", args: words("status")},
		{name: "adopt-mismatch", args: words("adopt --from goose --dry-run"), before: sql("INSERT INTO goose_db_version (version_id, is_applied) VALUES (9, true)")},
		{name: "adopt-wrong-tool", args: words("adopt --from poststack-python"), before: sql(
			"CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)", "INSERT INTO schema_migrations VALUES (2, true)")},
		{name: "adopt-dirty", args: words("adopt --from golang-migrate --table other")},
		{name: "adopt-bad-from", args: words("adopt --from flyway")},
		{name: "adopt-bad-table", args: words("adopt --from goose --from-table a.b.c")},
	})
}

// TestGoldenLint: lint reviews the migrations above the base in a scratch
// server (a native one, or --scratch-url) and never touches DATABASE_URL.
func TestGoldenLint(t *testing.T) {
	files := map[string]string{
		"0001_users.sql":          "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, n int);\n",
		"0001_users.rollback.sql": "DROP TABLE users;\n",
		"0002_more.sql": "-- an index build and a rewrite, then a safe column\n" +
			"CREATE INDEX users_n_idx ON users (n);\n" +
			"ALTER TABLE users ALTER COLUMN n TYPE bigint; -- poststack:lint-ignore table-rewrite users stays small\n" +
			"ALTER TABLE users ADD COLUMN nick text;\n",
		"0002_more.rollback.sql": "ALTER TABLE users DROP COLUMN nick;\nALTER TABLE users ALTER COLUMN n TYPE int;\nDROP INDEX users_n_idx;\n",
	}
	g := newGoldenFixture(t, files, true)
	// Not a database: lint must not need one.
	noDB := []string{"DATABASE_URL=postgres://nobody@127.0.0.1:1/none?sslmode=disable"}
	runGolden(t, "lint", g, []goldenStep{
		{name: "all", args: words("lint"), env: noDB},
		{name: "base", args: words("lint --base 1"), env: noDB},
		{name: "base-json", args: words("lint --base 1 --json"), env: noDB},
		{name: "summary", args: words("lint --base 1 --summary"), env: noDB},
		{name: "nothing-new", args: words("lint --base 2"), env: noDB},
		{name: "scratch", args: words("lint --base 1 --scratch-url {{SCRATCH}}"), env: noDB},
		{name: "scratch-used", args: words("lint --scratch-url {{SCRATCH}}"), env: noDB},
		{name: "bad-base", args: words("lint --base one"), env: noDB},
		{name: "both-bases", args: words("lint --base 1 --base-ref main"), env: noDB},
		{name: "not-git", args: words("lint --base-ref main"), env: noDB},
		{name: "rules", args: words("lint --rules"), env: noDB},
	})
}
