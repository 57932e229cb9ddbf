package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/hostport"
)

// envProject is a copy of examples/myapp under a unique project name whose database ports are
// automatic and whose app host ports are free ones, with its app image built on engine; it is
// taken down (volumes too) and its image removed when the test ends.
type envProject struct {
	dir, project, engine string
	appPort              map[string]int // environment → APP_HOST_PORT
	extraEnv             []string
}

func newEnvProject(t *testing.T, engine string) *envProject {
	t.Helper()
	builtinImagesBuilt(t, engine)
	dir, project := exampleProject(t)
	p := &envProject{dir: dir, project: project, engine: engine, appPort: map[string]int{}}
	if engine == testenv.EngineDocker {
		p.extraEnv = []string{"DOCKER_HOST=" + testenv.Docker(t)}
	}
	cfg := filepath.Join(dir, ".poststack.yml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.NewReplacer("port: 5433", "port: auto", "port: 5434", "port: auto").Replace(string(data))
	for _, env := range []string{"dev", "staging"} {
		port := appHostPort(t)
		p.appPort[env] = port
		old := map[string]string{"dev": "APP_HOST_PORT: 8080", "staging": "APP_HOST_PORT: 8081"}[env]
		if !strings.Contains(s, old) {
			t.Fatalf("%s: no %q to replace", cfg, old)
		}
		s = strings.Replace(s, old, "APP_HOST_PORT: "+strconv.Itoa(port), 1)
	}
	if err := os.WriteFile(cfg, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := testContext(t, 10*time.Minute)
	if stdout, stderr, code := psBuild(t, ctx, engine, dir, "app"); code != 0 {
		t.Fatalf("ps-build app: exit %d\n%s%s", code, stdout, stderr)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for _, env := range []string{"dev", "staging"} {
			if _, stderr, code := p.run(ctx, t, "down", env, "--volumes"); code != 0 {
				t.Errorf("cleanup: ps-env down %s --volumes: exit %d\n%s", env, code, stderr)
			}
		}
		removeImages(t, engineCLI(t, engine), project+"/app:latest")
	})
	return p
}

func randomByte(t *testing.T) byte {
	h := randomHex(t, 1)
	n, _ := strconv.ParseUint(h, 16, 8)
	return byte(n % 200)
}

// appHostPort is a free port for an app's host side, picked from 20000 up to below 32768,
// where Linux's range of ports it hands out by itself begins (ip_local_port_range): a port it
// may give to another test meanwhile — a free-port pick with port 0, the source port of a
// connection — could take this one before the engine binds it, and the deploy then fails with
// "failed to start 2 containers" (a CI run did).
func appHostPort(t *testing.T) int {
	t.Helper()
	return freePort(t, 20000+int(randomByte(t))*60)
}

// handedOut are the ports freePort gave this test binary: projects made one after another
// must not get the same free port before either binds it.
var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

func freePort(t *testing.T, from int) int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	p, err := hostport.FirstFree("127.0.0.1", from, handedOut.ports)
	if err != nil {
		t.Fatal(err)
	}
	handedOut.ports[p] = true
	return p
}

// run runs ps-env in the project with the engine chosen; it returns stdout, stderr, exit code.
func (p *envProject) run(ctx context.Context, t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return p.runEnv(ctx, t, nil, args...)
}

func (p *envProject) runEnv(ctx context.Context, t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary(t, "ps-env"), append([]string{"--container-runtime", p.engine}, args...)...)
	cmd.Dir = p.dir
	cmd.Env = append(append(append(os.Environ(), "NO_COLOR=1"), p.extraEnv...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	case err != nil:
		t.Fatalf("ps-env %s: %v", strings.Join(args, " "), err)
	}
	return stdout.String(), stderr.String(), 0
}

func (p *envProject) mustRun(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	stdout, stderr, code := p.run(ctx, t, args...)
	if code != 0 {
		t.Fatalf("ps-env %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// appPage is what the example app answers on /.
type appPage struct {
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Greetings   []struct {
		Message string `json:"message"`
	} `json:"greetings"`
	Visits int `json:"visits"`
}

func (p *envProject) get(t *testing.T, env string) (appPage, error) {
	t.Helper()
	var page appPage
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", p.appPort[env]))
	if err != nil {
		return page, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return page, fmt.Errorf("GET /: %s\n%s", resp.Status, body)
	}
	if err := json.Unmarshal(body, &page); err != nil {
		return page, fmt.Errorf("GET /: %v\n%s", err, body)
	}
	return page, nil
}

func (p *envProject) mustGet(t *testing.T, env string) appPage {
	t.Helper()
	page, err := p.get(t, env)
	if err != nil {
		t.Fatalf("%s app: %v", env, err)
	}
	if page.Project != p.project || page.Environment != env {
		t.Fatalf("%s app answered for %s/%s", env, page.Project, page.Environment)
	}
	return page
}

func hasGreeting(page appPage, msg string) bool {
	for _, g := range page.Greetings {
		if g.Message == msg {
			return true
		}
	}
	return false
}

// envStatus is the part of `ps-env status --json` the tests read.
type envStatus struct {
	Environments []struct {
		Project     string `json:"project"`
		Environment string `json:"environment"`
		Database    struct {
			State        string `json:"state"`
			VolumeExists bool   `json:"volume_exists"`
			Version      int64  `json:"version"`
			Pending      int    `json:"pending"`
		} `json:"database"`
		Containers []struct {
			Name  string `json:"name"`
			Unit  string `json:"unit"`
			State string `json:"state"`
		} `json:"containers"`
	} `json:"environments"`
}

func (p *envProject) status(ctx context.Context, t *testing.T, args ...string) envStatus {
	t.Helper()
	out := p.mustRun(ctx, t, append([]string{"--json", "status"}, args...)...)
	var st envStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// TestEnvLifecyclePods: the example's dev environment (podman pods) from nothing to an app that
// answers with data it wrote, kept over down/up, gone after down --volumes, and a second up that
// changes nothing.
func TestEnvLifecyclePods(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 10*time.Minute)

	out := p.mustRun(ctx, t, "up", "dev")
	for _, want := range []string{"migrations: 2 applied now", "init containers/seed/seed-pod.yaml: 1 container(s) exited 0", p.project + "-dev-app created", fmt.Sprintf("http://127.0.0.1:%d", p.appPort["dev"])} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}
	first := p.mustGet(t, "dev")
	if !hasGreeting(first, "hello from poststack") || !hasGreeting(first, "hello from the dev seed") {
		t.Errorf("greetings %+v lack the migration's and the init pod's rows", first.Greetings)
	}
	second := p.mustGet(t, "dev")
	if second.Visits != first.Visits+1 {
		t.Errorf("visits %d then %d: the app did not write", first.Visits, second.Visits)
	}

	// Nothing changed: nothing restarted, and it says so.
	out = p.mustRun(ctx, t, "--json", "up", "dev")
	var res struct {
		Changed bool `json:"changed"`
		Init    []struct {
			Ran bool `json:"ran"`
		} `json:"init"`
		Deploy struct {
			Changes []struct{ Action string } `json:"changes"`
		} `json:"deploy"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("up --json: %v\n%s", err, out)
	}
	if res.Changed || len(res.Init) != 1 || res.Init[0].Ran || len(res.Deploy.Changes) != 1 || res.Deploy.Changes[0].Action != "unchanged" {
		t.Errorf("second up changed something: %s", out)
	}
	if out := p.mustRun(ctx, t, "up", "dev"); !strings.Contains(out, "nothing changed") {
		t.Errorf("second up does not say nothing changed:\n%s", out)
	}

	st := p.status(ctx, t, "dev")
	if len(st.Environments) != 1 || st.Environments[0].Database.State != "running" || st.Environments[0].Database.Version != 2 ||
		len(st.Environments[0].Containers) != 1 || st.Environments[0].Containers[0].State != "running" {
		t.Errorf("status: %+v", st)
	}

	// down keeps the data.
	p.mustRun(ctx, t, "down", "dev")
	if _, err := p.get(t, "dev"); err == nil {
		t.Errorf("the app still answers after down")
	}
	if st := p.status(ctx, t, "dev"); st.Environments[0].Database.State != "missing" || !st.Environments[0].Database.VolumeExists || len(st.Environments[0].Containers) != 0 {
		t.Errorf("status after down: %+v", st)
	}
	p.mustRun(ctx, t, "up", "dev")
	if again := p.mustGet(t, "dev"); again.Visits != second.Visits+1 {
		t.Errorf("after down and up: visits %d, want %d (data kept)", again.Visits, second.Visits+1)
	}

	// down --volumes: the data is gone, and the next up starts afresh (init runs again).
	p.mustRun(ctx, t, "down", "dev", "--volumes")
	out = p.mustRun(ctx, t, "up", "dev")
	if !strings.Contains(out, "1 container(s) exited 0") {
		t.Errorf("init did not run again on a new volume:\n%s", out)
	}
	if fresh := p.mustGet(t, "dev"); fresh.Visits != 1 || !hasGreeting(fresh, "hello from the dev seed") {
		t.Errorf("after down --volumes: %+v, want a fresh seeded database", fresh)
	}

	// A changed variable redeploys the app, nothing else.
	cfg := filepath.Join(p.dir, ".poststack.yml")
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(data, []byte("LOG_LEVEL: debug"), []byte("LOG_LEVEL: info"), 1), 0o644)
	out = p.mustRun(ctx, t, "up", "dev")
	if !strings.Contains(out, p.project+"-dev-app recreated") || !strings.Contains(out, "reused") || !strings.Contains(out, "already ran") {
		t.Errorf("a changed variable: want the app recreated, the rest left alone:\n%s", out)
	}
}

// TestEnvInitFailure: an init container exiting 3 stops up with exit 1 and its logs, and
// nothing is deployed.
func TestEnvInitFailure(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 5*time.Minute)
	writeFiles(t, p.dir, map[string]string{"containers/seed/seed-pod.yaml": `apiVersion: v1
kind: Pod
metadata:
  name: ${POSTSTACK_PROJECT}-${POSTSTACK_ENVIRONMENT}-seed
spec:
  containers:
    - name: seed
      image: localhost/debian:bookworm
      command: ["sh", "-c", "echo seeding went wrong >&2; exit 3"]
`})
	stdout, stderr, code := p.run(ctx, t, "up", "dev")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	container := p.project + "-dev-seed-seed"
	for _, want := range []string{"init containers/seed/seed-pod.yaml: container " + container + " exited with code 3; the deployment was not started", "seeding went wrong"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	logFile := filepath.Join(p.dir, "logs", "containers", "init", container+".log")
	if b, err := os.ReadFile(logFile); err != nil || !strings.Contains(string(b), "seeding went wrong") {
		t.Errorf("init logs not kept in %s: %q, %v", logFile, b, err)
	}
	st := p.status(ctx, t, "dev")
	if n := len(st.Environments[0].Containers); n != 0 {
		t.Errorf("%d containers left after a failed init: %+v", n, st.Environments[0].Containers)
	}
	if _, err := p.get(t, "dev"); err == nil {
		t.Errorf("the app was deployed after a failed init")
	}
}

// TestEnvBadInput: each problem is refused with its message before anything starts.
func TestEnvBadInput(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 5*time.Minute)
	podman := testenv.Podman(t)
	nothingStarted := func(t *testing.T) {
		t.Helper()
		out, _ := run(ctx, p.dir, nil, podman, "ps", "-a", "--filter", "label=io.poststack.project="+p.project, "--format", "{{.Names}}")
		if strings.TrimSpace(out) != "" {
			t.Errorf("containers were started: %s", out)
		}
	}

	t.Run("unknown environment", func(t *testing.T) {
		_, stderr, code := p.run(ctx, t, "up", "prod")
		if code != 2 || !strings.Contains(stderr, `"prod"`) {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		nothingStarted(t)
	})
	t.Run("undefined variable", func(t *testing.T) {
		orig, _ := os.ReadFile(filepath.Join(p.dir, "containers/app/app-pod.yaml"))
		t.Cleanup(func() { os.WriteFile(filepath.Join(p.dir, "containers/app/app-pod.yaml"), orig, 0o644) })
		bad := strings.Replace(string(orig), "value: ${LOG_LEVEL}", "value: ${NO_SUCH_SETTING}", 1)
		os.WriteFile(filepath.Join(p.dir, "containers/app/app-pod.yaml"), []byte(bad), 0o644)
		line := 1 + strings.Count(bad[:strings.Index(bad, "${NO_SUCH_SETTING}")], "\n")
		_, stderr, code := p.run(ctx, t, "up", "dev")
		want := fmt.Sprintf("containers/app/app-pod.yaml:%d:", line)
		if code != 3 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "NO_SUCH_SETTING") {
			t.Errorf("exit %d, want 3 naming %s and the variable; stderr:\n%s", code, want, stderr)
		}
		nothingStarted(t)
	})
	t.Run("pod file not YAML", func(t *testing.T) {
		orig, _ := os.ReadFile(filepath.Join(p.dir, "containers/app/app-pod.yaml"))
		t.Cleanup(func() { os.WriteFile(filepath.Join(p.dir, "containers/app/app-pod.yaml"), orig, 0o644) })
		os.WriteFile(filepath.Join(p.dir, "containers/app/app-pod.yaml"), []byte("kind: Pod\nspec: [unclosed\n"), 0o644)
		_, stderr, code := p.run(ctx, t, "up", "dev")
		if code != 2 || !strings.Contains(stderr, "containers/app/app-pod.yaml:") {
			t.Errorf("exit %d, want 2 naming the file; stderr:\n%s", code, stderr)
		}
		nothingStarted(t)
	})
	t.Run("host port held by another program", func(t *testing.T) {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p.appPort["dev"]))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		_, stderr, code := p.run(ctx, t, "up", "dev")
		want := fmt.Sprintf("host port %d (app of containers/app/app-pod.yaml) is in use by another program; use a free port such as ", p.appPort["dev"])
		if code != 2 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, want 2 with %q; stderr:\n%s", code, want, stderr)
		}
		nothingStarted(t)
	})
}

// TestEnvInterruptedUp: SIGINT while up deploys stops what the run started, keeps the data
// volume, and exits 130; the next up completes.
func TestEnvInterruptedUp(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 5*time.Minute)
	cmd := exec.CommandContext(ctx, binary(t, "ps-env"), "--container-runtime", "podman", "up", "dev")
	cmd.Dir = p.dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the deploy phase began (the app pod exists).
	podman := testenv.Podman(t)
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		out, _ := run(ctx, p.dir, nil, podman, "pod", "ps", "--filter", "name="+p.project+"-dev-app", "--format", "{{.Name}}")
		if strings.TrimSpace(out) != "" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("interrupted up: %v, want exit 130\n%s", err, stderr.String())
	}
	st := p.status(ctx, t, "dev")
	e := st.Environments[0]
	if len(e.Containers) != 0 || e.Database.State == "running" || !e.Database.VolumeExists {
		t.Errorf("after the interrupt: %+v; want nothing running and the volume kept", e)
	}
	p.mustRun(ctx, t, "up", "dev")
	p.mustGet(t, "dev")
}

// TestEnvTwoEnvironmentsTwoProjects: dev on pods and staging on compose (through podman's API
// socket) of one project, and a second project's dev, all at once; status lists only each
// one's own containers, and down of one leaves the others running.
func TestEnvTwoEnvironmentsTwoProjects(t *testing.T) {
	a := newEnvProject(t, testenv.EnginePodman)
	b := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 10*time.Minute)
	a.mustRun(ctx, t, "up", "dev")
	a.mustRun(ctx, t, "up", "staging")
	b.mustRun(ctx, t, "up", "dev")
	for _, c := range []struct {
		p   *envProject
		env string
	}{{a, "dev"}, {a, "staging"}, {b, "dev"}} {
		page := c.p.mustGet(t, c.env)
		if !hasGreeting(page, "hello from the "+c.env+" seed") {
			t.Errorf("%s/%s: %+v lacks its seed", c.p.project, c.env, page.Greetings)
		}
	}
	st := a.status(ctx, t)
	if len(st.Environments) != 2 {
		t.Fatalf("status of %s: %d environments", a.project, len(st.Environments))
	}
	for _, e := range st.Environments {
		if len(e.Containers) != 1 {
			t.Errorf("%s/%s: containers %+v, want its one app", e.Project, e.Environment, e.Containers)
		}
		for _, c := range e.Containers {
			if !strings.HasPrefix(c.Name, a.project+"-"+e.Environment+"-") {
				t.Errorf("%s/%s lists %s", e.Project, e.Environment, c.Name)
			}
		}
	}
	a.mustRun(ctx, t, "down", "staging")
	if _, err := a.get(t, "staging"); err == nil {
		t.Errorf("staging answers after its down")
	}
	a.mustGet(t, "dev")
	b.mustGet(t, "dev")

	// A host port held by another environment's container is named with its owner.
	cfg := filepath.Join(b.dir, ".poststack.yml")
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(data, []byte("APP_HOST_PORT: "+strconv.Itoa(b.appPort["staging"])), []byte("APP_HOST_PORT: "+strconv.Itoa(a.appPort["dev"])), 1), 0o644)
	_, stderr, code := b.run(ctx, t, "up", "staging")
	want := fmt.Sprintf("host port %d (app of containers/app/compose.yaml) is in use by container %s-dev-app", a.appPort["dev"], a.project)
	if code != 2 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "environment dev") {
		t.Errorf("exit %d, want 2 with %q; stderr:\n%s", code, want, stderr)
	}
	if st := b.status(ctx, t, "staging"); st.Environments[0].Database.State != "missing" {
		t.Errorf("staging's database was started although its deployment was refused: %+v", st.Environments[0].Database)
	}
}

// TestEnvComposeDocker: the staging environment on dockerd with docker compose v2; a pod file
// on docker is refused with the fix.
func TestEnvComposeDocker(t *testing.T) {
	p := newEnvProject(t, testenv.EngineDocker)
	ctx := testContext(t, 10*time.Minute)
	p.mustRun(ctx, t, "up", "staging")
	first := p.mustGet(t, "staging")
	if !hasGreeting(first, "hello from the staging seed") {
		t.Errorf("greetings %+v lack the seed", first.Greetings)
	}
	if out := p.mustRun(ctx, t, "up", "staging"); !strings.Contains(out, "nothing changed") {
		t.Errorf("second up:\n%s", out)
	}
	p.mustRun(ctx, t, "down", "staging")
	p.mustRun(ctx, t, "up", "staging")
	if again := p.mustGet(t, "staging"); again.Visits != first.Visits+1 {
		t.Errorf("visits %d after down/up, want %d", again.Visits, first.Visits+1)
	}
	_, stderr, code := p.run(ctx, t, "up", "dev")
	if code != 2 || !strings.Contains(stderr, "needs podman") {
		t.Errorf("pod file on docker: exit %d, stderr:\n%s", code, stderr)
	}
}

// TestEnvComposeBadInput: no compose front-end, and a compose file compose-go rejects, are
// refused before anything starts.
func TestEnvComposeBadInput(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 5*time.Minute)
	bin := t.TempDir()
	if err := os.Symlink(testenv.Podman(t), filepath.Join(bin, "podman")); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := p.runEnv(ctx, t, []string{"PATH=" + bin}, "up", "staging")
	if code != 2 || !strings.Contains(stderr, "no compose front-end found") {
		t.Errorf("without a front-end: exit %d, stderr:\n%s", code, stderr)
	}
	writeFiles(t, p.dir, map[string]string{"containers/app/compose.yaml": "services:\n  app:\n    image: x\n    ports: {not: a list}\n"})
	_, stderr, code = p.run(ctx, t, "up", "staging")
	if code != 2 || !strings.Contains(stderr, "containers/app/compose.yaml") {
		t.Errorf("rejected compose file: exit %d, stderr:\n%s", code, stderr)
	}
	if st := p.status(ctx, t, "staging"); st.Environments[0].Database.State != "missing" {
		t.Errorf("the database was started: %+v", st.Environments[0].Database)
	}
}
