package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
)

// project writes files (name → content) under a new project root.
func project(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func names(p *Plan) string {
	var s []string
	for _, im := range p.Images {
		s = append(s, im.Name)
	}
	return strings.Join(s, " ")
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
		order string // plan order; "" when an error is expected
		deps  map[string]string
		err   string
	}{
		{
			name: "built-ins and a chain",
			files: map[string]string{
				"containers/api/Dockerfile":       "FROM poststack/base-debian:latest\n",
				"containers/worker/Containerfile": "FROM localhost/myapp/api\n",
				"containers/app/app-pod.yaml":     "kind: Pod\n", // not an image
				"containers/README":               "",
			},
			order: "base-debian postgres api worker",
			deps:  map[string]string{"base-debian": "", "postgres": "base-debian", "api": "base-debian", "worker": "api"},
		},
		{
			name:  "selected image brings what it is built FROM",
			files: map[string]string{"containers/api/Dockerfile": "FROM poststack/base-debian\n", "containers/other/Dockerfile": "FROM debian\n"},
			want:  []string{"api"},
			order: "base-debian api",
		},
		{
			name:  "selection by reference",
			files: map[string]string{"containers/api/Dockerfile": "FROM debian\n"},
			want:  []string{"docker.io/myapp/api:latest"},
			order: "api",
		},
		{
			name: "project postgres replaces the built-in one",
			files: map[string]string{
				"containers/postgres/Dockerfile": "FROM poststack/base-debian\n",
				"containers/db-tools/Dockerfile": "FROM poststack/postgres\n",
			},
			order: "base-debian postgres db-tools",
			deps:  map[string]string{"db-tools": "postgres"},
		},
		{
			name:  "external and multi-stage FROMs are not dependencies",
			files: map[string]string{"containers/api/Dockerfile": "FROM golang:1.22 AS build\nFROM build\nFROM scratch\nCOPY --from=build /x /x\n"},
			want:  []string{"api"},
			order: "api",
			deps:  map[string]string{"api": ""},
		},
		{
			name: "cycle",
			files: map[string]string{
				"containers/a/Dockerfile": "FROM myapp/b\n",
				"containers/b/Dockerfile": "ARG P=myapp\nFROM ${P}/a:latest\n",
			},
			err: "dependency cycle: containers/a/Dockerfile (myapp/a:latest) → containers/b/Dockerfile (myapp/b:latest) → containers/a/Dockerfile (myapp/a:latest)",
		},
		{
			name:  "self cycle",
			files: map[string]string{"containers/a/Dockerfile": "FROM myapp/a\n"},
			err:   "dependency cycle: containers/a/Dockerfile (myapp/a:latest) → containers/a/Dockerfile",
		},
		{
			name:  "unknown local FROM",
			files: map[string]string{"containers/a/Dockerfile": "# base\nFROM myapp/nope:latest\n"},
			err:   "containers/a/Dockerfile:2: FROM myapp/nope:latest: no such image in this project",
		},
		{
			name:  "unknown poststack image",
			files: map[string]string{"containers/a/Dockerfile": "FROM poststack/redis\n"},
			err:   "containers/a/Dockerfile:1: FROM poststack/redis: no such image",
		},
		{
			name:  "unknown selected image",
			files: map[string]string{"containers/a/Dockerfile": "FROM debian\n"},
			want:  []string{"b"},
			err:   `unknown image "b"; this project builds: base-debian, postgres, a`,
		},
		{
			name:  "unparsable Dockerfile",
			files: map[string]string{"containers/a/Dockerfile": "RUN true\n"},
			err:   "containers/a/Dockerfile: no FROM instruction",
		},
		{
			name:  "directory name that cannot name an image",
			files: map[string]string{"containers/My App/Dockerfile": "FROM debian\n"},
			err:   `containers/My App/Dockerfile: directory name "My App" cannot name an image`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := project(t, tc.files)
			all, err := Discover(Project{Name: "myapp", Root: root, Containers: "containers", BaseImage: "localhost/debian:bookworm"})
			var plan *Plan
			if err == nil {
				plan, err = NewPlan("myapp", all, tc.want)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				if code := exitcode.Of(err); code != exitcode.Usage {
					t.Errorf("exit code %d, want %d", code, exitcode.Usage)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(plan); got != tc.order {
				t.Errorf("order %q, want %q", got, tc.order)
			}
			for _, im := range plan.Images {
				if want, ok := tc.deps[im.Name]; ok && strings.Join(im.Deps, " ") != want {
					t.Errorf("%s deps %v, want %q", im.Name, im.Deps, want)
				}
				if im.Name == "base-debian" && im.BuildArgs["BASE_IMAGE"] != "localhost/debian:bookworm" {
					t.Errorf("base-debian BASE_IMAGE = %q", im.BuildArgs["BASE_IMAGE"])
				}
				if !im.Builtin && (im.Context != root || !strings.HasPrefix(im.Dockerfile, root)) {
					t.Errorf("%s: context %s, Dockerfile %s, want under %s", im.Name, im.Context, im.Dockerfile, root)
				}
			}
		})
	}
}

func TestDiscoverRejectsBadProjectName(t *testing.T) {
	_, err := Discover(Project{Name: "My App", Root: t.TempDir(), Containers: "containers"})
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), `project name "My App"`) {
		t.Fatalf("err = %v", err)
	}
}
