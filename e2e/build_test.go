package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// buildResult is ps-build --json's output, the fields the tests read.
type buildResult struct {
	Engine string `json:"engine"`
	Images []struct {
		Name      string     `json:"name"`
		Ref       string     `json:"ref"`
		DependsOn []string   `json:"depends_on"`
		State     string     `json:"state"`
		ID        string     `json:"id"`
		Started   *time.Time `json:"started"`
		Finished  *time.Time `json:"finished"`
		Log       string     `json:"log"`
	} `json:"images"`
}

// psBuild runs ps-build in dir with the engine and the local base image; it returns stdout,
// stderr and the exit code.
func psBuild(t *testing.T, ctx context.Context, engine, dir string, args ...string) (string, string, int) {
	t.Helper()
	return psBuildEnv(t, ctx, engine, dir, nil, args...)
}

// psBuildEnv is psBuild with env ("K=V", later entries win) added to the process environment.
func psBuildEnv(t *testing.T, ctx context.Context, engine, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	full := append([]string{"--container-runtime", engine, "--base-image", testenv.DefaultBaseImage}, args...)
	cmd := exec.CommandContext(ctx, binary(t, "ps-build"), full...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	if engine == testenv.EngineDocker {
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+testenv.Docker(t))
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ps-build: %v", err)
	}
	return stdout.String(), stderr.String(), code
}

// engineCLI returns the CLI of engine after checking the engine and the base image are there.
func engineCLI(t *testing.T, engine string) string {
	t.Helper()
	switch engine {
	case testenv.EnginePodman:
		p := testenv.Podman(t)
		testenv.BaseImage(t, engine)
		return p
	default:
		testenv.Docker(t)
		testenv.BaseImage(t, engine)
		p, err := exec.LookPath("docker")
		if err != nil {
			t.Fatalf("docker daemon answers but there is no docker CLI: %v", err)
		}
		return p
	}
}

// builtinBuild is one engine's ps-build run of the built-in images, shared by the tests of a
// test binary: the first build takes a minute or two, later ones hit the engine's cache.
type builtinBuild struct {
	once sync.Once
	err  error
}

// builtinBuilds is written once per engine (under its Once) and read afterwards.
var builtinBuilds = map[string]*builtinBuild{testenv.EnginePodman: {}, testenv.EngineDocker: {}}

// builtinImagesBuilt builds poststack/base-debian and poststack/postgres with ps-build, once per
// engine and test binary, for tests that need the postgres image.
func builtinImagesBuilt(t *testing.T, engine string) {
	t.Helper()
	engineCLI(t, engine)
	b := builtinBuilds[engine]
	b.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		start := time.Now()
		stdout, stderr, code := psBuild(t, ctx, engine, t.TempDir(), "postgres")
		if code != 0 {
			b.err = fmt.Errorf("ps-build postgres with %s: exit %d\n%s%s", engine, code, stdout, stderr)
			return
		}
		t.Logf("ps-build postgres with %s took %v", engine, time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// removeImages removes the project's images when the test ends.
func removeImages(t *testing.T, cli string, refs ...string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, ref := range refs {
			exec.CommandContext(ctx, cli, "rmi", "-f", ref).Run()
		}
	})
}

func imageID(ctx context.Context, cli, ref string) string {
	out, err := exec.CommandContext(ctx, cli, "image", "inspect", "--format", "{{.Id}}", ref).Output()
	if err != nil {
		return ""
	}
	id := strings.TrimSpace(string(out))
	if id != "" && !strings.HasPrefix(id, "sha256:") {
		id = "sha256:" + id // podman prints the bare digest
	}
	return id
}

// TestBuild builds the built-in images and two project images (api FROM base-debian, worker
// FROM api) on both engines and checks the order, the concurrency, the tags, labels and logs;
// then the bad inputs: a cycle, an unknown local FROM, a failing RUN step.
func TestBuild(t *testing.T) {
	for _, engine := range []string{testenv.EnginePodman, testenv.EngineDocker} {
		t.Run(engine, func(t *testing.T) {
			cli := engineCLI(t, engine)
			ctx := testContext(t, 15*time.Minute)
			project := "psb" + randomHex(t, 4)
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				".poststack.yml":                  "project:\n  name: " + project + "\nenvironments:\n  dev: {}\n",
				"containers/api/Dockerfile":       "FROM poststack/base-debian:latest\nCOPY containers/api/hello.txt /hello.txt\nRUN cat /hello.txt && echo api-built\n",
				"containers/api/hello.txt":        "hello from api\n",
				"containers/worker/Containerfile": "ARG PROJECT=" + project + "\nFROM ${PROJECT}/api\nRUN test -f /hello.txt && echo worker-built\n",
				"containers/worker/pod.yaml":      "kind: Pod\n",
				"containers/tools/Dockerfile":     "FROM poststack/base-debian\nRUN echo tools-built\n",
			})
			removeImages(t, cli, project+"/api:latest", project+"/worker:latest", project+"/tools:latest",
				project+"/api:ci", project+"/worker:ci", project+"/tools:ci")

			stdout, stderr, code := psBuild(t, ctx, engine, dir, "--json", "-j", "4", "--tag", "ci")
			if code != 0 {
				t.Fatalf("ps-build exit %d\n%s\n%s", code, stdout, stderr)
			}
			var res buildResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil {
				t.Fatalf("--json output: %v\n%s", err, stdout)
			}
			if res.Engine != engine {
				t.Errorf("engine %q, want %q", res.Engine, engine)
			}
			byName := map[string]int{}
			var order []string
			for i, im := range res.Images {
				byName[im.Name] = i
				order = append(order, im.Name)
				// The built-in images may be up to date from an earlier test; the project's
				// images are new.
				builtin := im.Name == "base-debian" || im.Name == "postgres"
				if !(im.State == "built" || builtin && im.State == "up-to-date") || im.Started == nil || im.Finished == nil || im.ID == "" {
					t.Fatalf("%s: state %s, id %q, started %v, finished %v", im.Name, im.State, im.ID, im.Started, im.Finished)
				}
				if im.State == "built" {
					if _, err := os.Stat(im.Log); err != nil || !strings.HasPrefix(im.Log, filepath.Join(dir, "logs", "containers", im.Name+"-")) {
						t.Errorf("%s: log %q: %v", im.Name, im.Log, err)
					}
				}
			}
			if got := strings.Join(order, " "); got != "base-debian postgres api tools worker" {
				t.Fatalf("images %q", got)
			}
			img := func(n string) (time.Time, time.Time) {
				im := res.Images[byName[n]]
				return *im.Started, *im.Finished
			}
			_, baseEnd := img("base-debian")
			pgStart, pgEnd := img("postgres")
			apiStart, apiEnd := img("api")
			toolsStart, toolsEnd := img("tools")
			workerStart, _ := img("worker")
			for _, n := range []string{"postgres", "api", "tools"} {
				if s, _ := img(n); s.Before(baseEnd) {
					t.Errorf("%s started %v, before base-debian finished %v", n, s, baseEnd)
				}
			}
			if workerStart.Before(apiEnd) {
				t.Errorf("worker started %v, before api finished %v", workerStart, apiEnd)
			}
			overlap := func(a, b string, aStart, aEnd, bStart, bEnd time.Time) {
				if !(aStart.Before(bEnd) && bStart.Before(aEnd)) {
					t.Errorf("%s [%v, %v] and %s [%v, %v] did not build concurrently", a, aStart, aEnd, b, bStart, bEnd)
				}
			}
			overlap("api", "tools", apiStart, apiEnd, toolsStart, toolsEnd)
			overlap("postgres", "api", pgStart, pgEnd, apiStart, apiEnd)

			// Tags, labels and the build log.
			for _, ref := range []string{project + "/worker:latest", project + "/worker:ci", project + "/api:ci"} {
				if imageID(ctx, cli, ref) == "" {
					t.Errorf("image %s missing", ref)
				}
			}
			labels := mustRun(t, ctx, "", nil, cli, "image", "inspect", "--format",
				`{{index .Config.Labels "io.poststack.project"}} {{index .Config.Labels "io.poststack.image"}}`, project+"/worker:latest")
			if strings.TrimSpace(labels) != project+" worker" {
				t.Errorf("worker labels %q", labels)
			}
			apiLog, err := os.ReadFile(res.Images[byName["api"]].Log)
			if err != nil || !bytes.Contains(apiLog, []byte("hello from api")) {
				t.Errorf("api log lacks the RUN output: %v\n%s", err, apiLog)
			}

			// Nothing changed: a second run builds from cache and keeps the IDs.
			stdout2, stderr2, code := psBuild(t, ctx, engine, dir, "--json")
			if code != 0 {
				t.Fatalf("second ps-build exit %d\n%s", code, stderr2)
			}
			var res2 buildResult
			if err := json.Unmarshal([]byte(stdout2), &res2); err != nil {
				t.Fatal(err)
			}
			for i, im := range res2.Images {
				if im.ID != res.Images[i].ID || im.State != "up-to-date" {
					t.Errorf("%s with nothing changed: %s, %s → %s", im.Name, im.State, res.Images[i].ID, im.ID)
				}
			}

			// A changed context file rebuilds the images that use it and those built FROM them.
			writeFiles(t, dir, map[string]string{"containers/api/hello.txt": "hello again\n"})
			stdout3, stderr3, code := psBuild(t, ctx, engine, dir, "--json")
			if code != 0 {
				t.Fatalf("third ps-build exit %d\n%s", code, stderr3)
			}
			var res3 buildResult
			if err := json.Unmarshal([]byte(stdout3), &res3); err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"base-debian": "up-to-date", "postgres": "up-to-date", "api": "built", "tools": "built", "worker": "built"}
			for i, im := range res3.Images {
				if im.State != want[im.Name] {
					t.Errorf("after editing api's file, %s is %s, want %s", im.Name, im.State, want[im.Name])
				}
				// tools' context (the project root) changed, but not what it copies: the engine's
				// cache gives the same image.
				if im.Name == "tools" && im.ID != res2.Images[i].ID {
					t.Errorf("tools was rebuilt to a new image %s (was %s)", im.ID, res2.Images[i].ID)
				}
			}
			res = res3

			t.Run("plain output", func(t *testing.T) {
				stdout, stderr, code := psBuild(t, ctx, engine, dir, "worker")
				if code != 0 {
					t.Fatalf("exit %d: %s", code, stderr)
				}
				for _, want := range []string{"worker: building (containers/worker/Containerfile)", "worker: up-to-date in "} {
					if !strings.Contains(stderr, want) {
						t.Errorf("stderr lacks %q:\n%s", want, stderr)
					}
				}
				if !regexp.MustCompile(`(?m)^worker +` + project + `/worker:latest +up-to-date +\d+\.\ds +-$`).MatchString(stdout) {
					t.Errorf("summary:\n%s", stdout)
				}
			})

			t.Run("bad input", func(t *testing.T) { testBuildBadInput(t, ctx, engine, cli, project, res) })
		})
	}
}

func testBuildBadInput(t *testing.T, ctx context.Context, engine, cli, project string, before buildResult) {
	ids := map[string]string{}
	for _, im := range before.Images {
		ids[im.Ref] = im.ID
	}
	tests := []struct {
		name    string
		files   map[string]string
		code    int
		stderr  []string
		missing []string // images that must not exist afterwards
	}{
		{
			name: "cycle",
			files: map[string]string{
				"containers/a/Dockerfile": "FROM " + project + "/b\n",
				"containers/b/Dockerfile": "FROM " + project + "/a\n",
			},
			code:    2,
			stderr:  []string{"ps-build: dependency cycle: containers/a/Dockerfile (" + project + "/a:latest) → containers/b/Dockerfile"},
			missing: []string{project + "/a", project + "/b"},
		},
		{
			name:    "unknown local FROM",
			files:   map[string]string{"containers/a/Dockerfile": "FROM poststack/base-debian\n", "containers/c/Dockerfile": "\nFROM " + project + "/nope:1\n"},
			code:    2,
			stderr:  []string{"ps-build: containers/c/Dockerfile:2: FROM " + project + "/nope:1: no such image in this project"},
			missing: []string{project + "/a", project + "/c"},
		},
		{
			name: "failing RUN",
			files: map[string]string{
				"containers/bad/Dockerfile":   "FROM poststack/base-debian\nRUN echo about to fail && for i in $(seq 1 40); do echo line $i; done && exit 3\n",
				"containers/after/Dockerfile": "FROM " + project + "/bad\n",
			},
			code: 1,
			stderr: []string{
				"ps-build: bad failed; last 30 lines of logs/containers/bad-",
				"  | line 40",
				"ps-build: building bad failed: bad (containers/bad/Dockerfile): " + engine + " build exited with status",
			},
			missing: []string{project + "/bad", project + "/after"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.files[".poststack.yml"] = "project:\n  name: " + project + "\nenvironments:\n  dev: {}\n"
			writeFiles(t, dir, tc.files)
			removeImages(t, cli, tc.missing...)
			stdout, stderr, code := psBuild(t, ctx, engine, dir, "--json")
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stderr {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr)
				}
			}
			for _, ref := range tc.missing {
				if imageID(ctx, cli, ref) != "" {
					t.Errorf("image %s exists after a failed ps-build", ref)
				}
			}
			for ref, id := range ids {
				if got := imageID(ctx, cli, ref); got != id {
					t.Errorf("%s changed: %s → %s", ref, id, got)
				}
			}
			if tc.code == 1 {
				var res buildResult
				if err := json.Unmarshal([]byte(stdout), &res); err != nil {
					t.Fatalf("--json: %v\n%s", err, stdout)
				}
				states := map[string]string{}
				for _, im := range res.Images {
					states[im.Name] = im.State
				}
				if states["bad"] != "failed" || states["after"] != "skipped" {
					t.Errorf("states %v", states)
				}
				if strings.Contains(stderr, "line 10\n") {
					t.Errorf("more than the last 30 lines shown:\n%s", stderr)
				}
			}
		})
	}
}
