package compose

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// setup is one engine with its compose front-end.
type setup struct {
	eng   *engine.Engine
	fe    *Frontend
	d     *Deployer
	image string
	env   []string // the front-end's environment as the test passes it to Detect
}

// missing skips the test, or fails it under CI (which runs scripts/setup.sh first).
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func newEngine(t *testing.T, name string) (*engine.Engine, []string) {
	t.Helper()
	env := os.Environ()
	var opts []engine.Option
	switch name {
	case engine.Podman:
		testenv.PodmanSocket(t)
		opts = append(opts, engine.WithPath(testenv.Podman(t)))
	case engine.Docker:
		env = append(env, "DOCKER_HOST="+testenv.Docker(t))
		opts = append(opts, engine.WithEnviron(env))
	}
	eng, err := engine.New(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return eng, env
}

// forEachEngine runs fn on podman (through its API socket) and on docker, in parallel: the
// tests wait on the engines and use names of their own.
func forEachEngine(t *testing.T, fn func(t *testing.T, s setup)) {
	t.Parallel()
	for _, name := range []string{engine.Podman, engine.Docker} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eng, env := newEngine(t, name)
			image := testenv.BaseImage(t, name)
			fe, err := Detect(testCtx(t), eng, env)
			if exitcode.Of(err) == exitcode.Usage {
				missing(t, "%v", err)
			}
			if err != nil {
				t.Fatal(err)
			}
			if fe.Name != DockerCompose {
				missing(t, "front-end %s %s, want docker compose v2 (scripts/setup.sh compose)", fe.Name, fe.Version)
			}
			fn(t, setup{eng: eng, fe: fe, d: New(fe, eng), image: image, env: env})
		})
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func uniqueProject(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pstc" + hex.EncodeToString(b)
}

// environment makes an environment's network and removes what the test left of it.
func (s setup) environment(t *testing.T, project, env string) string {
	t.Helper()
	network := project + "-" + env
	if err := s.eng.CreateNetwork(testCtx(t), network, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if err := s.d.RemoveAll(ctx, project, env); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := s.eng.RemoveNetwork(ctx, network); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return network
}

func (s setup) unit(t *testing.T, project, env, name, file string) deploy.Unit {
	return deploy.Unit{Kind: config.Compose, Source: "compose.yml", Rendered: []byte(strings.ReplaceAll(file, "IMAGE", s.image)),
		Project: project, Environment: env, Name: name, Network: project + "-" + env, Init: name != deploy.UnitDeploy, Dir: t.TempDir()}
}

func (s setup) plan(t *testing.T, u deploy.Unit) *deploy.Plan {
	t.Helper()
	p, err := s.d.Plan(testCtx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (s setup) apply(t *testing.T, p *deploy.Plan) []deploy.Change {
	t.Helper()
	ch, err := s.d.Apply(testCtx(t), p)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestInitExitCodesAndLogs(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s setup) {
		project := uniqueProject(t)
		network := s.environment(t, project, "ci")
		// A container outside compose on the environment's network, as the database is.
		peer := network + "-postgres"
		if _, err := s.eng.Run(testCtx(t), engine.RunOptions{Name: peer, Image: s.image, Network: network,
			Cmd: []string{"sleep", "300"}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.eng.Remove(context.Background(), peer, true, false) })
		u := s.unit(t, project, "ci", deploy.InitUnit(1), `
services:
  ok:
    image: IMAGE
    command: ["sh", "-c", "exec printenv V"]
    environment:
      V: "$HOME and ${X} and $$ stay"
  resolve:
    image: IMAGE
    command: ["sh", "-c", "exec getent hosts `+peer+`"]
  bad:
    image: IMAGE
    command: ["sh", "-c", "echo failing >&2; exit 3"]
`)
		p := s.plan(t, u)
		ch := s.apply(t, p)
		if len(ch) != 3 || ch[0] != (deploy.Change{Name: "ok", Action: deploy.ActionCreated}) {
			t.Errorf("changes %+v, want ok, resolve, bad created", ch)
		}
		exits, err := s.d.WaitExited(testCtx(t), p)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]deploy.Exit{}
		for _, e := range exits {
			got[e.Service] = e
		}
		if e := got["ok"]; e.Code != 0 || e.Logs != "$HOME and ${X} and $$ stay\n" || e.Container != project+"-ci-init-1-ok-1" {
			t.Errorf("ok: %+v, want exit 0 printing the value literally", e)
		}
		if e := got["resolve"]; e.Code != 0 || !strings.Contains(e.Logs, peer) {
			t.Errorf("resolve: %+v, want exit 0 resolving %s on the environment's network", e, peer)
		}
		if e := got["bad"]; e.Code != 3 || e.Logs != "failing\n" {
			t.Errorf("bad: %+v, want exit 3 with its stderr", e)
		}
		if err := s.d.Remove(testCtx(t), p); err != nil {
			t.Fatal(err)
		}
		left, err := s.d.Containers(testCtx(t), project, "ci", "")
		if err != nil || len(left) != 0 {
			t.Errorf("after Remove: %+v, %v", left, err)
		}
		if _, err := s.eng.InspectNetwork(testCtx(t), network); err != nil {
			t.Errorf("Remove took the environment's network: %v", err)
		}
	})
}

const healthyFile = `
services:
  web:
    image: IMAGE
    command: ["sh", "-c", "exec sleep 300"]
    stop_grace_period: 1s
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      start_period: 0s
`

func TestDeployHealthyUnchangedAndTwoEnvironments(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s setup) {
		project := uniqueProject(t)
		s.environment(t, project, "a")
		s.environment(t, project, "b")
		pa := s.plan(t, s.unit(t, project, "a", deploy.UnitDeploy, healthyFile))
		pb := s.plan(t, s.unit(t, project, "b", deploy.UnitDeploy, healthyFile))
		for _, p := range []*deploy.Plan{pa, pb} {
			if ch := s.apply(t, p); len(ch) != 1 || ch[0].Action != deploy.ActionCreated {
				t.Errorf("first apply: %+v", ch)
			}
		}
		for _, p := range []*deploy.Plan{pa, pb} {
			cs, err := s.d.WaitReady(testCtx(t), p, 90*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) != 1 || cs[0].Health != "healthy" || cs[0].State != "running" || cs[0].Config != p.Fingerprint ||
				cs[0].Service != "web" || cs[0].Unit != deploy.UnitDeploy {
				t.Errorf("ready: %+v", cs)
			}
		}
		if ch := s.apply(t, pa); len(ch) != 1 || ch[0] != (deploy.Change{Name: "web", Action: deploy.ActionUnchanged}) {
			t.Errorf("second apply: %+v, want web unchanged", ch)
		}
		changed := s.unit(t, project, "a", deploy.UnitDeploy, strings.Replace(healthyFile, "sleep 300", "sleep 301", 1))
		if ch := s.apply(t, s.plan(t, changed)); len(ch) != 1 || ch[0] != (deploy.Change{Name: "web", Action: deploy.ActionRecreated}) {
			t.Errorf("changed apply: %+v, want web recreated", ch)
		}
		if err := s.d.RemoveAll(testCtx(t), project, "a"); err != nil {
			t.Fatal(err)
		}
		a, err := s.d.Containers(testCtx(t), project, "a", "")
		if err != nil || len(a) != 0 {
			t.Errorf("environment a after RemoveAll: %+v, %v", a, err)
		}
		b, err := s.d.Containers(testCtx(t), project, "b", deploy.UnitDeploy)
		if err != nil || len(b) != 1 || b[0].State != "running" {
			t.Errorf("environment b after RemoveAll of a: %+v, %v", b, err)
		}
	})
}

func TestWaitReadyFailures(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s setup) {
		project := uniqueProject(t)
		s.environment(t, project, "w")
		u := s.unit(t, project, "w", deploy.UnitDeploy, `
services:
  once:
    image: IMAGE
    command: ["sh", "-c", "exit 0"]
  after:
    image: IMAGE
    command: ["sh", "-c", "echo up; exec sleep 300"]
    stop_grace_period: 1s
    depends_on:
      once: {condition: service_completed_successfully}
    healthcheck:
      test: ["CMD", "false"]
      interval: 1s
      retries: 1000
`)
		p := s.plan(t, u)
		s.apply(t, p)
		_, err := s.d.WaitReady(testCtx(t), p, 4*time.Second)
		var we *WaitError
		if !errors.As(err, &we) || exitcode.Of(err) != exitcode.Timeout || we.Container != project+"-w-after-1" ||
			!strings.Contains(we.Detail(), "up") {
			t.Fatalf("WaitReady = %v (%+v), want a timeout naming the unhealthy container with its logs", err, we)
		}

		u = s.unit(t, project, "w", deploy.UnitDeploy, `
services:
  crash:
    image: IMAGE
    command: ["sh", "-c", "echo dying; exit 1"]
`)
		p = s.plan(t, u)
		s.apply(t, p)
		_, err = s.d.WaitReady(testCtx(t), p, 60*time.Second)
		if !errors.As(err, &we) || exitcode.Of(err) != exitcode.Failure || !strings.Contains(we.Detail(), "dying") {
			t.Fatalf("WaitReady = %v, want exit 1 with the logs", err)
		}
	})
}

func TestApplyRefusesForeignContainer(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s setup) {
		project := uniqueProject(t)
		s.environment(t, project, "f")
		name := project + "-f-web-1"
		if _, err := s.eng.Run(testCtx(t), engine.RunOptions{Name: name, Image: s.image, Cmd: []string{"sleep", "300"}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.eng.Remove(context.Background(), name, true, false) })
		p := s.plan(t, s.unit(t, project, "f", deploy.UnitDeploy, healthyFile))
		_, err := s.d.Apply(testCtx(t), p)
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), name) {
			t.Fatalf("Apply = %v, want exit 2 naming %s", err, name)
		}
	})
}

func TestApplyErrorMasksEnvironment(t *testing.T) {
	forEachEngine(t, func(t *testing.T, s setup) {
		project := uniqueProject(t)
		s.environment(t, project, "m")
		// The image does not exist and cannot be pulled: compose fails.
		u := s.unit(t, project, "m", deploy.UnitDeploy, `
services:
  web:
    image: localhost/poststack-no-such-image:hunter2-secret
    environment: {PASSWORD: hunter2-secret}
`)
		_, err := s.d.Apply(testCtx(t), s.plan(t, u))
		if err == nil {
			t.Fatal("Apply of a missing image succeeded")
		}
		t.Log(err)
		var ce *engine.CommandError
		if exitcode.Of(err) != exitcode.Failure || !errors.As(err, &ce) || !strings.Contains(err.Error(), "compose") {
			t.Errorf("Apply = %v, want exit 1 naming the command", err)
		}
		if strings.Contains(err.Error(), "hunter2-secret") {
			t.Errorf("error shows an environment value: %v", err)
		}
	})
}

func TestDetect(t *testing.T) {
	t.Parallel()
	eng, env := newEngine(t, engine.Docker)
	ctx := testCtx(t)
	fe, err := Detect(ctx, eng, env)
	if exitcode.Of(err) == exitcode.Usage {
		missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if fe.Name != DockerCompose || !strings.HasPrefix(fe.Version, "2.") {
		t.Errorf("Detect = %s %q, want docker compose v2 first", fe.Name, fe.Version)
	}

	// The plugin binary also runs on its own, as docker-compose: second in the order.
	plugin, err := filepath.EvalSymlinks("/usr/local/lib/docker/cli-plugins/docker-compose")
	if err != nil {
		missing(t, "docker compose plugin: %v", err)
	}
	bin := t.TempDir()
	if err := os.Symlink(plugin, filepath.Join(bin, "docker-compose")); err != nil {
		t.Fatal(err)
	}
	only := append(slices.Clone(env), "PATH="+bin, "COMPOSE_PROFILES=debug")
	fe, err = Detect(ctx, eng, only)
	if err != nil {
		t.Fatal(err)
	}
	if fe.Name != DockerComposeV1 || fe.legacy || slices.Contains(fe.environ, "COMPOSE_PROFILES=debug") {
		t.Errorf("Detect with docker-compose alone = %+v", fe)
	}

	for _, e := range [][]string{{"PATH=" + t.TempDir()}, nil} {
		_, err = Detect(ctx, eng, e)
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "no compose front-end found") {
			t.Errorf("Detect with PATH hidden = %v, want exit 2", err)
		}
	}
}

func TestDetectStartsPodmanService(t *testing.T) {
	t.Parallel()
	eng, env := newEngine(t, engine.Podman)
	ctx := testCtx(t)
	socket := filepath.Join(t.TempDir(), "api", "podman.sock")
	// A socket nobody answers on, as a dead service leaves it.
	if err := os.MkdirAll(filepath.Dir(socket), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()

	fe, err := Detect(ctx, eng, env, WithPodmanSocket(socket))
	if exitcode.Of(err) == exitcode.Usage {
		missing(t, "%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if fe.StartedService <= 0 {
		t.Fatalf("Detect started no service on %s", socket)
	}
	t.Cleanup(func() {
		if err := syscall.Kill(fe.StartedService, syscall.SIGTERM); err != nil {
			t.Errorf("stop podman service %d: %v", fe.StartedService, err)
		}
	})
	if err := pingSocket(ctx, socket); err != nil {
		t.Fatalf("the started service does not answer: %v", err)
	}
	if !slices.Contains(fe.environ, "DOCKER_HOST=unix://"+socket) {
		t.Errorf("front-end environment lacks DOCKER_HOST for %s", socket)
	}
	again, err := Detect(ctx, eng, env, WithPodmanSocket(socket))
	if err != nil {
		t.Fatal(err)
	}
	if again.StartedService != 0 {
		t.Errorf("Detect started a second service (pid %d) on an answering socket", again.StartedService)
	}
	// The front-end really talks to it.
	if _, err := again.run(ctx, runSpec{args: []string{"ls"}, dir: "/"}); err != nil {
		t.Error(err)
	}
}
