// Package e2e runs the built binaries against real engines: podman (kube play, image builds)
// and the docker daemon (through testcontainers-go). The machine is prepared by
// scripts/setup.sh; without it these tests skip, or fail under CI (see internal/testenv).
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// binDir holds the binaries TestMain built (or POSTSTACK_E2E_BIN_DIR); set once before any test
// runs, read-only afterwards.
var binDir string

// repoRoot is the module root: tests run in e2e/.
const repoRoot = ".."

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	binDir = os.Getenv("POSTSTACK_E2E_BIN_DIR")
	if binDir == "" {
		dir, err := os.MkdirTemp("", "poststack-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		// Static binaries, as the release image has them (TestImage builds those from the Dockerfile).
		cmd := exec.Command("go", "build", "-trimpath", "-o", dir+string(filepath.Separator), "./cmd/...")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/... failed: %v\n%s", err, out)
			return 1
		}
		binDir = dir
	}
	return m.Run()
}

// binary returns the path of a built poststack binary.
func binary(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(binDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("binary %s was not built: %v", name, err)
	}
	return p
}

// exampleProject copies examples/myapp into a temporary directory under a unique project name,
// so that the test neither writes .poststack/ into the repository nor collides with `make demo`
// or a parallel run.
func exampleProject(t *testing.T) (dir, project string) {
	t.Helper()
	src := filepath.Join(repoRoot, "examples", "myapp")
	dir = t.TempDir()
	// What a `make demo` run left there (its generated passwords, port, logs) is local state of
	// that checkout, not part of the example.
	example := os.DirFS(src)
	err := fs.WalkDir(example, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == ".poststack" || name == "logs" {
			return fs.SkipDir
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return copyFile(filepath.Join(src, filepath.FromSlash(name)), target, info.Mode().Perm())
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	project = "e2e" + randomHex(t, 4)
	cfg := filepath.Join(dir, ".poststack.yml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(data), "  name: myapp\n", "  name: "+project+"\n", 1)
	if renamed == string(data) {
		t.Fatalf("%s: no `name: myapp` line to rename", cfg)
	}
	if err := os.WriteFile(cfg, []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, project
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// run executes a command with a deadline and returns its stdout; stderr goes into the error.
func run(ctx context.Context, dir string, stdin io.Reader, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

func mustRun(t *testing.T, ctx context.Context, dir string, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	out, err := run(ctx, dir, stdin, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// testContext bounds a test so that a hung engine fails it instead of the whole binary.
func testContext(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// copyFile copies src to dst with mode perm.
func copyFile(src, dst string, perm fs.FileMode) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, perm)
}
