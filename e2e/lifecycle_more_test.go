package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// TestEnvInitScaffold: a project ps-env init wrote, from nothing, validates, builds and comes
// up with its database and its app running; down --volumes takes it all away.
func TestEnvInitScaffold(t *testing.T) {
	podman := engineCLI(t, testenv.EnginePodman)
	ctx := testContext(t, 10*time.Minute)
	project := "e2e" + randomHex(t, 4)
	p := &envProject{dir: t.TempDir(), project: project, engine: testenv.EnginePodman, appPort: map[string]int{}}
	// Cleanups run last first: down before the images go.
	removeImages(t, podman, project+"/app:latest", project+"/postgres:latest")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, stderr, code := p.run(ctx, t, "down", "dev", "--volumes"); code != 0 {
			t.Errorf("cleanup: ps-env down dev --volumes: exit %d\n%s", code, stderr)
		}
	})

	out := p.mustRun(ctx, t, "init", "--all", "--no-interactive", "--project-name", project)
	if !strings.Contains(out, "project "+project+", environment dev") {
		t.Errorf("init output lacks the project and environment:\n%s", out)
	}
	for _, f := range []string{".poststack.yml", "containers/postgres/Dockerfile", "containers/app/Dockerfile", "containers/app/app-pod.yaml", "migrations/0001_init.sql"} {
		if _, err := os.Stat(filepath.Join(p.dir, f)); err != nil {
			t.Errorf("init did not write %s: %v", f, err)
		}
	}
	if out := p.mustRun(ctx, t, "validate"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("validate: %q", out)
	}

	stdout, stderr, code := psBuild(t, ctx, testenv.EnginePodman, p.dir, "--json")
	if code != 0 {
		t.Fatalf("ps-build: exit %d\n%s%s", code, stdout, stderr)
	}
	var br buildResult
	if err := json.Unmarshal([]byte(stdout), &br); err != nil {
		t.Fatalf("ps-build --json: %v\n%s", err, stdout)
	}
	refs := map[string]string{}
	for _, im := range br.Images {
		refs[im.Ref] = im.State
	}
	for _, ref := range []string{project + "/app:latest", project + "/postgres:latest"} {
		if st := refs[ref]; st != "built" {
			t.Errorf("ps-build: %s %q, want built; images %v", ref, st, refs)
		}
	}

	p.mustRun(ctx, t, "up")
	st := p.status(ctx, t, "dev")
	if len(st.Environments) != 1 {
		t.Fatalf("status: %+v", st)
	}
	e := st.Environments[0]
	if e.Database.State != "running" || e.Database.Version != 1 || e.Database.Pending != 0 {
		t.Errorf("database after up: %+v, want running at version 1", e.Database)
	}
	if len(e.Containers) != 1 || e.Containers[0].Name != project+"-dev-app-app" || e.Containers[0].State != "running" {
		t.Errorf("containers after up: %+v, want %s-dev-app-app running", e.Containers, project)
	}
	// The scaffolded app says whether it reaches the database; it checks at once on start.
	want := "database " + project + "-dev-postgres:5432 accepts connections"
	var logs string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if logs = p.mustRun(ctx, t, "logs", "dev", "app"); strings.Contains(logs, want) {
			break
		}
	}
	if !strings.Contains(logs, "app | ") || !strings.Contains(logs, want) {
		t.Errorf("the app's logs lack %q:\n%s", want, logs)
	}

	p.mustRun(ctx, t, "down", "--volumes")
	e = p.status(ctx, t, "dev").Environments[0]
	if e.Database.State != "missing" || e.Database.VolumeExists || len(e.Containers) != 0 {
		t.Errorf("after down --volumes: %+v", e)
	}
}

// dbResetResult is the part of `ps-env --json db reset` the tests read.
type dbResetResult struct {
	Database string `json:"database"`
	Built    bool   `json:"built"`
	Swapped  bool   `json:"swapped"`
	Seeds    int    `json:"seeds"`
}

// TestEnvDBReset: db reset, snapshot and restore on the example's dev environment while its
// app runs: the app connects per request, so it keeps answering across each of them.
func TestEnvDBReset(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 10*time.Minute)
	p.mustRun(ctx, t, "up", "dev")
	p.mustGet(t, "dev")
	if before := p.mustGet(t, "dev"); before.Visits != 2 {
		t.Fatalf("visits %d before the reset, want 2", before.Visits)
	}

	reset := func(wantSwapped bool) {
		t.Helper()
		out := p.mustRun(ctx, t, "--json", "db", "reset", "dev")
		var r dbResetResult
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("db reset --json: %v\n%s", err, out)
		}
		if r.Seeds != 1 || r.Swapped != wantSwapped || r.Built == wantSwapped {
			t.Errorf("db reset: %s; want the seed file run, swapped=%v", out, wantSwapped)
		}
		page := p.mustGet(t, "dev")
		if page.Visits != 1 {
			t.Errorf("after db reset: visits %d, want 1 (this GET's)", page.Visits)
		}
		// The migration's row and the seed file's; not the init pod's: init containers run on
		// up against a new volume, a reset runs the seed: files only.
		if !hasGreeting(page, "hello from poststack") || !hasGreeting(page, "hello from the seed file") || hasGreeting(page, "hello from the dev seed") || len(page.Greetings) != 2 {
			t.Errorf("after db reset: greetings %+v, want the migration's and the seed file's", page.Greetings)
		}
	}
	// The first reset builds the template; the second swaps in the spare copy the first left.
	reset(false)
	p.mustGet(t, "dev")
	reset(true)

	p.mustRun(ctx, t, "db", "snapshot", "s1", "dev")
	p.mustGet(t, "dev")
	snapped := p.mustGet(t, "dev")
	if snapped.Visits != 3 {
		t.Fatalf("visits %d, want 3", snapped.Visits)
	}
	if out := p.mustRun(ctx, t, "db", "restore", "s1", "dev"); !strings.Contains(out, "from snapshot s1") {
		t.Errorf("restore output: %q", out)
	}
	// The snapshot held the row of reset's GET: this GET is the second.
	if after := p.mustGet(t, "dev"); after.Visits != 2 {
		t.Errorf("after restore s1: visits %d, want 2 (the snapshot's 1, and this GET)", after.Visits)
	}

	out := p.mustRun(ctx, t, "--json", "db", "snapshots", "dev")
	var snaps struct {
		Database  string `json:"database"`
		Snapshots []struct {
			Name string `json:"name"`
		} `json:"snapshots"`
	}
	if err := json.Unmarshal([]byte(out), &snaps); err != nil {
		t.Fatalf("db snapshots --json: %v\n%s", err, out)
	}
	if len(snaps.Snapshots) != 1 || snaps.Snapshots[0].Name != "s1" {
		t.Errorf("db snapshots: %s, want s1", out)
	}
	// A reset keeps the snapshots.
	reset(true)
	if out := p.mustRun(ctx, t, "db", "snapshots", "dev"); !strings.Contains(out, "s1") {
		t.Errorf("the snapshot is gone after a reset:\n%s", out)
	}
	if st := p.status(ctx, t, "dev"); st.Environments[0].Database.Version != 2 || len(st.Environments[0].Containers) != 1 || st.Environments[0].Containers[0].State != "running" {
		t.Errorf("status after the resets: %+v", st)
	}
	// init runs are recorded in the database, so the next up runs the init pod again.
	if out := p.mustRun(ctx, t, "up", "dev"); !strings.Contains(out, "init containers/seed/seed-pod.yaml: 1 container(s) exited 0") {
		t.Errorf("up after a reset did not run init again:\n%s", out)
	}
	if page := p.mustGet(t, "dev"); !hasGreeting(page, "hello from the dev seed") || !hasGreeting(page, "hello from the seed file") {
		t.Errorf("after reset and up: greetings %+v", page.Greetings)
	}
}

// bgRun is a ps-env started in the background.
type bgRun struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
}

func (p *envProject) start(ctx context.Context, t *testing.T, args ...string) *bgRun {
	t.Helper()
	r := &bgRun{cmd: exec.CommandContext(ctx, binary(t, "ps-env"), append([]string{"--container-runtime", p.engine}, args...)...)}
	r.cmd.Dir = p.dir
	r.cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), p.extraEnv...)
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// wait returns the exit code.
func (r *bgRun) wait(t *testing.T) int {
	t.Helper()
	err := r.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("ps-env: %v", err)
	}
	return 0
}

// procArgs is the argument vector of process pid, nil once it is gone.
func procArgs(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// procChildren lists the children of every thread of pid (Go forks from any thread).
func procChildren(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// procDescendants lists pid's descendants, parents before their children.
func procDescendants(pid int) []int {
	var out []int
	for queue := procChildren(pid); len(queue) > 0; queue = queue[1:] {
		out = append(out, queue[0])
		queue = append(queue, procChildren(queue[0])...)
	}
	return out
}

// hasArgs reports whether args holds want as consecutive words.
func hasArgs(args []string, want ...string) bool {
	for i := 0; i+len(want) <= len(args); i++ {
		if slices.Equal(args[i:i+len(want)], want) {
			return true
		}
	}
	return false
}

// killEngine waits until a descendant of the running ps-env matches, then SIGKILLs it and its
// own descendants (a docker CLI plugin runs as the docker CLI's child), parent first: what the
// OOM killer or a crash does to an engine command. It returns the killed command line.
//
// The command is found by polling /proc every few milliseconds: `podman kube play` and
// `docker compose up -d` each run for a second or more here, hundreds of polls, so the kill
// lands while the command runs (the moment within the command varies, which is the point).
// A PATH shim that kills itself was not needed.
func killEngine(t *testing.T, r *bgRun, match func(args []string) bool) string {
	t.Helper()
	root := r.cmd.Process.Pid
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(3 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task", root)); err != nil {
			break
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", root)); bytes.Contains(st, []byte(") Z ")) {
			break // exited, not yet reaped
		}
		for _, pid := range procDescendants(root) {
			args := procArgs(pid)
			if !match(args) {
				continue
			}
			victims := append([]int{pid}, procDescendants(pid)...)
			for _, v := range victims {
				syscall.Kill(v, syscall.SIGKILL)
			}
			return strings.Join(args, " ")
		}
	}
	t.Fatalf("no matching engine command ran under ps-env %s\nstdout:\n%s\nstderr:\n%s", strings.Join(r.cmd.Args[1:], " "), &r.stdout, &r.stderr)
	return ""
}

// statusShowsEverything checks that `ps-env status` lists every container the engine has of
// the environment, besides its database: whatever a fault left behind is visible.
func statusShowsEverything(ctx context.Context, t *testing.T, p *envProject, env string) {
	t.Helper()
	podman := testenv.Podman(t)
	out := mustRun(t, ctx, p.dir, nil, podman, "ps", "-a", "--filter", "label=io.poststack.project="+p.project,
		"--filter", "label=io.poststack.environment="+env, "--format", "{{.Names}}")
	var engine []string
	for _, name := range strings.Fields(out) {
		if name == p.project+"-"+env+"-postgres" {
			continue
		}
		state, err := run(ctx, p.dir, nil, podman, "container", "inspect", "--format", "{{.State.Status}}", name)
		if err != nil {
			t.Errorf("inspect %s: %v", name, err)
		}
		engine = append(engine, name+" "+strings.TrimSpace(state))
	}
	var listed []string
	for _, c := range p.status(ctx, t, env).Environments[0].Containers {
		listed = append(listed, c.Name+" "+c.State)
	}
	sort.Strings(engine)
	sort.Strings(listed)
	if !slices.Equal(engine, listed) {
		t.Errorf("%s: the engine has %q, status lists %q", env, engine, listed)
	}
}

// TestEnvEngineFault: the engine command that deploys is killed (SIGKILL) in the middle of a
// redeploy, on pods and on compose: ps-env exits 1 naming the command, status shows what was
// left, the next up completes, and the database, which the deploy does not touch, keeps its
// rows. A first up writes the rows and a changed variable forces the redeploy, so that exactly
// one engine command of the kind runs, the app's.
func TestEnvEngineFault(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 15*time.Minute)
	cfg := filepath.Join(p.dir, ".poststack.yml")
	setVariable := func(old, new string) {
		t.Helper()
		data, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(data, []byte(old)) != 1 {
			t.Fatalf("%s: %q is not there once", cfg, old)
		}
		if err := os.WriteFile(cfg, bytes.Replace(data, []byte(old), []byte(new), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	for _, c := range []struct {
		env, old, new, command string
		match                  func([]string) bool
	}{
		{"dev", "LOG_LEVEL: debug", "LOG_LEVEL: warn", "podman kube play", func(a []string) bool { return hasArgs(a, "kube", "play") }},
		// The front-end is `docker compose` (the docker CLI, the plugin its child) or
		// docker-compose; either way its arguments hold compose's `up`.
		{"staging", "LOG_LEVEL: info", "LOG_LEVEL: error", "docker compose", func(a []string) bool {
			return len(a) > 0 && (hasArgs(a, "compose") || strings.HasSuffix(a[0], "docker-compose")) && hasArgs(a, "up", "-d")
		}},
	} {
		t.Run(c.env, func(t *testing.T) {
			p.mustRun(ctx, t, "up", c.env)
			p.mustGet(t, c.env)
			written := p.mustGet(t, c.env)

			setVariable(c.old, c.new)
			r := p.start(ctx, t, "deploy", c.env)
			killed := killEngine(t, r, c.match)
			if code := r.wait(t); code != 1 {
				t.Fatalf("killed %q: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", killed, code, &r.stdout, &r.stderr)
			}
			stderr := r.stderr.String()
			if !strings.Contains(stderr, c.command) || !strings.Contains(stderr, "signal: killed") {
				t.Errorf("killed %q: stderr does not name %q and the signal:\n%s", killed, c.command, stderr)
			}
			statusShowsEverything(ctx, t, p, c.env)
			if st := p.status(ctx, t, c.env); st.Environments[0].Database.State != "running" {
				t.Errorf("the database is %s after the deploy failed", st.Environments[0].Database.State)
			}

			out := p.mustRun(ctx, t, "up", c.env)
			if !strings.Contains(out, "is up") {
				t.Errorf("up after the fault:\n%s", out)
			}
			page := p.mustGet(t, c.env)
			if page.Visits != written.Visits+1 || !hasGreeting(page, "hello from the "+c.env+" seed") {
				t.Errorf("after the fault and up: visits %d (want %d), greetings %+v", page.Visits, written.Visits+1, page.Greetings)
			}
			statusShowsEverything(ctx, t, p, c.env)
			if out := p.mustRun(ctx, t, "up", c.env); !strings.Contains(out, "nothing changed") {
				t.Errorf("a second up after the fault changed something:\n%s", out)
			}
		})
	}
}

// lineReader collects a command's output lines as they come.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func readLines(t *testing.T, cmd *exec.Cmd) *lineReader {
	t.Helper()
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	lr := &lineReader{done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			lr.mu.Unlock()
		}
	}()
	return lr
}

func (lr *lineReader) text() string {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return strings.Join(lr.lines, "\n")
}

// waitFor polls until the output holds want, calling poke between checks.
func (lr *lineReader) waitFor(want string, d time.Duration, poke func()) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if strings.Contains(lr.text(), want) {
			return true
		}
		if poke != nil {
			poke()
		}
	}
	return strings.Contains(lr.text(), want)
}

// TestEnvLogs: ps-env logs shows the database's, the app's and the init pod's output, each line
// prefixed by its source, --tail bounds it, --follow picks up a restarted container and stops
// on SIGINT, and the environment's passwords appear nowhere.
func TestEnvLogs(t *testing.T) {
	p := newEnvProject(t, testenv.EnginePodman)
	ctx := testContext(t, 10*time.Minute)
	// psql -q prints nothing; without it the seed says INSERT 0 1, which its kept log then shows.
	seedPod := filepath.Join(p.dir, "containers", "seed", "seed-pod.yaml")
	data, err := os.ReadFile(seedPod)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte(" -X -q -c")) {
		t.Fatalf("%s: no psql -q to drop", seedPod)
	}
	os.WriteFile(seedPod, bytes.Replace(data, []byte(" -X -q -c"), []byte(" -X -c"), 1), 0o644)
	p.mustRun(ctx, t, "up", "dev")
	p.mustGet(t, "dev")

	var secrets []string
	for _, f := range []string{p.project + "-dev.password", p.project + "-dev.admin-password"} {
		b, err := os.ReadFile(filepath.Join(p.dir, ".poststack", f))
		if err != nil && f == p.project+"-dev.password" {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(b)); s != "" {
			secrets = append(secrets, s)
		}
	}
	noSecret := func(what, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s shows a password", what)
			}
		}
	}

	out := p.mustRun(ctx, t, "logs", "dev")
	initPrefix := p.project + "-dev-seed-seed (init) | "
	for _, want := range []string{"\npostgres | ", "\napp | ", "listening on :8080", initPrefix + "INSERT 0 1"} {
		if !strings.Contains("\n"+out, want) {
			t.Errorf("logs dev lacks %q:\n%s", want, out)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !strings.HasPrefix(l, "postgres | ") && !strings.HasPrefix(l, "app | ") && !strings.HasPrefix(l, initPrefix) {
			t.Errorf("logs dev: line without a known prefix: %q", l)
		}
	}
	noSecret("logs dev", out)

	out = p.mustRun(ctx, t, "logs", "dev", "app", "--tail", "1")
	if lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "app | ") {
		t.Errorf("logs dev app --tail 1: %q, want one app line", out)
	}
	if out := p.mustRun(ctx, t, "logs", "dev", "seed"); !strings.Contains(out, initPrefix+"INSERT 0 1") || strings.Contains(out, "app | ") || strings.Contains(out, "postgres | ") {
		t.Errorf("logs dev seed: %q, want the init pod's kept log only", out)
	}
	// A name that is part of every container's (the environment's) selects none.
	if _, stderr, code := p.run(ctx, t, "logs", "dev", "dev"); code != 2 || !strings.Contains(stderr, `matches "dev"`) {
		t.Errorf("logs dev dev: exit %d, want 2: no container is named dev\n%s", code, stderr)
	}

	// --follow, then restart the app: a request made after the restart shows up.
	cmd := exec.CommandContext(ctx, binary(t, "ps-env"), "--container-runtime", p.engine, "logs", "dev", "--follow")
	cmd.Dir = p.dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), p.extraEnv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	lr := readLines(t, cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if !lr.waitFor("app | ", time.Minute, nil) {
		t.Fatalf("logs --follow printed no app line:\n%s\nstderr:\n%s", lr.text(), &stderr)
	}
	// Restarted in two steps: kube play's pods stop their infra container once the last
	// container stops (podman 4's exit policy), asynchronously, so `podman restart` of the app
	// and even `podman pod restart` race with that and can leave the pod stopped. Stop the
	// app, wait for the pod to be down, start it.
	podman := testenv.Podman(t)
	app, pod := p.project+"-dev-app-app", p.project+"-dev-app"
	mustRun(t, ctx, p.dir, nil, podman, "stop", app)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		state, err := run(ctx, p.dir, nil, podman, "pod", "inspect", "--format", "{{.State}}", pod)
		if err == nil && strings.TrimSpace(state) == "Exited" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s is %q a minute after its only container stopped (%v)", pod, state, err)
		}
	}
	mustRun(t, ctx, p.dir, nil, podman, "pod", "start", pod)
	path := "/after-restart-" + randomHex(t, 4)
	get := func() {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", p.appPort["dev"], path)); err == nil {
			resp.Body.Close()
		}
	}
	// The access log is at debug level, dev's; the 404 is logged all the same.
	if !lr.waitFor(`"GET `+path+` HTTP/1.1" 404`, time.Minute, get) {
		t.Errorf("logs --follow did not show a request made after %s restarted:\n%s\nstderr:\n%s", app, lr.text(), &stderr)
	}
	if n := strings.Count(lr.text(), "app | "); n == 0 || strings.Count(lr.text(), "myapp: listening on :8080") < 2 {
		t.Errorf("logs --follow did not show the restarted app's start:\n%s", lr.text())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { <-lr.done; waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 130) {
			t.Errorf("logs --follow after SIGINT: %v, want exit 0 or 130\nstderr:\n%s", err, &stderr)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("logs --follow still runs 30s after SIGINT")
	}
	noSecret("logs --follow", lr.text()+stderr.String())
}
