package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// TestActionUnderAct runs .github/workflows/action-local.yml with nektos/act on this host: the
// composite action builds the binaries with the runner's Go, renders the example pod through
// ps-subst with a hostile --set, and reports an undefined variable as exit code 3 through its
// exit-code output. The workflow's own steps assert the results; act fails when any does.
func TestActionUnderAct(t *testing.T) {
	act := testenv.Act(t)
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 5*time.Minute)
	out, err := run(ctx, root, nil, act, "workflow_dispatch",
		"-W", ".github/workflows/action-local.yml",
		"-P", "ubuntu-latest=-self-hosted",
		"--env", "SRC="+root)
	if err != nil {
		t.Fatalf("act failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"Success - Main ps-subst --version",
		"Success - Main The pod was rendered with the values",
		"Success - Main The failure was reported, not hidden",
		"Success - Main The database-url output reaches the migrated server",
		"Success - Main Stop the throwaway Postgres",
		"Job succeeded",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("act output lacks %q:\n%s", want, out)
		}
	}
}
