package projcontainers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

func TestEnvKey(t *testing.T) {
	for in, want := range map[string]string{"api": "API", "my-api": "MY_API", "web.v2": "WEB_V2", "a_b": "A_B"} {
		if got := EnvKey(in); got != want {
			t.Errorf("EnvKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"containers/web/Dockerfile":      "FROM x\n",
		"containers/api/Containerfile":   "FROM x\n",
		"containers/postgres/Dockerfile": "FROM x\n",
		"containers/pods/app.yaml":       "kind: Pod\n",
	})
	p := Project{Name: "shop", Root: root, Containers: "containers", Environ: []string{"POSTSTACK_WEB_CONTAINER_NAME=frontend"}}
	defs, err := Discover(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Definition{
		{Name: "api", Image: "shop/api:latest", Source: "containers/api/Containerfile", Container: "shop-api"},
		{Name: "web", Image: "shop/web:latest", Source: "containers/web/Dockerfile", Container: "frontend"},
	}
	if !slices.Equal(defs, want) {
		t.Errorf("Discover = %+v\nwant %+v", defs, want)
	}
	p.Environ = []string{"POSTSTACK_WEB_CONTAINER_NAME=--all"}
	if _, err := Discover(p); exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "POSTSTACK_WEB_CONTAINER_NAME") {
		t.Errorf("a container name starting with '-': %v (exit %d), want exit 2 naming the variable", err, exitcode.Of(err))
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		spec         string
		exposed      []string
		host, target int
		bad          bool
	}{
		{spec: "9000", exposed: []string{"8080/tcp"}, host: 9000, target: 8080},
		{spec: "9000", host: 9000, target: 9000},
		{spec: "9000", exposed: []string{"53/udp"}, host: 9000, target: 9000},
		{spec: "8080", exposed: []string{"8080/tcp", "9090/tcp"}, host: 8080, target: 8080},
		{spec: "9000", exposed: []string{"8080/tcp", "9090/tcp"}, bad: true},
		{spec: "9000:9090", exposed: []string{"8080/tcp", "9090/tcp"}, host: 9000, target: 9090},
		{spec: "0", bad: true},
		{spec: "70000", bad: true},
		{spec: "80:x", bad: true},
	}
	for _, tt := range tests {
		m, err := parsePort(tt.spec, tt.exposed)
		switch {
		case tt.bad && err == nil:
			t.Errorf("parsePort(%q, %v) = %+v, want an error", tt.spec, tt.exposed, m)
		case !tt.bad && err != nil:
			t.Errorf("parsePort(%q, %v): %v", tt.spec, tt.exposed, err)
		case !tt.bad && (m.HostPort != tt.host || m.ContainerPort != tt.target || m.HostIP != BindAddress):
			t.Errorf("parsePort(%q, %v) = %+v, want %s:%d->%d", tt.spec, tt.exposed, m, BindAddress, tt.host, tt.target)
		}
	}
}

// appDockerfile is a project image that runs until it is killed; STOPSIGNAL SIGKILL because
// sleep as PID 1 ignores SIGTERM, and a stop would wait out the engine's grace period.
const appDockerfile = "FROM " + testenv.DefaultBaseImage + "\nEXPOSE 8080\nSTOPSIGNAL SIGKILL\nCMD [\"sleep\", \"infinity\"]\n"

// fixture is a project on a real engine with its images built.
type fixture struct {
	eng *engine.Engine
	p   Project
}

// forEachEngine runs fn per real engine (skipped, or failed under CI, by testenv when missing).
// The docker runs go in parallel; podman's do not: podman 4.3 loses a freshly built image now
// and then while another test of the process removes one ("image … is not built" right after
// its build).
func forEachEngine(t *testing.T, fn func(t *testing.T, eng *engine.Engine)) {
	for _, name := range []string{engine.Podman, engine.Docker} {
		t.Run(name, func(t *testing.T) {
			if name == engine.Docker {
				t.Parallel()
			}
			var opts []engine.Option
			switch name {
			case engine.Podman:
				opts = append(opts, engine.WithPath(testenv.Podman(t)))
			case engine.Docker:
				opts = append(opts, engine.WithEnviron(append(os.Environ(), "DOCKER_HOST="+testenv.Docker(t))))
			}
			testenv.BaseImage(t, name)
			eng, err := engine.New(name, opts...)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, eng)
		})
	}
}

// newFixture writes a project with the given containers/<name>/Dockerfile contents, builds
// them as ps-build tags them, and removes its containers and images when the test ends.
func newFixture(t *testing.T, eng *engine.Engine, dockerfiles map[string]string, files map[string]string) *fixture {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	f := &fixture{eng: eng, p: Project{Name: "pct" + hex.EncodeToString(b), Root: root, Containers: "containers", Restart: "unless-stopped"}}
	all := map[string]string{}
	for k, v := range files {
		all[k] = v
	}
	for name, df := range dockerfiles {
		all["containers/"+name+"/Dockerfile"] = df
	}
	writeFiles(t, root, all)
	ctx := testCtx(t)
	t.Cleanup(func() {
		ctx := context.Background()
		cs, _ := eng.ListContainers(ctx, map[string]string{LabelProject: f.p.Name})
		for _, c := range cs {
			_ = eng.Remove(ctx, c.ID, true, true)
		}
		for name := range dockerfiles {
			_ = eng.RemoveImage(ctx, f.p.Name+"/"+name+":latest", true)
		}
	})
	for name := range dockerfiles {
		if _, err := eng.Build(ctx, engine.BuildOptions{
			ContextDir: root, Dockerfile: filepath.Join(root, "containers", name, "Dockerfile"),
			Tags: []string{f.p.Name + "/" + name + ":latest"}, Pull: "never",
		}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// recording is eng's CLI behind a script that appends each run's arguments to a log first, as
// /proc/PID/cmdline shows them to every local user.
func recording(t *testing.T, eng *engine.Engine) (*engine.Engine, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "argv.log")
	script := filepath.Join(dir, eng.Name())
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$*\" >> "+log+"\nexec "+eng.Path()+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	environ := os.Environ()
	if eng.Name() == engine.Docker {
		environ = append(environ, "DOCKER_HOST="+testenv.Docker(t))
	}
	rec, err := engine.New(eng.Name(), engine.WithPath(script), engine.WithEnviron(environ))
	if err != nil {
		t.Fatal(err)
	}
	return rec, log
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func actions(res []Started) []string {
	var out []string
	for _, r := range res {
		out = append(out, r.Name+":"+r.Action)
	}
	return out
}

func TestLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng *engine.Engine) {
		ctx := testCtx(t)
		f := newFixture(t, eng, map[string]string{"app": appDockerfile, "worker": appDockerfile}, map[string]string{
			"containers/postgres/Dockerfile": "FROM " + testenv.DefaultBaseImage + "\n", // the database's image: not started
		})
		p := f.p

		res, err := Start(ctx, eng, p, StartOptions{Wait: true, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := actions(res), []string{"app:created", "worker:created"}; !slices.Equal(got, want) {
			t.Errorf("first start: %v, want %v", got, want)
		}
		for _, r := range res {
			if r.State != "running" || r.Container != p.Name+"-"+r.Name || r.Image != p.Name+"/"+r.Name+":latest" {
				t.Errorf("started %+v: want running %s-%s from %s/%s:latest", r, p.Name, r.Name, p.Name, r.Name)
			}
		}
		c, err := eng.InspectContainer(ctx, p.Name+"-app")
		if err != nil {
			t.Fatal(err)
		}
		if c.Labels[LabelProject] != p.Name || c.Labels[LabelContainer] != "app" || c.RestartPolicy != "unless-stopped" {
			t.Errorf("container labels %v, restart %q: want the project's labels and unless-stopped", c.Labels, c.RestartPolicy)
		}

		st, err := List(ctx, eng, p.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(st) != 2 || st[0].Name != "app" || !st[0].Running || st[0].StartedAt.IsZero() || st[1].Name != "worker" {
			t.Errorf("List = %+v, want app and worker running", st)
		}

		res, err = Start(ctx, eng, p, StartOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := actions(res), []string{"app:running", "worker:running"}; !slices.Equal(got, want) {
			t.Errorf("second start: %v, want %v (nothing changed)", got, want)
		}

		stopped, err := Stop(ctx, eng, p, []string{"app"}, false, -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(stopped) != 1 || stopped[0].Action != "stopped" || stopped[0].Container != p.Name+"-app" {
			t.Errorf("Stop app = %+v", stopped)
		}
		if c, err := eng.InspectContainer(ctx, p.Name+"-app"); err != nil || c.Running {
			t.Errorf("app after stop: %+v, %v; want kept, not running", c, err)
		}
		res, err = Start(ctx, eng, p, StartOptions{Names: []string{"app"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := actions(res), []string{"app:started"}; !slices.Equal(got, want) {
			t.Errorf("start after stop: %v, want %v", got, want)
		}
		// A changed setting recreates the container.
		p2 := p
		p2.Environ = []string{"POSTSTACK_APP_ENV_MODE=changed"}
		res, err = Start(ctx, eng, p2, StartOptions{Names: []string{"app"}})
		if err != nil {
			t.Fatal(err)
		}
		if got, want := actions(res), []string{"app:recreated"}; !slices.Equal(got, want) {
			t.Errorf("start with a new variable: %v, want %v", got, want)
		}

		if _, err := Remove(ctx, eng, p, []string{"app"}, false, nil); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("rm of a running container without force: %v (exit %d), want exit 2", err, exitcode.Of(err))
		}
		if _, err := eng.InspectContainer(ctx, p.Name+"-app"); err != nil {
			t.Errorf("the refused rm removed the container: %v", err)
		}
		stopped, err = Stop(ctx, eng, p, nil, true, -1, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(stopped) != 2 || stopped[0].Action != "stopped" || stopped[1].Action != "stopped" {
			t.Errorf("Stop --all = %+v, want both stopped", stopped)
		}
		removed, err := Remove(ctx, eng, p, []string{"app", p.Name + "-worker"}, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(removed) != 2 || removed[0].Name != "app" || removed[1].Name != "worker" {
			t.Errorf("Remove = %+v", removed)
		}
		if st, err := List(ctx, eng, p.Name); err != nil || len(st) != 0 {
			t.Errorf("List after rm = %+v, %v; want none", st, err)
		}
		if _, err := Remove(ctx, eng, p, []string{"app"}, true, nil); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("rm of a container that is gone: %v, want exit 2", err)
		}
		if _, err := Start(ctx, eng, p, StartOptions{Names: []string{"postgres"}}); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("start postgres: %v, want exit 2 (the database image is not a project container)", err)
		}
	})
}

func TestOverridesReachTheContainer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng *engine.Engine) {
		ctx := testCtx(t)
		f := newFixture(t, eng, map[string]string{"my-app": appDockerfile}, map[string]string{
			"data/hello.txt": "hello from the project\n",
		})
		envFile := filepath.Join(t.TempDir(), "app.env") // outside the project: the user named it
		writeFiles(t, filepath.Dir(envFile), map[string]string{"app.env": "FROM_FILE=file\nOVERRIDDEN=file\n"})
		port := freePort(t)
		name := f.p.Name + "-custom"
		p := f.p
		p.Environ = []string{
			"POSTSTACK_MY_APP_CONTAINER_NAME=" + name,
			"POSTSTACK_MY_APP_PORT=" + strconv.Itoa(port),
			"POSTSTACK_MY_APP_ENV_GREETING=hi there",
			"POSTSTACK_MY_APP_ENV_OVERRIDDEN=env",
			"POSTSTACK_MY_APP_ENV_API_TOKEN=tok-s3cret-value",
			"POSTSTACK_OTHER_ENV_NOT_MINE=x",
		}
		rec, argv := recording(t, eng)
		var secrets []string
		res, err := Start(ctx, rec, p, StartOptions{
			EnvFiles: []string{envFile}, Volumes: []string{"data:/data:ro"}, Wait: true,
			Secret: func(s string) { secrets = append(secrets, s) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(res) != 1 || res[0].Container != name {
			t.Fatalf("Start = %+v, want one container named %s", res, name)
		}
		want := Port{HostIP: BindAddress, HostPort: port, ContainerPort: 8080, Protocol: "tcp"}
		if !slices.Equal(res[0].Ports, []Port{want}) {
			t.Errorf("ports %+v, want %+v (the image EXPOSEs 8080)", res[0].Ports, want)
		}
		if !slices.Equal(secrets, []string{"tok-s3cret-value"}) {
			t.Errorf("secrets handed to the caller: %q, want the token only", secrets)
		}
		if log, err := os.ReadFile(argv); err != nil {
			t.Fatal(err)
		} else if strings.Contains(string(log), "tok-s3cret-value") || !strings.Contains(string(log), "-e API_TOKEN ") ||
			!strings.Contains(string(log), "-e GREETING=hi there ") {
			t.Errorf("engine command lines: want the token passed by name only, the greeting by value:\n%s", log)
		}
		out, err := eng.Exec(ctx, name, []string{"sh", "-c", `printf '%s|%s|%s|%s|%s|' "$GREETING" "$OVERRIDDEN" "$FROM_FILE" "$API_TOKEN" "${NOT_MINE-unset}"; cat /data/hello.txt`}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := "hi there|env|file|tok-s3cret-value|unset|hello from the project\n"; out != want {
			t.Errorf("in the container: %q, want %q", out, want)
		}
		if _, err := eng.Exec(ctx, name, []string{"touch", "/data/x"}, nil, nil); err == nil {
			t.Errorf("the :ro volume is writable")
		}
		c, err := eng.InspectContainer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Mounts) != 1 || c.Mounts[0].Source != filepath.Join(f.p.Root, "data") || c.Mounts[0].Target != "/data" {
			t.Errorf("mounts %+v, want the project's data/ on /data", c.Mounts)
		}
		// --port wins over POSTSTACK_<NAME>_PORT, and a port in use is refused before anything changes.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		busy := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		_, err = Start(ctx, eng, p, StartOptions{Port: busy, EnvFiles: []string{envFile}, Volumes: []string{"data:/data:ro"}})
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "in use") {
			t.Errorf("start on a busy port: %v (exit %d), want exit 2 'in use'", err, exitcode.Of(err))
		}
		if c2, err := eng.InspectContainer(ctx, name); err != nil || c2.ID != c.ID || !c2.Running {
			t.Errorf("after the refused start: %+v, %v; want the same container, running", c2, err)
		}

		noNet := p
		noNet.Network = p.Name + "-nosuchnet"
		if _, err := Start(ctx, eng, noNet, StartOptions{}); exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("start on a missing network: %v (exit %d), want exit 2", err, exitcode.Of(err))
		}
		for _, o := range []StartOptions{
			{Volumes: []string{"nope:/data"}},
			{Volumes: []string{"data:relative"}},
			{EnvFiles: []string{filepath.Join(t.TempDir(), "missing.env")}},
			{Names: []string{"nosuch"}},
		} {
			if _, err := Start(ctx, eng, p, o); exitcode.Of(err) != exitcode.Usage {
				t.Errorf("Start(%+v): %v (exit %d), want exit 2", o, err, exitcode.Of(err))
			}
		}
	})
}

func TestStrangerWithOurNameIsLeftAlone(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng *engine.Engine) {
		ctx := testCtx(t)
		f := newFixture(t, eng, map[string]string{"app": appDockerfile}, nil)
		name := f.p.Name + "-app"
		id, err := eng.Run(ctx, engine.RunOptions{Name: name, Image: f.p.Name + "/app:latest", Labels: map[string]string{LabelProject: "someone-else", LabelContainer: "app"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = eng.Remove(context.Background(), id, true, false) })

		_, err = Start(ctx, eng, f.p, StartOptions{})
		checkStranger(t, "start", err, name)
		_, err = Stop(ctx, eng, f.p, []string{"app"}, false, -1, nil)
		checkStranger(t, "stop", err, name)
		_, err = Remove(ctx, eng, f.p, []string{"app"}, true, nil)
		checkStranger(t, "rm", err, name)
		_, err = Remove(ctx, eng, f.p, []string{name}, true, nil)
		checkStranger(t, "rm by container name", err, name)
		if st, err := List(ctx, eng, f.p.Name); err != nil || len(st) != 0 {
			t.Errorf("status lists %+v, %v; want nothing of someone else's", st, err)
		}
		stopped, err := Stop(ctx, eng, f.p, nil, true, -1, nil)
		if err != nil || len(stopped) != 0 {
			t.Errorf("stop --all: %+v, %v; want nothing stopped", stopped, err)
		}
		c, err := eng.InspectContainer(ctx, name)
		if err != nil || c.ID != id || !c.Running {
			t.Errorf("the stranger after it all: %+v, %v; want it untouched and running", c, err)
		}
	})
}

func checkStranger(t *testing.T, what string, err error, name string) {
	t.Helper()
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), name) || !strings.Contains(err.Error(), "left alone") {
		t.Errorf("%s with a stranger named %s: %v (exit %d), want exit 2 saying it is left alone", what, name, err, exitcode.Of(err))
	}
}

func TestWait(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng *engine.Engine) {
		ctx := testCtx(t)
		f := newFixture(t, eng, map[string]string{
			"exits": "FROM " + testenv.DefaultBaseImage + "\nCMD [\"sh\", \"-c\", \"echo going away now; exit 3\"]\n",
			// The first check runs after an hour: the container stays "starting".
			"slow": "FROM " + testenv.DefaultBaseImage + "\nSTOPSIGNAL SIGKILL\nHEALTHCHECK --interval=1h CMD [\"true\"]\nCMD [\"sleep\", \"infinity\"]\n",
		}, nil)
		p := f.p
		p.Restart = "no"
		_, err := Start(ctx, eng, p, StartOptions{Names: []string{"exits"}, Wait: true, Timeout: 30 * time.Second})
		var nr *NotReadyError
		if !errors.As(err, &nr) || exitcode.Of(err) != exitcode.Failure || !strings.Contains(nr.Error(), "exited with code 3") ||
			!strings.Contains(nr.Detail(), "going away now") {
			t.Errorf("wait for a container that exits: %v (exit %d), want exit 1 with its code and log", err, exitcode.Of(err))
		}
		_, err = Start(ctx, eng, p, StartOptions{Names: []string{"slow"}, Wait: true, Timeout: 2 * time.Second})
		var te *WaitTimeoutError
		if !errors.As(err, &te) || exitcode.Of(err) != exitcode.Timeout || !strings.Contains(te.State, "starting") {
			t.Errorf("wait for a container that never turns healthy: %v (exit %d), want exit 4 while starting", err, exitcode.Of(err))
		}
	})
}

// TestCrashLoopStopsAndGoes: a container that exits at once under a restart policy is between
// runs most of the time; stop must still end the loop and rm --force must still remove it.
func TestCrashLoopStopsAndGoes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, eng *engine.Engine) {
		ctx := testCtx(t)
		f := newFixture(t, eng, map[string]string{"loop": "FROM " + testenv.DefaultBaseImage + "\nCMD [\"true\"]\n"}, nil)
		p := f.p
		p.Restart = "always"
		if _, err := Start(ctx, eng, p, StartOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // a few restarts
		if _, err := Stop(ctx, eng, p, nil, true, -1, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Remove(ctx, eng, p, []string{"loop"}, true, nil); err != nil {
			t.Fatal(err)
		}
		if st, err := List(ctx, eng, p.Name); err != nil || len(st) != 0 {
			t.Errorf("after rm --force: %+v, %v; want nothing", st, err)
		}
	})
}
