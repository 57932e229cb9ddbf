package e2e

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// gitRepo makes a repository in a new directory with one commit on main holding files.
func gitRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed")
	}
	dir := t.TempDir()
	gitIn(t, dir, "init", "-q", "-b", "main")
	writeFiles(t, dir, files)
	gitIn(t, dir, "add", "-A")
	gitIn(t, dir, "commit", "-q", "-m", "base")
	return dir
}

// gitIn runs git in dir, kept to the test's own configuration and identity, and returns its
// standard output; it fails the test unless git exits 0.
func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
		"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0", "LC_ALL=C")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// lintRun runs ps-migrate lint in dir as a GitHub Actions step would, with a target database
// URL that nothing answers (lint must never connect to it), and returns stdout, stderr, the
// exit code and the step summary written.
func lintRun(t *testing.T, dir string, args ...string) (stdout, stderr string, code int, summary string) {
	t.Helper()
	ctx := testContext(t, 3*time.Minute)
	summaryFile := filepath.Join(t.TempDir(), "summary.md")
	if err := os.WriteFile(summaryFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, binary(t, "ps-migrate"), append([]string{"lint"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+summaryFile,
		"GITHUB_OUTPUT="+filepath.Join(t.TempDir(), "out"),
		"DATABASE_URL=postgres://nobody:wrong@127.0.0.1:1/never?sslmode=disable", "POSTSTACK_DATABASE_URL=")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	data, rerr := os.ReadFile(summaryFile)
	if rerr != nil {
		t.Fatal(rerr)
	}
	return out.String(), errb.String(), cmd.ProcessState.ExitCode(), string(data)
}

// TestLintBaseRef reviews a feature branch against its base branch in a real repository: only
// the migrations the branch adds are reviewed (the base's own CREATE INDEX is not reported),
// the unsafe one is an error at its file and line with an annotation, and the step summary
// holds the findings and the schema change.
func TestLintBaseRef(t *testing.T) {
	testenv.PostgresBinaries(t)
	dir := gitRepo(t, map[string]string{
		"migrations/0001_users.sql":          "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, n int);\n",
		"migrations/0001_users.rollback.sql": "DROP TABLE users;\n",
		// Unsafe on a big table, but in the base: already deployed, not this branch's to fix.
		"migrations/0002_users_email.sql":          "CREATE INDEX users_email_idx ON users (email);\n",
		"migrations/0002_users_email.rollback.sql": "DROP INDEX users_email_idx;\n",
	})
	gitIn(t, dir, "checkout", "-q", "-b", "feature")
	writeFiles(t, dir, map[string]string{
		"migrations/0003_users_n.sql":                 "-- an index build under a SHARE lock\nCREATE INDEX users_n_idx ON users (n);\n",
		"migrations/0003_users_n.rollback.sql":        "DROP INDEX users_n_idx;\n",
		"migrations/0004_users_nickname.sql":          "ALTER TABLE users ADD COLUMN nickname text;\n",
		"migrations/0004_users_nickname.rollback.sql": "ALTER TABLE users DROP COLUMN nickname;\n",
	})
	gitIn(t, dir, "add", "-A")
	gitIn(t, dir, "commit", "-q", "-m", "feature")

	stdout, stderr, code, summary := lintRun(t, dir, "--base-ref", "main")
	if code != 3 {
		t.Fatalf("exit %d, want 3 (an error finding)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	finding := regexp.MustCompile(`(?m)^migrations/0003_users_n\.sql:2:1: error ([a-z-]+): (.*CONCURRENTLY.*)$`)
	m := finding.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no error finding at migrations/0003_users_n.sql:2:1 naming CONCURRENTLY in:\n%s", stdout)
	}
	rule := m[1]
	if strings.Contains(stdout, "0002_users_email") || strings.Contains(stdout, "0004_users_nickname.sql:") {
		t.Fatalf("the base's migration or the safe one was reported:\n%s", stdout)
	}
	if !strings.Contains(stdout, "2 migrations reviewed against main (") || !strings.Contains(stdout, "1 error, 0 warnings") {
		t.Fatalf("closing line missing or wrong:\n%s", stdout)
	}
	if !strings.Contains(stderr, "::error col=1,file=migrations/0003_users_n.sql,line=2::"+rule+": ") {
		t.Fatalf("no annotation for the finding on stderr:\n%s", stderr)
	}
	for _, want := range []string{
		"### ps-migrate lint: 1 error, 0 warnings",
		"2 new migrations reviewed against main",
		"| error | `" + rule + "` | `migrations/0003_users_n.sql:2` |",
		"#### Schema change",
		"**Added**",
		"| index | `public.users_n_idx` |",
		"| column | `public.users.nickname` |",
	} {
		if !strings.Contains(summary, want) {
			t.Errorf("step summary lacks %q:\n%s", want, summary)
		}
	}
	if strings.Contains(summary, "users_email_idx") {
		t.Errorf("the step summary shows the base's index as a change:\n%s", summary)
	}

	// The same as JSON: the base resolved, two migrations reviewed, one finding.
	jsonOut, stderr, code, _ := lintRun(t, dir, "--base-ref", "main", "--json")
	var r struct {
		Base struct {
			Ref        string `json:"ref"`
			Commit     string `json:"commit"`
			Migrations int    `json:"migrations"`
		} `json:"base"`
		Reviewed []struct {
			Version int64 `json:"version"`
		} `json:"reviewed"`
		Findings []struct {
			Rule, File string
			Line       int
		} `json:"findings"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &r); err != nil || code != 3 {
		t.Fatalf("--json: exit %d, %v\n%s\n%s", code, err, jsonOut, stderr)
	}
	if r.Base.Ref != "main" || len(r.Base.Commit) != 40 || r.Base.Migrations != 2 || len(r.Reviewed) != 2 ||
		r.Reviewed[0].Version != 3 || len(r.Findings) != 1 || r.Findings[0].Rule != rule || r.Findings[0].Line != 2 {
		t.Fatalf("--json report = %+v", r)
	}

	// A branch that edits a migration of the base: an error at that file, whatever its SQL.
	writeFiles(t, dir, map[string]string{"migrations/0001_users.sql": "CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, n bigint);\n"})
	gitIn(t, dir, "commit", "-q", "-am", "edit the base")
	stdout, _, code, _ = lintRun(t, dir, "--base-ref", "main")
	if code != 3 || !regexp.MustCompile(`(?m)^migrations/0001_users\.sql:1:1: error edited-migration: migration 0001_users changed since main`).MatchString(stdout) {
		t.Fatalf("an edited base migration: exit %d\n%s", code, stdout)
	}

	// A base that git does not have is bad input, named.
	_, stderr, code, _ = lintRun(t, dir, "--base-ref", "origin/nope")
	if code != 2 || !strings.Contains(stderr, "origin/nope") || !strings.Contains(stderr, "no such commit") {
		t.Fatalf("unknown base: exit %d\n%s", code, stderr)
	}
}
