package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// TestDockerfile builds the release image with podman on the local base image and runs the
// binaries in it, as the non-root user.
func TestDockerfile(t *testing.T) {
	podman := testenv.Podman(t)
	base := testenv.BaseImage(t, testenv.EnginePodman)
	binary(t, "ps-subst")
	ctx := testContext(t, 180*time.Second)

	// A context holding only bin/, as .dockerignore makes of the repository.
	buildCtx := t.TempDir()
	if err := os.Mkdir(filepath.Join(buildCtx, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ps-env", "ps-migrate", "ps-subst", "ps-build"} {
		src := filepath.Join(binDir, name)
		if _, err := os.Stat(src); err != nil {
			t.Logf("%s not built; the image will lack it", name)
			continue
		}
		if err := copyFile(src, filepath.Join(buildCtx, "bin", name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dockerfile, err := filepath.Abs(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}

	tag := "localhost/poststack-e2e:" + randomHex(t, 4)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := run(ctx, "", nil, podman, "rmi", "--force", tag); err != nil {
			t.Errorf("remove image: %v", err)
		}
	})
	mustRun(t, ctx, buildCtx, nil, podman, "build", "--quiet", "--pull=never",
		"--build-arg", "BASE_IMAGE="+base, "-f", dockerfile, "-t", tag, ".")

	tests := []struct {
		name   string
		args   []string
		prefix string
	}{
		{"version", []string{"ps-subst", "--version"}, "ps-subst "},
		{"non-root", []string{"id", "-u"}, "10001"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := mustRun(t, ctx, "", nil, podman, append([]string{"run", "--rm", tag}, tc.args...)...)
			if !strings.HasPrefix(strings.TrimSpace(out), tc.prefix) {
				t.Errorf("%v printed %q, want prefix %q", tc.args, out, tc.prefix)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(binDir, "ps-env")); err == nil {
		t.Run("default-cmd", func(t *testing.T) {
			out := mustRun(t, ctx, "", nil, podman, "run", "--rm", tag)
			if !strings.Contains(out, "ps-env") {
				t.Errorf("default command printed %q, want ps-env's help", out)
			}
		})
	}
}
