package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// TestActionUnderAct runs .github/workflows/action-test.yml with nektos/act on this host, as a
// user's workflow runs the composite action: built from its source with the runner's Go (a
// release version falls back to that under act), ps-subst with a hostile --set and an undefined
// variable (exit 3 through the exit-code output), a throwaway migrated Postgres whose
// database-url output a later step queries, a migrate with a URL whose password needs
// percent-encoding, and a lint of an unsafe migration (result JSON, exit code 3, the summary).
// The workflow's own steps assert those outputs and act fails when one does not hold; here the
// test checks each step succeeded and what only the log shows: the annotation, with its file
// relative to the workspace, the fallback notice, and that no password was printed.
func TestActionUnderAct(t *testing.T) {
	act := testenv.Act(t)
	testenv.PostgresBinaries(t)
	testenv.Program(t, "psql")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 10*time.Minute)
	args := []string{"workflow_dispatch",
		"-W", ".github/workflows/action-test.yml",
		"-P", "ubuntu-latest=-self-hosted",
		"--env", "SRC=" + root,
		// ps-build's base image where no registry is reachable (the env-up steps build the
		// database image).
		"--env", "POSTSTACK_BASE_IMAGE=" + testenv.BaseImage(t, testenv.EnginePodman)}
	// act fetches the repository of every action a composite one uses before it evaluates the
	// step's if:, and offline it cannot: stand in for them with local actions that fail if run
	// (the action skips them under act).
	for _, ref := range remoteActions(t, filepath.Join(root, "action.yml")) {
		args = append(args, "--local-repository", ref+"="+stubAction(t, ref))
	}
	start := time.Now()
	out, err := run(ctx, root, nil, act, args...)
	t.Logf("act ran the workflow in %s", time.Since(start).Round(time.Second))
	if err != nil {
		t.Fatalf("act failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Success - Main ps-subst --version",
		"Success - Main The pod was rendered with the values",
		"Success - Main The failure was reported, not hidden",
		"Success - Main The fallback build runs",
		"Success - Main The plan is the result",
		"Success - Main The version mismatch was a usage error",
		"Success - Main The database-url output reaches the migrated server",
		"Success - Main The server is listed, its password masked",
		"Success - Main The password round-tripped",
		"Success - Main The finding was annotated and summarised",
		"Success - Main The environment is migrated and its URL is an output",
		"Success - Main The environment is gone",
		"Success - Main Stop the throwaway Postgres",
		"Job succeeded",
		// The annotation names the file from the workspace root (the step ran in lint-demo/).
		"::error col=1,file=lint-demo/migrations/0003_visits_visited_at.sql,line=2::blocking-index-build: ",
		"under act, building from source instead of downloading release v0.0.0-act-test",
		"postgres-version 99, but the native provider would run PostgreSQL",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("act output lacks %q:\n%s", want, out)
		}
	}
	// Masked: the hostile role's password, as written or encoded, and the ephemeral server's.
	for _, secret := range []string{"p%40ss%2Fw%3Ard%20%231%252%2Bx", "p@ss/w:rd #1%2+x"} {
		if strings.Contains(out, secret) {
			t.Errorf("act output shows the password %q", secret)
		}
	}
	if m := regexp.MustCompile(`postgres://postgres:[0-9a-f]{32}@`).FindString(out); m != "" {
		t.Errorf("act output shows an ephemeral server's password: %s", m)
	}
}

// remoteActions lists the uses: of file other than ./, as written (owner/repo@ref).
func remoteActions(t *testing.T, file string) []string {
	t.Helper()
	var refs []string
	for _, u := range usesOf(t, file) {
		if u.ref != "./" {
			refs = append(refs, u.ref)
		}
	}
	return refs
}

// stubAction writes a composite action that fails when it runs, standing in for ref.
func stubAction(t *testing.T, ref string) string {
	t.Helper()
	dir := t.TempDir()
	stub := "name: stub\nruns:\n  using: composite\n  steps:\n    - shell: bash\n      run: |\n" +
		"        echo '::error::the stand-in for " + ref + " ran, but the action must skip it under act'\n" +
		"        exit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "action.yml"), []byte(stub), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

type usesLine struct {
	line int
	ref  string
}

// usesOf returns the uses: lines of a workflow or action file.
func usesOf(t *testing.T, file string) []usesLine {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	uses := regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)`)
	var out []usesLine
	for i, line := range strings.Split(string(data), "\n") {
		if m := uses.FindStringSubmatch(line); m != nil {
			out = append(out, usesLine{i + 1, strings.Trim(m[1], `"'`)})
		}
	}
	return out
}

// TestActionsPinned checks that every action the workflows and the composite action use is this
// repository's own or pinned by a full commit SHA (a tag can be moved to other code).
func TestActionsPinned(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, ".github", "workflows", "*.yml"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "action.yml"))
	pinned := regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$`)
	seen := 0
	for _, f := range files {
		for _, u := range usesOf(t, f) {
			seen++
			if u.ref != "./" && !pinned.MatchString(u.ref) {
				t.Errorf("%s:%d: %s is not pinned by a commit SHA", f, u.line, u.ref)
			}
		}
	}
	if seen == 0 {
		t.Fatalf("no uses: found in %v", files)
	}
}
