package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

const image = testenv.DefaultBaseImage

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		{"not yaml", "kind: Pod\nmetadata:\n  name: a\n   bad: [\n", "pod.yaml:4: "},
		{"tab", "kind: Pod\n\tx: 1\n", "pod.yaml:2: found a tab character"},
		{"unclosed flow", "kind: Pod\nspec: {containers: [\n", "pod.yaml:"},
		{"scalar document", "just text\n", "pod.yaml:1: a document must be a mapping"},
		{"no kind", "apiVersion: v1\nmetadata: {name: a}\n", "pod.yaml:1: document has no kind"},
		{"secret", "kind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c, image: i}]}\n---\nkind: Secret\nmetadata: {name: s}\n", "pod.yaml:5: kind Secret is not supported"},
		{"deployment", "kind: Deployment\nmetadata: {name: a}\n", "pod.yaml:1: kind Deployment is not supported in a pod file"},
		{"no pod", "kind: ConfigMap\nmetadata: {name: a}\n", "pod.yaml: no Pod in the file"},
		{"no name", "kind: Pod\nspec: {containers: [{name: c, image: i}]}\n", `pod.yaml:1: pod needs a metadata.name podman accepts (letters, digits, _ . -), not ""`},
		{"no containers", "kind: Pod\nmetadata: {name: a}\nspec: {}\n", "pod.yaml:1: pod a has no spec.containers"},
		{"bad port type", "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: http\n", "pod.yaml:7: cannot unmarshal !!str `http` into int"},
		{"bad port", "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    ports:\n    - containerPort: 0\n", "pod.yaml:7: container c: containerPort must be 1-65535"},
		{"sctp", "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n    ports:\n    - {containerPort: 1, protocol: SCTP}\n", `pod.yaml:7: container c: protocol "SCTP"`},
		{"twice", "kind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n  - name: c\n  - name: c\n", "pod.yaml:6: pod a has two containers named c"},
		{"restart", "kind: Pod\nmetadata: {name: a}\nspec:\n  restartPolicy: Sometimes\n  containers: [{name: c}]\n", `pod.yaml:4: pod a: unknown restartPolicy "Sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("pod.yaml", []byte(tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) || exitcode.Of(err) != exitcode.Usage {
				t.Errorf("error %q (exit %d), want prefix %q and exit 2", err, exitcode.Of(err), tt.want)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{"pg_isready": "pg_isready", "-h": "-h", "a b": "'a b'", "it's": `'it'\''s'`, "": "''", "$X": "'$X'"} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// testDeployer returns a Deployer on the real podman, or skips (fails under CI).
func testDeployer(t *testing.T) (*Deployer, *engine.Engine) {
	t.Helper()
	path := testenv.Podman(t)
	testenv.BaseImage(t, testenv.EnginePodman)
	eng, err := engine.New(engine.Podman, engine.WithPath(path))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(eng)
	if err != nil {
		t.Fatal(err)
	}
	return d, eng
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// env is a project and environment of a test's own, with its network; everything the
// environment's pods left is removed when the test ends.
type env struct {
	project, name, network string
}

func newEnv(t *testing.T, d *Deployer, eng *engine.Engine, name string) env {
	t.Helper()
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	e := env{project: "kt" + hex.EncodeToString(b), name: name}
	e.network = e.project + "-" + name
	t.Cleanup(func() {
		ctx := context.Background()
		if err := d.RemoveAll(ctx, e.project, e.name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := eng.RemoveNetwork(ctx, e.network); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	if _, err := eng.EnsureNetwork(testCtx(t), e.network, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e env) unit(name string, file string) deploy.Unit {
	return deploy.Unit{Source: "containers/" + name + ".yaml", Rendered: []byte(file), Project: e.project, Environment: e.name,
		Name: name, Network: e.network, Init: name != deploy.UnitDeploy}
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

func mustPlan(t *testing.T, d *Deployer, u deploy.Unit) *deploy.Plan {
	t.Helper()
	p, err := d.Plan(testCtx(t), u)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPlan(t *testing.T) {
	t.Parallel()
	d, _ := testDeployer(t)
	e := env{project: "proj", name: "dev", network: "proj-dev"}
	file := `# the app
apiVersion: v1
kind: ConfigMap
metadata: {name: cm}
data: {A: "1"}
---
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {tier: front}
spec:
  restartPolicy: Always
  containers:
  - name: app
    image: ` + image + `
    ports:
    - containerPort: 8080
    - {containerPort: 9000, hostPort: 19000, hostIP: 127.0.0.1, protocol: UDP}
    livenessProbe:
      exec:
        command: ["sh", "-c", "test -f /tmp/ready"]
  - name: side
    image: ` + image + `
    livenessProbe:
      exec:
        command: [pg_isready, -h, 127.0.0.1]
---
apiVersion: v1
kind: Pod
metadata: {name: proj-dev-solo}
spec:
  containers:
  - {name: one, image: ` + image + `}
`
	p := mustPlan(t, d, e.unit("init-1", file))
	wantPorts := []deploy.Port{
		{HostPort: 8080, ContainerPort: 8080, Protocol: "tcp", Service: "app"},
		{HostIP: "127.0.0.1", HostPort: 19000, ContainerPort: 9000, Protocol: "udp", Service: "app"},
	}
	if !slices.Equal(p.HostPorts, wantPorts) {
		t.Errorf("HostPorts %+v, want %+v", p.HostPorts, wantPorts)
	}
	if want := []string{"proj-dev-web-app", "proj-dev-web-side", "proj-dev-solo-one"}; !slices.Equal(p.Containers, want) {
		t.Errorf("Containers %q, want %q", p.Containers, want)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(p.Final))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		docs = append(docs, doc)
	}
	if len(docs) != 3 {
		t.Fatalf("Final has %d documents, want 3:\n%s", len(docs), p.Final)
	}
	web, solo := docs[1], docs[2]
	meta := web["metadata"].(map[string]any)
	labels := meta["labels"].(map[string]any)
	wantLabels := map[string]any{"tier": "front", deploy.LabelProject: "proj", deploy.LabelEnvironment: "dev", deploy.LabelUnit: "init-1", deploy.LabelConfig: p.Fingerprint}
	if fmt.Sprint(labels) != fmt.Sprint(wantLabels) || meta["name"] != "proj-dev-web" {
		t.Errorf("web metadata %v, want name proj-dev-web and labels %v", meta, wantLabels)
	}
	soloLabels := solo["metadata"].(map[string]any)["labels"].(map[string]any)
	if soloLabels[deploy.LabelService] != "one" || solo["metadata"].(map[string]any)["name"] != "proj-dev-solo" {
		t.Errorf("solo metadata %v: want name kept and %s=one", solo["metadata"], deploy.LabelService)
	}
	for _, doc := range docs[1:] {
		if rp := doc["spec"].(map[string]any)["restartPolicy"]; rp != "Never" {
			t.Errorf("init pod restartPolicy %v, want Never", rp)
		}
	}
	// podman 4.3 joins exec probe arguments into a shell line: the one needing quotes becomes
	// one quoted string, the plain one stays.
	ctrs := web["spec"].(map[string]any)["containers"].([]any)
	probe := func(i int) any {
		return ctrs[i].(map[string]any)["livenessProbe"].(map[string]any)["exec"].(map[string]any)["command"]
	}
	joined, err := d.probesJoined(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	wantApp := []any{"sh", "-c", "test -f /tmp/ready"}
	if joined {
		wantApp = []any{"sh -c 'test -f /tmp/ready'"}
	}
	if fmt.Sprint(probe(0)) != fmt.Sprint(wantApp) || fmt.Sprint(probe(1)) != "[pg_isready -h 127.0.0.1]" {
		t.Errorf("probes %q and %q, want %q and the second unchanged", probe(0), probe(1), wantApp)
	}
	if !bytes.HasPrefix(p.Final, []byte("# the app\n")) {
		t.Errorf("Final lost the file's comment:\n%s", p.Final)
	}

	// The fingerprint is that of the file without LabelConfig: the same input gives the same
	// one, another input another.
	if again := mustPlan(t, d, e.unit("init-1", file)); again.Fingerprint != p.Fingerprint || !bytes.Equal(again.Final, p.Final) {
		t.Error("planning the same unit twice gave another fingerprint or file")
	}
	if other := mustPlan(t, d, e.unit("init-1", strings.Replace(file, "tier: front", "tier: back", 1))); other.Fingerprint == p.Fingerprint {
		t.Error("a changed file kept its fingerprint")
	}
	dep := mustPlan(t, d, e.unit(deploy.UnitDeploy, file))
	if !bytes.Contains(dep.Final, []byte("restartPolicy: Always")) {
		t.Errorf("a deployment's restartPolicy was changed:\n%s", dep.Final)
	}

	_, err = d.Plan(testCtx(t), e.unit(deploy.UnitDeploy, "kind: Pod\nmetadata: {name: a}\nspec:\n  initContainers: [{name: i}]\n  containers: [{name: c}]\n"))
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "containers/deploy.yaml:1: pod proj-dev-a has initContainers under restartPolicy Always") {
		t.Errorf("init containers under Always: %v", err)
	}
	_, err = d.Plan(testCtx(t), e.unit(deploy.UnitDeploy, "kind: Pod\nmetadata: {name: a}\nspec: {containers: [{name: c}]}\n---\nkind: Pod\nmetadata: {name: proj-dev-a}\nspec: {containers: [{name: c}]}\n"))
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "containers/deploy.yaml:5: pod proj-dev-a is defined twice (first at line 1)") {
		t.Errorf("two pods of one name: %v", err)
	}
}

func TestPlanNeedsPodman(t *testing.T) {
	eng, err := engine.New(engine.Docker, engine.WithPath("/bin/true"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(eng)
	if err != nil {
		t.Fatal(err)
	}
	u := deploy.Unit{Source: "containers/app.yaml", Rendered: []byte("kind: Pod\n")}
	_, err = d.Plan(context.Background(), u)
	if exitcode.Of(err) != exitcode.Usage || !strings.HasPrefix(err.Error(), "pod file containers/app.yaml needs podman (kube play); docker runs compose files") {
		t.Errorf("Plan on docker: %v", err)
	}
	if cs, err := d.Containers(context.Background(), "p", "e", ""); err != nil || cs != nil {
		t.Errorf("Containers on docker: %v, %v", cs, err)
	}
}

func TestInitExits(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	e := newEnv(t, d, eng, "dev")
	// A deployment pod to resolve by name from the init pod, on the environment's network.
	dep := mustPlan(t, d, e.unit(deploy.UnitDeploy, `kind: Pod
metadata: {name: db}
spec:
  containers:
  - {name: c, image: `+image+`, command: [sleep, "300"]}
`))
	if _, err := d.Apply(ctx, dep); err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, d, e.unit("init-1", `kind: Pod
metadata: {name: seed}
spec:
  containers:
  - name: ok
    image: `+image+`
    command: ["sh", "-c", "echo out; echo err >&2; getent hosts `+e.project+`-dev-db >/dev/null && echo resolved"]
  - name: bad
    image: `+image+`
    command: ["sh", "-c", "sleep 1; echo failing; exit 3"]
`))
	changes, err := d.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []deploy.Change{{Name: e.project + "-dev-seed", Action: deploy.ActionCreated}}; !slices.Equal(changes, want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
	exits, err := d.WaitExited(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	want := []deploy.Exit{
		{Container: e.project + "-dev-seed-ok", Service: "ok", Code: 0, Logs: "out\nerr\nresolved\n"},
		{Container: e.project + "-dev-seed-bad", Service: "bad", Code: 3, Logs: "failing\n"},
	}
	if !slices.Equal(exits, want) {
		t.Errorf("exits\n%+v\nwant\n%+v", exits, want)
	}
	// An init unit runs again on every Apply, even unchanged.
	changes, err = d.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := []deploy.Change{{Name: e.project + "-dev-seed", Action: deploy.ActionRecreated}}; !slices.Equal(changes, want) {
		t.Errorf("second Apply: %v, want %v", changes, want)
	}
	if err := d.Remove(ctx, p); err != nil {
		t.Fatal(err)
	}
	cs, err := d.Containers(ctx, e.project, e.name, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != e.project+"-dev-db-c" || cs[0].Unit != deploy.UnitDeploy || cs[0].Service != "c" {
		t.Errorf("after removing the init unit: %+v, want the deployment's container only", cs)
	}
}

func TestWaitExitedCancel(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	e := newEnv(t, d, eng, "dev")
	p := mustPlan(t, d, e.unit("init-1", "kind: Pod\nmetadata: {name: slow}\nspec:\n  containers:\n  - {name: c, image: "+image+", command: [sleep, \"300\"]}\n"))
	if _, err := d.Apply(testCtx(t), p); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := d.WaitExited(ctx, p)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitExited after its context ended: %v", err)
	}
}

func TestDeploy(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	e := newEnv(t, d, eng, "dev")
	port := freePort(t)
	file := fmt.Sprintf(`kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: %s
    command: ["sh", "-c", "sleep 1; touch /tmp/ready; exec sleep 300"]
    ports:
    - {containerPort: %d, hostIP: 127.0.0.1}
    livenessProbe:
      exec:
        command: ["sh", "-c", "test -f /tmp/ready"]
      periodSeconds: 1
  - name: side
    image: %s
    command: [sleep, "300"]
`, image, port, image)
	p := mustPlan(t, d, e.unit(deploy.UnitDeploy, file))
	changes, err := d.Apply(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	pod := e.project + "-dev-web"
	if want := []deploy.Change{{Name: pod, Action: deploy.ActionCreated}}; !slices.Equal(changes, want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
	cs, err := d.WaitReady(ctx, p, time.Minute)
	if err != nil {
		t.Fatalf("%v\n%s", err, detail(err))
	}
	// podman 4.3 publishes a containerPort without hostPort on its own number.
	wantPort := []deploy.Port{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: port, Protocol: "tcp", Service: "app"}}
	if len(cs) != 2 || cs[0].Name != pod+"-app" || cs[0].Health != "healthy" || cs[0].State != "running" || !slices.Equal(cs[0].Ports, wantPort) ||
		cs[0].Config != p.Fingerprint || cs[0].Service != "app" || cs[1].Name != pod+"-side" || cs[1].Health != "" || cs[1].Started.IsZero() {
		t.Errorf("WaitReady gave %+v", cs)
	}
	listed, err := d.Containers(ctx, e.project, e.name, deploy.UnitDeploy)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || listed[0].Name != pod+"-app" || !slices.Equal(listed[0].Ports, wantPort) || listed[1].Service != "side" || listed[0].Unit != deploy.UnitDeploy {
		t.Errorf("Containers gave %+v", listed)
	}

	changes, err = d.Apply(ctx, mustPlan(t, d, e.unit(deploy.UnitDeploy, file)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []deploy.Change{{Name: pod, Action: deploy.ActionUnchanged}}; !slices.Equal(changes, want) {
		t.Errorf("same plan again: %v, want %v", changes, want)
	}
	if again, err := eng.InspectContainer(ctx, pod+"-app"); err != nil || !again.StartedAt.Equal(cs[0].Started) {
		t.Errorf("an unchanged pod was restarted: %v %v", again, err)
	}

	changed := mustPlan(t, d, e.unit(deploy.UnitDeploy, strings.Replace(file, `command: [sleep, "300"]`, `command: [sleep, "301"]`, 1)))
	changes, err = d.Apply(ctx, changed)
	if err != nil {
		t.Fatal(err)
	}
	if want := []deploy.Change{{Name: pod, Action: deploy.ActionRecreated}}; !slices.Equal(changes, want) {
		t.Errorf("changed plan: %v, want %v", changes, want)
	}
	if cs, err = d.WaitReady(ctx, changed, time.Minute); err != nil {
		t.Fatalf("%v\n%s", err, detail(err))
	}
	if cs[1].Config != changed.Fingerprint {
		t.Errorf("recreated container runs config %s, want %s", cs[1].Config, changed.Fingerprint)
	}
}

func detail(err error) string {
	var d interface{ Detail() string }
	if errors.As(err, &d) {
		return d.Detail()
	}
	return ""
}

func TestWaitReadyFailures(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	e := newEnv(t, d, eng, "dev")

	sick := mustPlan(t, d, e.unit(deploy.UnitDeploy, `kind: Pod
metadata: {name: sick}
spec:
  containers:
  - name: app
    image: `+image+`
    command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22; do echo line $i; done; exec sleep 300"]
    livenessProbe:
      exec:
        command: ["false"]
      periodSeconds: 1
`))
	if _, err := d.Apply(ctx, sick); err != nil {
		t.Fatal(err)
	}
	_, err := d.WaitReady(ctx, sick, 3*time.Second)
	var ce *ContainerError
	if !errors.As(err, &ce) || exitcode.Of(err) != exitcode.Timeout {
		t.Fatalf("WaitReady on a failing probe: %v (exit %d), want a ContainerError with exit 4", err, exitcode.Of(err))
	}
	wantMsg := fmt.Sprintf("containers/deploy.yaml: container %s-dev-sick-app not ready after 3s: running, health ", e.project)
	logs := ce.Detail()
	if !strings.HasPrefix(err.Error(), wantMsg) || !strings.Contains(logs, "\n  line 22") || strings.Contains(logs, "line 2\n") || strings.Count(logs, "\n") != logTail {
		t.Errorf("error %q with detail\n%s\nwant %q… and the last %d log lines", err, logs, wantMsg, logTail)
	}

	e2 := newEnv(t, d, eng, "other")
	dying := mustPlan(t, d, e2.unit(deploy.UnitDeploy, `kind: Pod
metadata: {name: dying}
spec:
  restartPolicy: Never
  containers:
  - {name: app, image: `+image+`, command: ["sh", "-c", "echo cannot start; exit 7"]}
`))
	if _, err := d.Apply(ctx, dying); err != nil {
		t.Fatal(err)
	}
	_, err = d.WaitReady(ctx, dying, time.Minute)
	want := fmt.Sprintf("containers/deploy.yaml: container %s-other-dying-app exited with code 7", e2.project)
	if err == nil || err.Error() != want || exitcode.Of(err) != exitcode.Failure || !strings.Contains(detail(err), "cannot start") {
		t.Errorf("WaitReady on an exiting container: %v (exit %d) %q, want %q", err, exitcode.Of(err), detail(err), want)
	}
}

func TestStrangerPod(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	e := newEnv(t, d, eng, "dev")
	name := e.project + "-dev-web"
	stranger := "kind: Pod\nmetadata: {name: " + name + "}\nspec:\n  containers:\n  - {name: c, image: " + image + ", command: [sleep, \"300\"]}\n"
	t.Cleanup(func() { _ = d.removePod(context.Background(), name) })
	if _, err := eng.Command(ctx, strings.NewReader(stranger), "kube", "play", "-"); err != nil {
		t.Fatal(err)
	}
	before, err := eng.InspectContainer(ctx, name+"-c")
	if err != nil {
		t.Fatal(err)
	}
	p := mustPlan(t, d, e.unit(deploy.UnitDeploy, "kind: Pod\nmetadata: {name: other}\nspec:\n  containers:\n  - {name: c, image: "+image+", command: [sleep, \"300\"]}\n---\n"+stranger))
	_, err = d.Apply(ctx, p)
	want := "containers/deploy.yaml: a pod named " + name + " already exists and it was not made by poststack; nothing was changed"
	if err == nil || err.Error() != want || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("Apply over a stranger: %v, want %q (exit 2)", err, want)
	}
	after, err := eng.InspectContainer(ctx, name+"-c")
	if err != nil || after.ID != before.ID || !after.Running {
		t.Errorf("the stranger's container changed: %+v %v", after, err)
	}
	if cs, err := d.Containers(ctx, e.project, e.name, ""); err != nil || len(cs) != 0 {
		t.Errorf("Apply started something: %+v %v", cs, err)
	}
	if err := d.Remove(ctx, p); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("Remove with a stranger: %v, want exit 2", err)
	}
	if err := d.RemoveAll(ctx, e.project, e.name); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.InspectContainer(ctx, name+"-c"); err != nil {
		t.Errorf("Remove or RemoveAll removed the stranger: %v", err)
	}
}

func TestRemoveAllOneEnvironment(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	a := newEnv(t, d, eng, "a")
	b := env{project: a.project, name: "b", network: a.project + "-b"}
	t.Cleanup(func() {
		_ = d.RemoveAll(context.Background(), b.project, b.name)
		_ = eng.RemoveNetwork(context.Background(), b.network)
	})
	if _, err := eng.EnsureNetwork(ctx, b.network, nil); err != nil {
		t.Fatal(err)
	}
	file := "kind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: c, image: " + image + ", command: [sleep, \"300\"]}\n"
	for _, u := range []deploy.Unit{a.unit(deploy.UnitDeploy, file), b.unit(deploy.UnitDeploy, file), b.unit("init-1", strings.Replace(file, "web", "job", 1))} {
		if _, err := d.Apply(ctx, mustPlan(t, d, u)); err != nil {
			t.Fatal(err)
		}
	}
	if cs, err := d.Containers(ctx, b.project, b.name, ""); err != nil || len(cs) != 2 {
		t.Fatalf("environment b before: %+v %v, want 2 containers", cs, err)
	}
	if err := d.RemoveAll(ctx, b.project, b.name); err != nil {
		t.Fatal(err)
	}
	if cs, err := d.Containers(ctx, b.project, b.name, ""); err != nil || len(cs) != 0 {
		t.Errorf("environment b after RemoveAll: %+v %v", cs, err)
	}
	cs, err := d.Containers(ctx, a.project, a.name, "")
	if err != nil || len(cs) != 1 || cs[0].Name != a.project+"-a-web-c" || cs[0].State != "running" {
		t.Errorf("environment a after b's RemoveAll: %+v %v", cs, err)
	}
	if _, err := eng.InspectNetwork(ctx, b.network); err != nil {
		t.Errorf("RemoveAll removed the network: %v", err)
	}
}

func TestApplyFailureCleansUp(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	e := newEnv(t, d, eng, "dev")
	p := mustPlan(t, d, e.unit(deploy.UnitDeploy, "kind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - {name: c, image: localhost/poststack-no-such-image:1}\n"))
	_, err := d.Apply(ctx, p)
	var ce *engine.CommandError
	if !errors.As(err, &ce) || exitcode.Of(err) != exitcode.Failure ||
		!strings.HasPrefix(err.Error(), "containers/deploy.yaml: pod "+e.project+"-dev-web: podman kube play --network "+e.network+" -: exit status 125") {
		t.Errorf("Apply with a missing image: %v (exit %d), want the failed kube play, exit 1", err, exitcode.Of(err))
	}
	if pods, err := d.listPods(ctx, map[string]string{deploy.LabelProject: e.project}); err != nil || len(pods) != 0 {
		t.Errorf("a failed play left pods: %+v %v", pods, err)
	}
}

// TestApplyPortTaken: a pod whose host port someone took after it was planned fails with
// podman's own reason in the one-line error (its last line only counts the containers), and
// leaves no pod.
func TestApplyPortTaken(t *testing.T) {
	t.Parallel()
	d, eng := testDeployer(t)
	ctx := testCtx(t)
	e := newEnv(t, d, eng, "dev")
	port := freePort(t)
	p := mustPlan(t, d, e.unit(deploy.UnitDeploy, fmt.Sprintf(`kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: app
    image: %s
    command: [sleep, "300"]
    ports:
    - {containerPort: 8080, hostPort: %d, hostIP: 127.0.0.1}
`, image, port)))
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, err = d.Apply(ctx, p)
	if err == nil || !strings.Contains(err.Error(), "failed to start") || !strings.Contains(err.Error(), "127.0.0.1:"+strconv.Itoa(port)+": bind: address already in use") {
		t.Errorf("Apply on a taken port: %v; want kube play's failure with its reason", err)
	}
	if pods, err := d.listPods(ctx, map[string]string{deploy.LabelProject: e.project}); err != nil || len(pods) != 0 {
		t.Errorf("a failed play left pods: %+v %v", pods, err)
	}
}
