package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// sumRun is one run of a program in the test's project: its exit status and output.
type sumRun struct {
	code           int
	stdout, stderr string
}

// sumExec runs name with args in dir, with git kept to the test's own configuration.
func sumExec(t *testing.T, ctx context.Context, dir, name string, args ...string) sumRun {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return sumRun{cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()}
}

// sumMigrate runs ps-migrate in the project dir against dbURL and fails the test unless it
// exits with code.
func sumMigrate(t *testing.T, ctx context.Context, dir, dbURL string, code int, args ...string) sumRun {
	t.Helper()
	r := sumExec(t, ctx, dir, binary(t, "ps-migrate"), append([]string{"--database-url", dbURL, "--log-dir", ""}, args...)...)
	if r.code != code {
		t.Fatalf("ps-migrate %s: exit %d, want %d\n%s%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	return r
}

func sumWrite(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestSumFileMergeConflict: two branches each add a migration with `ps-migrate new`; once the
// first is merged, merging the second conflicts in git in migrations/poststack.sum, and only
// there. ps-migrate refuses the merged files until the conflict is resolved by giving the
// second migration its own version and running `ps-migrate hash`; then `up` applies all.
func TestSumFileMergeConflict(t *testing.T) {
	testenv.Program(t, "git")
	ctx := testContext(t, 2*time.Minute)
	dbURL := testenv.Database(t)
	repo := t.TempDir()
	mig := filepath.Join(repo, "migrations")
	gitIn(t, repo, "init", "-q", "-b", "main")
	gitIn(t, repo, "config", "user.name", "Sum Test")
	gitIn(t, repo, "config", "user.email", "sum@example.com")
	gitIn(t, repo, "config", "commit.gpgsign", "false")

	if err := os.Mkdir(mig, 0o755); err != nil {
		t.Fatal(err)
	}
	sumWrite(t, filepath.Join(mig, "0001_t.sql"), "CREATE TABLE t_0001 (id int);\n")
	sumWrite(t, filepath.Join(mig, "0001_t.rollback.sql"), "DROP TABLE t_0001;\n")
	sumMigrate(t, ctx, repo, dbURL, 0, "hash")
	gitIn(t, repo, "add", "migrations")
	gitIn(t, repo, "commit", "-q", "-m", "0001")

	// Each branch adds its migration as a developer does: new, write the SQL, hash.
	branch := func(name, table string) {
		gitIn(t, repo, "checkout", "-q", "-b", name, "main")
		r := sumMigrate(t, ctx, repo, dbURL, 0, "new", "add_"+name)
		want := fmt.Sprintf("migrations/0002_add_%s.sql\nmigrations/0002_add_%s.rollback.sql\nmigrations/poststack.sum\n", name, name)
		if r.stdout != want {
			t.Fatalf("new add_%s printed %q, want %q", name, r.stdout, want)
		}
		sumWrite(t, filepath.Join(mig, "0002_add_"+name+".sql"), "CREATE TABLE "+table+" (id int);\n")
		sumWrite(t, filepath.Join(mig, "0002_add_"+name+".rollback.sql"), "DROP TABLE "+table+";\n")
		sumMigrate(t, ctx, repo, dbURL, 3, "up", "--dry-run") // edited since new wrote the sum
		sumMigrate(t, ctx, repo, dbURL, 0, "hash")
		gitIn(t, repo, "add", "migrations")
		gitIn(t, repo, "commit", "-q", "-m", "add "+name)
	}
	branch("a", "t_0002")
	branch("b", "t_0003")

	gitIn(t, repo, "checkout", "-q", "main")
	gitIn(t, repo, "merge", "-q", "--no-edit", "a")
	merge := sumExec(t, ctx, repo, "git", "merge", "--no-edit", "b")
	if merge.code != 1 {
		t.Fatalf("git merge b: exit %d, want 1 (a conflict)\n%s%s", merge.code, merge.stdout, merge.stderr)
	}
	if !strings.Contains(merge.stdout, "CONFLICT (content): Merge conflict in migrations/poststack.sum") {
		t.Errorf("git merge b does not report the conflict in the sum file:\n%s", merge.stdout)
	}
	if unmerged := gitIn(t, repo, "diff", "--name-only", "--diff-filter=U"); unmerged != "migrations/poststack.sum\n" {
		t.Fatalf("unmerged files: %q, want only migrations/poststack.sum", unmerged)
	}
	conflicted, err := os.ReadFile(filepath.Join(mig, "poststack.sum"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(conflicted), "<<<<<<< HEAD\n") || !strings.Contains(string(conflicted), "0002_add_b.sql") {
		t.Fatalf("the sum file after the merge:\n%s", conflicted)
	}

	// Both sides' 0002: the files do not even load; nothing runs.
	r := sumMigrate(t, ctx, repo, dbURL, 2, "up")
	if !strings.Contains(r.stderr, "duplicate version 2") {
		t.Errorf("up with two 0002 files: %s", r.stderr)
	}
	// The second side's migration gets its own version; the sum file still holds the conflict.
	for _, f := range []string{"0002_add_b.sql", "0002_add_b.rollback.sql"} {
		gitIn(t, repo, "mv", "migrations/"+f, "migrations/0003"+strings.TrimPrefix(f, "0002"))
	}
	r = sumMigrate(t, ctx, repo, dbURL, 3, "up")
	if want := "ps-migrate: migrations/poststack.sum:1: git conflict marker <<<<<<<: two branches changed the migrations; keep the files of both (each migration with its own version), then run `ps-migrate hash`\n"; r.stderr != want {
		t.Errorf("up with the conflict in the sum file:\n%s\nwant\n%s", r.stderr, want)
	}
	if ledger, tables := ledgerAndTables(t, ctx, dbURL); len(ledger) != 0 || len(tables) != 0 {
		t.Fatalf("refused runs applied something: ledger %v, tables %v", ledger, tables)
	}

	// Resolved by hash.
	if r := sumMigrate(t, ctx, repo, dbURL, 0, "hash"); r.stdout != "migrations/poststack.sum: 3 migrations, 6 files\n" {
		t.Errorf("hash: %q", r.stdout)
	}
	gitIn(t, repo, "add", "migrations")
	gitIn(t, repo, "commit", "-q", "--no-edit")
	if status := gitIn(t, repo, "status", "--porcelain"); status != "" {
		t.Errorf("git status after the merge: %q", status)
	}
	r = sumMigrate(t, ctx, repo, dbURL, 0, "up")
	if want := "applied 0001_t"; !strings.HasPrefix(r.stdout, want) || !strings.Contains(r.stdout, "applied 0003_add_b") {
		t.Errorf("up after the merge: %q", r.stdout)
	}
	if ledger, tables := ledgerAndTables(t, ctx, dbURL); !slices.Equal(ledger, []int{1, 2, 3}) || !slices.Equal(tables, []int{1, 2, 3}) {
		t.Fatalf("after up: ledger %v, tables %v; want 1, 2, 3 in both", ledger, tables)
	}
}

// TestSumRefusesUnhashedFiles: a migration added without `ps-migrate hash`, and one changed
// since, stop `up` with exit 3 and the exact message before anything is applied; --no-sum
// runs anyway.
func TestSumRefusesUnhashedFiles(t *testing.T) {
	ctx := testContext(t, time.Minute)
	dbURL := testenv.Database(t)
	dir := t.TempDir()
	mig := filepath.Join(dir, "migrations")
	if err := os.Mkdir(mig, 0o755); err != nil {
		t.Fatal(err)
	}
	sumWrite(t, filepath.Join(mig, "0001_one.sql"), "CREATE TABLE t_0001 (id int);\n")
	sumMigrate(t, ctx, dir, dbURL, 0, "hash")
	sumMigrate(t, ctx, dir, dbURL, 0, "up")

	// Added without hash.
	sumWrite(t, filepath.Join(mig, "0002_two.sql"), "CREATE TABLE t_0002 (id int);\n")
	r := sumMigrate(t, ctx, dir, dbURL, 3, "up")
	if want := "ps-migrate: migrations/poststack.sum: 0002_two.sql is not in the sum file: run `ps-migrate hash` after adding it\n"; r.stderr != want || r.stdout != "" {
		t.Errorf("up with 0002 added without hash: stdout %q, stderr\n%s\nwant\n%s", r.stdout, r.stderr, want)
	}
	if ledger, tables := ledgerAndTables(t, ctx, dbURL); !slices.Equal(ledger, []int{1}) || !slices.Equal(tables, []int{1}) {
		t.Fatalf("after the refused up: ledger %v, tables %v; want 1 in both", ledger, tables)
	}

	// Changed after hash.
	sumMigrate(t, ctx, dir, dbURL, 0, "hash")
	sumWrite(t, filepath.Join(mig, "0002_two.sql"), "CREATE TABLE t_0002 (id bigint);\n")
	r = sumMigrate(t, ctx, dir, dbURL, 3, "up")
	short := func(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s)))[:19] + "…" }
	want := "ps-migrate: migrations/poststack.sum:3: 0002_two.sql changed since `ps-migrate hash` (checksum " +
		short("CREATE TABLE t_0002 (id int);\n") + " in the sum file, " + short("CREATE TABLE t_0002 (id bigint);\n") +
		" now): run `ps-migrate hash` if the change is meant\n"
	if r.stderr != want || r.stdout != "" {
		t.Errorf("up with 0002 changed since hash: stdout %q, stderr\n%s\nwant\n%s", r.stdout, r.stderr, want)
	}
	sumMigrate(t, ctx, dir, dbURL, 3, "down", "--steps", "1", "--dry-run")
	if ledger, tables := ledgerAndTables(t, ctx, dbURL); !slices.Equal(ledger, []int{1}) || !slices.Equal(tables, []int{1}) {
		t.Fatalf("after the refused up: ledger %v, tables %v; want 1 in both", ledger, tables)
	}

	// --no-sum skips the check; nothing from the environment does.
	env := sumExec(t, ctx, dir, "env", "POSTSTACK_NO_SUM=1", "NO_SUM=1", binary(t, "ps-migrate"), "--database-url", dbURL, "--log-dir", "", "up")
	if env.code != 3 {
		t.Errorf("up with NO_SUM in the environment: exit %d, want 3\n%s", env.code, env.stderr)
	}
	sumWrite(t, filepath.Join(dir, ".env"), "POSTSTACK_NO_SUM=true\nNO_SUM=true\n")
	sumMigrate(t, ctx, dir, dbURL, 3, "up")
	sumMigrate(t, ctx, dir, dbURL, 0, "up", "--no-sum")
	if ledger, tables := ledgerAndTables(t, ctx, dbURL); !slices.Equal(ledger, []int{1, 2}) || !slices.Equal(tables, []int{1, 2}) {
		t.Fatalf("after up --no-sum: ledger %v, tables %v; want 1, 2 in both", ledger, tables)
	}
}

// TestSumRefusedByEnvUp: ps-env up runs the project's migrations too, so it refuses a set the
// sum file does not list before it starts anything, and applies it once hashed.
func TestSumRefusedByEnvUp(t *testing.T) {
	ctx := testContext(t, time.Minute)
	dbURL := testenv.Database(t)
	dir := t.TempDir()
	mig := filepath.Join(dir, "migrations")
	if err := os.Mkdir(mig, 0o755); err != nil {
		t.Fatal(err)
	}
	sumWrite(t, filepath.Join(dir, ".poststack.yml"), "environment: ext\nproject:\n  name: sumenv\nenvironments:\n  ext:\n    postgres:\n      url: "+strconv.Quote(dbURL)+"\n")
	sumWrite(t, filepath.Join(mig, "0001_one.sql"), "CREATE TABLE t_0001 (id int);\n")
	sumMigrate(t, ctx, dir, dbURL, 0, "hash")
	sumWrite(t, filepath.Join(mig, "0002_two.sql"), "CREATE TABLE t_0002 (id int);\n")
	r := sumExec(t, ctx, dir, binary(t, "ps-env"), "--log-dir", "", "up", "ext")
	if want := "migrations/poststack.sum: 0002_two.sql is not in the sum file"; r.code != 3 || !strings.Contains(r.stderr, want) {
		t.Fatalf("ps-env up with 0002 unhashed: exit %d, want 3 and %q in\n%s", r.code, want, r.stderr)
	}
	if ledger, tables := ledgerAndTables(t, ctx, dbURL); len(ledger) != 0 || len(tables) != 0 {
		t.Fatalf("after the refused up: ledger %v, tables %v; want nothing", ledger, tables)
	}
	sumMigrate(t, ctx, dir, dbURL, 0, "hash")
	if r := sumExec(t, ctx, dir, binary(t, "ps-env"), "--log-dir", "", "up", "ext"); r.code != 0 {
		t.Fatalf("ps-env up after hash: exit %d\n%s", r.code, r.stderr)
	}
	if ledger, _ := ledgerAndTables(t, ctx, dbURL); !slices.Equal(ledger, []int{1, 2}) {
		t.Fatalf("after ps-env up: ledger %v, want 1, 2", ledger)
	}
}
