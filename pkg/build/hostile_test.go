package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// TestHostileDockerfileIsRefused plants, as containers/app/Dockerfile, what
// a repository can ship to make ps-build read something else: each is exit 2
// naming the file, before anything is read from it.
func TestHostileDockerfileIsRefused(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(outside, []byte("PRIVATE-KEY-CONTENT\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		plant  func(t *testing.T, p string)
		reason string
	}{
		{"symlink outside", func(t *testing.T, p string) { must(t, os.Symlink(outside, p)) }, "outside the project directory"},
		{"symlink to /dev/zero", func(t *testing.T, p string) { must(t, os.Symlink("/dev/zero", p)) }, "outside the project directory"},
		{"FIFO", func(t *testing.T, p string) { must(t, syscall.Mkfifo(p, 0o644)) }, "is a named pipe (FIFO), not a regular file"},
		{"directory", func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o755)) }, "is a directory, not a regular file"},
		{"huge file", func(t *testing.T, p string) {
			f, err := os.Create(p)
			must(t, err)
			must(t, f.Truncate(16<<20+1)) // sparse: no 16 MiB written
			f.Close()
		}, "is larger than 16 MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := project(t, map[string]string{"containers/ok/Dockerfile": "FROM debian\n"})
			must(t, os.MkdirAll(filepath.Join(root, "containers/app"), 0o755))
			tc.plant(t, filepath.Join(root, "containers/app/Dockerfile"))
			done := make(chan error, 1)
			go func() {
				_, err := Discover(Project{Name: "p", Root: root, Containers: "containers"})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Discover blocked on the planted Dockerfile")
			}
			if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "containers/app/Dockerfile: ") ||
				!strings.Contains(err.Error(), tc.reason) || strings.Contains(err.Error(), "PRIVATE-KEY") {
				t.Errorf("Discover: %v (exit %d), want exit 2 naming containers/app/Dockerfile: …%s", err, exitcode.Of(err), tc.reason)
			}
		})
	}

	t.Run("ignore file outside", func(t *testing.T) {
		root := project(t, map[string]string{"containers/ok/Dockerfile": "FROM debian\n"})
		must(t, os.Symlink(outside, filepath.Join(root, ".dockerignore")))
		_, err := Discover(Project{Name: "p", Root: root, Containers: "containers"})
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), ".dockerignore: is a symbolic link to") {
			t.Errorf("Discover: %v, want exit 2 naming .dockerignore", err)
		}
	})
	t.Run("symlink inside is read", func(t *testing.T) {
		root := project(t, map[string]string{"docker/app.Dockerfile": "FROM debian\n"})
		must(t, os.MkdirAll(filepath.Join(root, "containers/app"), 0o755))
		must(t, os.Symlink("../../docker/app.Dockerfile", filepath.Join(root, "containers/app/Dockerfile")))
		all, err := Discover(Project{Name: "p", Root: root, Containers: "containers"})
		if err != nil {
			t.Fatal(err)
		}
		if im := all[len(all)-1]; im.Name != "app" || len(im.Froms) != 1 || im.Froms[0].Image != "debian" {
			t.Errorf("app: %+v", im)
		}
	})
}

// TestHostileLogDirIsRefused ships logs/, logs/containers or a build log as
// a symbolic link to a directory or file outside the project: Run refuses it
// (exit 2), builds nothing and writes nothing outside.
func TestHostileLogDirIsRefused(t *testing.T) {
	eng, err := engine.New(testenv.EnginePodman, engine.WithPath("/bin/false"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name  string
		plant func(t *testing.T, root, outside string)
		want  string
	}{
		{"logs is a symlink", func(t *testing.T, root, outside string) {
			must(t, os.Symlink(outside, filepath.Join(root, "logs")))
		}, "logs is a symbolic link"},
		{"logs/containers is a symlink", func(t *testing.T, root, outside string) {
			must(t, os.Mkdir(filepath.Join(root, "logs"), 0o755))
			must(t, os.Symlink(outside, filepath.Join(root, "logs/containers")))
		}, "logs/containers is a symbolic link"},
		{"logs/containers is a file", func(t *testing.T, root, outside string) {
			must(t, os.Mkdir(filepath.Join(root, "logs"), 0o755))
			must(t, os.WriteFile(filepath.Join(root, "logs/containers"), nil, 0o644))
		}, "logs/containers is not a directory"},
		{"the log file is a symlink", func(t *testing.T, root, outside string) {
			must(t, os.MkdirAll(filepath.Join(root, "logs/containers"), 0o755))
			must(t, os.Symlink(filepath.Join(outside, "victim"), filepath.Join(root, "logs/containers/app-20250102T030405000Z.log")))
		}, "a symbolic link or special file there is refused"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := project(t, map[string]string{"containers/app/Dockerfile": "FROM debian\n"})
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			must(t, os.WriteFile(victim, []byte("untouched\n"), 0o644))
			tc.plant(t, root, outside)
			plan := &Plan{Project: "p", Images: []*Image{{Name: "app", Ref: "p/app:latest", Source: "containers/app/Dockerfile",
				Dockerfile: filepath.Join(root, "containers/app/Dockerfile"), Context: root}}}
			res, err := Run(context.Background(), eng, plan, Options{Jobs: 1, LogDir: filepath.Join(root, "logs", "containers"), Now: func() time.Time { return now }})
			if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v (exit %d), want exit 2 with %q", err, exitcode.Of(err), tc.want)
			}
			var fe *FailedError
			if res != nil && (!errors.As(err, &fe) || res.Images[0].State != Failed) {
				t.Errorf("result %+v", res)
			}
			entries, _ := os.ReadDir(outside)
			data, _ := os.ReadFile(victim)
			if len(entries) != 1 || string(data) != "untouched\n" {
				t.Errorf("outside the project: %d entries, victim %q", len(entries), data)
			}
		})
	}
}

func TestContextExcludes(t *testing.T) {
	for logDir, want := range map[string]string{
		"":          "**/.poststack **/.env* logs",
		"logs":      "**/.poststack **/.env* logs",
		"var/log":   "**/.poststack **/.env* logs var/log",
		"build[1]*": `**/.poststack **/.env* logs build\[1\]\*`,
	} {
		if got := strings.Join(ContextExcludes(logDir), " "); got != want {
			t.Errorf("ContextExcludes(%q) = %q, want %q", logDir, got, want)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
