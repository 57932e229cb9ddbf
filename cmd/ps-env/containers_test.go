package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/projcontainers"
)

func TestContainersUsage(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"containers", "stop"}, `missing --container NAME \(or --all\)`},
		{[]string{"containers", "stop", "--all", "--container", "app"}, `not both`},
		{[]string{"containers", "stop", "app"}, `unexpected argument "app"`},
		{[]string{"containers", "rm"}, `missing NAME`},
		{[]string{"containers", "rm", "app", "--bogus"}, `flag provided but not defined: -bogus`},
		{[]string{"containers", "start", "app"}, `unexpected argument "app"`},
		{[]string{"containers", "status", "app"}, `unexpected argument "app"`},
		{[]string{"containers", "start", "--timeout", "soon"}, `invalid value "soon"`},
	} {
		var stdout, stderr bytes.Buffer
		code := runEnv(context.Background(), tt.args, cli.Env{Environ: []string{"PATH=" + os.Getenv("PATH")}, Dir: dir, Stdout: &stdout, Stderr: &stderr})
		if code != 2 || !regexp.MustCompile(tt.stderr).MatchString(stderr.String()) || stdout.Len() > 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 matching %s", tt.args, code, stdout.String(), stderr.String(), tt.stderr)
		}
	}
}

func TestContainersRenderers(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	st := ctrStatusReport{Project: "shop", Now: now, Containers: []projcontainers.Status{
		{Name: "api", Container: "shop-api", Image: "shop/api:latest", State: "running", Running: true, StartedAt: now.Add(-(3*time.Minute + 12*time.Second)),
			Ports: []projcontainers.Port{{HostIP: "127.0.0.1", HostPort: 9000, ContainerPort: 8080, Protocol: "tcp"}}},
		{Name: "worker", Container: "shop-worker", Image: "shop/worker:latest", State: "exited", ExitCode: 3, StartedAt: now.Add(-time.Hour)},
	}}
	var text, js bytes.Buffer
	if err := st.RenderText(&text); err != nil {
		t.Fatal(err)
	}
	want := "NAME    CONTAINER    IMAGE               STATE       PORTS                     UPTIME\n" +
		"api     shop-api     shop/api:latest     running     127.0.0.1:9000->8080/tcp  3m12s\n" +
		"worker  shop-worker  shop/worker:latest  exited (3)  -                         -\n"
	if text.String() != want {
		t.Errorf("status text:\n%s\nwant:\n%s", text.String(), want)
	}
	if err := st.RenderJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["uptime_ms"] != float64(192000) || got[1]["uptime_ms"] != float64(0) || got[1]["exit_code"] != float64(3) {
		t.Errorf("status JSON: %s", js.String())
	}
	for _, r := range []cli.Renderer{ctrStatusReport{Project: "shop"}, ctrStartReport(nil), ctrChangedReport(nil)} {
		js.Reset()
		if err := r.RenderJSON(&js); err != nil || js.String() != "[]\n" {
			t.Errorf("%T with nothing: JSON %q, %v; want []", r, js.String(), err)
		}
	}
	text.Reset()
	if err := (ctrStatusReport{Project: "shop"}).RenderText(&text); err != nil || text.String() != "no containers of project shop\n" {
		t.Errorf("empty status text %q, %v", text.String(), err)
	}
	for d, want := range map[time.Duration]string{45 * time.Second: "45s", 2*time.Hour + 5*time.Minute: "2h5m", 76 * time.Hour: "3d4h"} {
		if got := ctrUptime(d); got != want {
			t.Errorf("ctrUptime(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestContainersCommands drives start, status, stop and rm through the CLI on each real
// engine: --json and text output, an env override that reaches the container without showing
// up in any output, and a stranger with the container's name left alone with exit 2.
func TestContainersCommands(t *testing.T) {
	t.Parallel()
	for _, name := range []string{engine.Podman, engine.Docker} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			environ := append(os.Environ(), "GITHUB_ACTIONS=", "POSTSTACK_LOG_LEVEL=debug", "NO_COLOR=1")
			var opts []engine.Option
			if name == engine.Podman {
				opts = append(opts, engine.WithPath(testenv.Podman(t)))
			} else {
				environ = append(environ, "DOCKER_HOST="+testenv.Docker(t))
			}
			testenv.BaseImage(t, name)
			eng, err := engine.New(name, append(opts, engine.WithEnviron(environ))...)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()

			b := make([]byte, 4)
			if _, err := rand.Read(b); err != nil {
				t.Fatal(err)
			}
			project := "pcc" + hex.EncodeToString(b)
			dir := t.TempDir()
			for file, content := range map[string]string{
				".poststack.yml":            "project:\n  name: " + project + "\nenvironments:\n  dev: {}\n",
				"containers/app/Dockerfile": "FROM " + testenv.DefaultBaseImage + "\nEXPOSE 8080\nSTOPSIGNAL SIGKILL\nCMD [\"sleep\", \"infinity\"]\n",
				"app.env":                   "FROM_FILE=yes\n",
				"web/index.html":            "<p>hi</p>\n",
			} {
				p := filepath.Join(dir, file)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ref := project + "/app:latest"
			t.Cleanup(func() {
				ctx := context.Background()
				cs, _ := eng.ListContainers(ctx, map[string]string{projcontainers.LabelProject: project})
				for _, c := range cs {
					_ = eng.Remove(ctx, c.ID, true, true)
				}
				_ = eng.RemoveImage(ctx, ref, true)
			})
			if _, err := eng.Build(ctx, engine.BuildOptions{ContextDir: dir, Dockerfile: "containers/app/Dockerfile", Tags: []string{ref}, Pull: "never"}); err != nil {
				t.Fatal(err)
			}

			const password = "pw-Zq81vXr3kT"
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := l.Addr().(*net.TCPAddr).Port
			l.Close()
			env := append(environ, "POSTSTACK_APP_ENV_DB_PASSWORD="+password, "POSTSTACK_APP_ENV_GREETING=hello")
			run := func(args ...string) (string, string, int) {
				t.Helper()
				var stdout, stderr bytes.Buffer
				code := runEnv(ctx, append([]string{"--container-runtime", name}, args...), cli.Env{Environ: env, Dir: dir, Stdout: &stdout, Stderr: &stderr})
				if strings.Contains(stdout.String()+stderr.String(), password) {
					t.Errorf("%v shows the password:\nstdout: %s\nstderr: %s", args, stdout.String(), stderr.String())
				}
				return stdout.String(), stderr.String(), code
			}
			must := func(args ...string) string {
				t.Helper()
				out, errOut, code := run(args...)
				if code != 0 {
					t.Fatalf("%v: exit %d\n%s", args, code, errOut)
				}
				return out
			}
			decode := func(out string, v any) {
				t.Helper()
				if err := json.Unmarshal([]byte(out), v); err != nil {
					t.Fatalf("not JSON: %v\n%s", err, out)
				}
			}

			var started []projcontainers.Started
			decode(must("containers", "start", "--json", "--wait", "--port", strconv.Itoa(port), "--env-file", "app.env", "--volume", "web:/srv"), &started)
			if len(started) != 1 || started[0].Action != "created" || started[0].State != "running" || started[0].Container != project+"-app" ||
				len(started[0].Ports) != 1 || started[0].Ports[0].HostPort != port || started[0].Ports[0].ContainerPort != 8080 {
				t.Errorf("start --json: %+v", started)
			}
			out, err := eng.Exec(ctx, project+"-app", []string{"sh", "-c", `printf '%s|%s|%s|' "$DB_PASSWORD" "$GREETING" "$FROM_FILE"; cat /srv/index.html`}, nil, nil)
			if want := password + "|hello|yes|<p>hi</p>\n"; err != nil || out != want {
				t.Errorf("in the container: %q, %v; want %q", out, err, want)
			}

			var status []map[string]any
			decode(must("containers", "status", "--json"), &status)
			if len(status) != 1 || status[0]["name"] != "app" || status[0]["running"] != true || status[0]["image"] == "" {
				t.Errorf("status --json: %v", status)
			}
			text := must("containers", "status")
			if !regexp.MustCompile(`(?m)^NAME +CONTAINER +IMAGE +STATE +PORTS +UPTIME\napp +` + project + `-app +\S*` + project + `/app:latest +running +127\.0\.0\.1:` + strconv.Itoa(port) + `->8080/tcp +\d+s\n$`).MatchString(text) {
				t.Errorf("status:\n%s", text)
			}
			if out := must("containers", "start", "--port", strconv.Itoa(port), "--env-file", "app.env", "--volume", "web:/srv"); !regexp.MustCompile(`(?m)^app +` + project + `-app +running +running`).MatchString(out) {
				t.Errorf("start again, same settings:\n%s", out)
			}

			var changed []projcontainers.Changed
			decode(must("containers", "stop", "--all", "--json"), &changed)
			if len(changed) != 1 || changed[0].Action != "stopped" {
				t.Errorf("stop --all --json: %+v", changed)
			}
			if out := must("containers", "rm", "app"); out != "removed app ("+project+"-app)\n" {
				t.Errorf("rm: %q", out)
			}
			if out := must("containers", "status"); out != "no containers of project "+project+"\n" {
				t.Errorf("status after rm: %q", out)
			}

			// A container of someone else's with our name: every command leaves it alone.
			id, err := eng.Run(ctx, engine.RunOptions{Name: project + "-app", Image: ref})
			if err != nil {
				t.Fatal(err)
			}
			// It carries no label of the project, so the cleanup above does not find it.
			t.Cleanup(func() {
				if err := eng.Remove(context.Background(), id, true, true); err != nil {
					t.Errorf("removing the stranger: %v", err)
				}
			})
			for _, args := range [][]string{{"containers", "start"}, {"containers", "stop", "--container", "app"}, {"containers", "rm", "--force", "app"}} {
				stdout, stderr, code := run(args...)
				if code != 2 || stdout != "" || !strings.Contains(stderr, project+"-app exists but is not the project container app") {
					t.Errorf("%v with a stranger: exit %d\nstdout: %s\nstderr: %s", args, code, stdout, stderr)
				}
			}
			if c, err := eng.InspectContainer(ctx, project+"-app"); err != nil || c.ID != id || !c.Running {
				t.Errorf("the stranger: %+v, %v; want it running, untouched", c, err)
			}
		})
	}
}
