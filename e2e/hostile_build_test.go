package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// TestHostileBuildLeavesLocalSecretsOut builds, on both engines, a project whose
// .dockerignore tries to bring back the machine's secrets (`!.env`, `!.poststack`, `!logs`)
// and whose Dockerfile copies the whole context: the image holds the project's ordinary
// files and none of .poststack/, .env*, logs/, and the password appears in no output or log.
func TestHostileBuildLeavesLocalSecretsOut(t *testing.T) {
	for _, engine := range []string{testenv.EnginePodman, testenv.EngineDocker} {
		t.Run(engine, func(t *testing.T) {
			cli := engineCLI(t, engine)
			ctx := testContext(t, 10*time.Minute)
			project := "psh" + randomHex(t, 4)
			password := "pw-" + randomHex(t, 12)
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				".poststack.yml":            "project:\n  name: " + project + "\nenvironments:\n  dev: {}\n",
				".env":                      "DB_PASSWORD=" + password + "\n",
				".env.prod":                 "DB_PASSWORD=" + password + "\n",
				"logs/poststack.log":        `{"msg":"password ` + password + `"}` + "\n",
				"web/.env.production":       "API_KEY=" + password + "\n",
				".dockerignore":             "*.tmp\n!.env\n!.env.prod\n!.poststack\n!.poststack/x.password\n!logs\n",
				"src/main.txt":              "ordinary file\n",
				"web/index.html":            "<p>hi</p>\n",
				"containers/app/Dockerfile": "FROM " + testenv.DefaultBaseImage + "\nCOPY . /app\nRUN ls -laR /app\n",
			})
			if err := os.Mkdir(filepath.Join(dir, ".poststack"), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ".poststack", "x.password"), []byte(password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ignore, _ := os.ReadFile(filepath.Join(dir, ".dockerignore"))
			ref := project + "/app:latest"
			removeImages(t, cli, ref)

			stdout, stderr, code := psBuild(t, ctx, engine, dir, "--json", "app")
			if code != 0 {
				t.Fatalf("ps-build exit %d\n%s\n%s", code, stdout, stderr)
			}
			var res buildResult
			if err := json.Unmarshal([]byte(stdout), &res); err != nil || len(res.Images) != 1 || res.Images[0].State != "built" {
				t.Fatalf("--json: %v\n%s", err, stdout)
			}
			buildLog, err := os.ReadFile(res.Images[0].Log)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(buildLog), "main.txt") {
				t.Errorf("the build log lacks the RUN ls output:\n%s", buildLog)
			}
			for name, out := range map[string]string{"stdout": stdout, "stderr": stderr, "build log": string(buildLog)} {
				if strings.Contains(out, password) {
					t.Errorf("the password is in the %s:\n%s", name, out)
				}
			}

			found := mustRun(t, ctx, "", nil, cli, "run", "--rm", ref, "sh", "-c", "find /app; grep -rl -- '"+password+"' /app || true")
			paths := map[string]bool{}
			for _, l := range strings.Split(strings.TrimSpace(found), "\n") {
				paths[l] = true
			}
			for _, want := range []string{"/app/src/main.txt", "/app/web/index.html", "/app/.poststack.yml", "/app/containers/app/Dockerfile", "/app/.dockerignore"} {
				if !paths[want] {
					t.Errorf("%s is missing from the image:\n%s", want, found)
				}
			}
			for _, secret := range []string{"/app/.env", "/app/.env.prod", "/app/.poststack", "/app/.poststack/x.password",
				"/app/logs", "/app/logs/poststack.log", "/app/web/.env.production"} {
				if paths[secret] {
					t.Errorf("%s is in the image:\n%s", secret, found)
				}
			}
			if strings.Contains(found, password) {
				t.Errorf("a file of the image holds the password:\n%s", found)
			}
			// The user's ignore file is read, never rewritten.
			if now, _ := os.ReadFile(filepath.Join(dir, ".dockerignore")); string(now) != string(ignore) {
				t.Errorf(".dockerignore changed: %q → %q", ignore, now)
			}
		})
	}
}

// TestHostileBuildArgNotOnCommandLine puts a PATH wrapper in front of each engine's CLI that
// records its arguments (what /proc/PID/cmdline shows every local user): a --build-arg
// TOKEN=secret is passed as `--build-arg TOKEN`, and the build still sees the value.
func TestHostileBuildArgNotOnCommandLine(t *testing.T) {
	for _, engine := range []string{testenv.EnginePodman, testenv.EngineDocker} {
		t.Run(engine, func(t *testing.T) {
			cli := engineCLI(t, engine)
			ctx := testContext(t, 10*time.Minute)
			project := "psa" + randomHex(t, 4)
			secret := "s3cret-" + randomHex(t, 8)
			wrappers := t.TempDir()
			argv := filepath.Join(t.TempDir(), "argv.log")
			script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '" + argv + "'\nexec '" + cli + "' \"$@\"\n"
			if err := os.WriteFile(filepath.Join(wrappers, engine), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{
				".poststack.yml":            "project:\n  name: " + project + "\nenvironments:\n  dev: {}\n",
				"containers/app/Dockerfile": "FROM " + testenv.DefaultBaseImage + "\nARG TOKEN\nARG HTTP_PROXY\nRUN test \"$TOKEN\" = '" + secret + "' && echo token-seen\n",
			})
			removeImages(t, cli, project+"/app:latest")
			env := []string{"PATH=" + wrappers + string(os.PathListSeparator) + os.Getenv("PATH")}
			stdout, stderr, code := psBuildEnv(t, ctx, engine, dir, env, "--build-arg", "TOKEN="+secret, "--build-arg", "HTTP_PROXY=", "app")
			if code != 0 {
				t.Fatalf("ps-build exit %d (the build did not see TOKEN?)\n%s\n%s", code, stdout, stderr)
			}
			recorded, err := os.ReadFile(argv)
			if err != nil {
				t.Fatalf("the wrapper did not run: %v", err)
			}
			if !strings.Contains(string(recorded), "--build-arg TOKEN ") {
				t.Errorf("the build was not given TOKEN by name:\n%s", recorded)
			}
			// A name the engine reads itself stays NAME=value, so the CLI's own proxy is untouched.
			if !strings.Contains(string(recorded), "--build-arg HTTP_PROXY= ") {
				t.Errorf("HTTP_PROXY was passed by name:\n%s", recorded)
			}
			for name, out := range map[string]string{"engine's argv": string(recorded), "stdout": stdout, "stderr": stderr} {
				if strings.Contains(out, secret) {
					t.Errorf("the build arg value is in the %s:\n%s", name, out)
				}
			}
		})
	}
}

// TestHostileBuildLogDirSymlink ships logs/containers as a link to a directory outside the
// project: ps-build refuses it (exit 2), builds nothing and writes nothing there.
func TestHostileBuildLogDirSymlink(t *testing.T) {
	engine := testenv.EnginePodman
	cli := engineCLI(t, engine)
	ctx := testContext(t, 5*time.Minute)
	project := "psl" + randomHex(t, 4)
	dir := t.TempDir()
	outside := t.TempDir()
	writeFiles(t, dir, map[string]string{
		".poststack.yml":            "project:\n  name: " + project + "\nenvironments:\n  dev: {}\n",
		"containers/app/Dockerfile": "FROM " + testenv.DefaultBaseImage + "\nRUN echo built\n",
	})
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "logs", "containers")); err != nil {
		t.Fatal(err)
	}
	removeImages(t, cli, project+"/app:latest")
	stdout, stderr, code := psBuild(t, ctx, engine, dir, "app")
	if code != 2 || !strings.Contains(stderr, "logs/containers is a symbolic link; remove it") {
		t.Errorf("exit %d, want 2 naming logs/containers\n%s\n%s", code, stdout, stderr)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("ps-build wrote outside the project: %v", entries)
	}
	if imageID(ctx, cli, project+"/app:latest") != "" {
		t.Error("the image was built")
	}
}
