package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// forEachEngine runs fn as a subtest per real engine; each gets an Engine or is skipped (failed
// under CI) by testenv. Engine tests run in parallel: they wait on the CLIs, not the CPU, and
// use names of their own.
func forEachEngine(t *testing.T, fn func(t *testing.T, e *Engine, image string)) {
	t.Parallel()
	for _, name := range []string{Podman, Docker} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []Option
			switch name {
			case Podman:
				opts = append(opts, WithPath(testenv.Podman(t)))
			case Docker:
				opts = append(opts, WithEnviron(append(os.Environ(), "DOCKER_HOST="+testenv.Docker(t))))
			}
			image := testenv.BaseImage(t, name)
			e, err := New(name, opts...)
			if err != nil {
				t.Fatal(err)
			}
			fn(t, e, image)
		})
	}
}

func uniqueName(t *testing.T) string {
	t.Helper()
	b := make([]byte, 5)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "pse-test-" + hex.EncodeToString(b)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func cleanupContainer(t *testing.T, e *Engine, name string) {
	t.Cleanup(func() {
		if err := e.Remove(context.Background(), name, true, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

func TestContainerLifecycle(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		ctx := testCtx(t)
		name, label := uniqueName(t), uniqueName(t)
		net, vol := name+"-net", name+"-vol"
		t.Cleanup(func() {
			_ = e.RemoveNetwork(context.Background(), net)
			_ = e.RemoveVolume(context.Background(), vol)
		})
		cleanupContainer(t, e, name)
		if err := e.CreateNetwork(ctx, net, nil); err != nil {
			t.Fatal(err)
		}
		hostDir := t.TempDir()
		id, err := e.Run(ctx, RunOptions{
			Name:       name,
			Image:      image,
			Entrypoint: []string{"sh", "-c"},
			Cmd:        []string{"for i in 1 2 3 4 5; do echo line$i; done; echo oops >&2; exec sleep 300"},
			Env:        []string{"SECRET=s3cret-value"},
			Labels:     map[string]string{"pse.test": label, "pse.role": "main"},
			Network:    net,
			Aliases:    []string{"db"},
			Ports:      []PortMapping{{HostIP: "127.0.0.1", ContainerPort: 5432}},
			Mounts:     []Mount{{Source: vol, Target: "/data"}, {Source: hostDir, Target: "/host", ReadOnly: true}},
			Restart:    "unless-stopped",
		})
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.InspectContainer(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != id || c.Name != name || c.Image != image || !strings.HasPrefix(c.ImageID, "sha256:") {
			t.Errorf("identity: id %s, %+v", id, c)
		}
		if !c.Running || c.Status != "running" || c.StartedAt.IsZero() {
			t.Errorf("state: %+v", c)
		}
		if c.Labels["pse.test"] != label || c.Labels["pse.role"] != "main" {
			t.Errorf("labels %v", c.Labels)
		}
		if !slices.Contains(c.Env, "SECRET=s3cret-value") {
			t.Errorf("env %v", c.Env)
		}
		if len(c.Ports) != 1 || c.Ports[0].HostIP != "127.0.0.1" || c.Ports[0].HostPort <= 0 || c.Ports[0].ContainerPort != 5432 || c.Ports[0].Protocol != "tcp" {
			t.Errorf("ports %+v", c.Ports)
		}
		if want := []Mount{{vol, "/data", false}, {hostDir, "/host", true}}; !reflect.DeepEqual(c.Mounts, want) {
			t.Errorf("mounts %+v, want %+v", c.Mounts, want)
		}
		if !reflect.DeepEqual(c.Networks, []string{net}) || c.RestartPolicy != "unless-stopped" {
			t.Errorf("networks %v restart %q", c.Networks, c.RestartPolicy)
		}

		// A second container with the same test label but another role: label filters AND.
		other := uniqueName(t)
		cleanupContainer(t, e, other)
		if _, err := e.Run(ctx, RunOptions{Name: other, Image: image, Cmd: []string{"true"}, Labels: map[string]string{"pse.test": label, "pse.role": "init"}}); err != nil {
			t.Fatal(err)
		}
		all, err := e.ListContainers(ctx, map[string]string{"pse.test": label})
		if err != nil || len(all) != 2 {
			t.Fatalf("list by test label: %v, %d containers", err, len(all))
		}
		if want := []string{name, other}; slices.Compare([]string{all[0].Name, all[1].Name}, sortedStrings(want)) != 0 {
			t.Errorf("list names %s %s", all[0].Name, all[1].Name)
		}
		main, err := e.ListContainers(ctx, map[string]string{"pse.test": label, "pse.role": "main"})
		if err != nil || len(main) != 1 || main[0].ID != id {
			t.Errorf("list by two labels: %v %+v", err, main)
		}
		none, err := e.ListContainers(ctx, map[string]string{"pse.test": label, "pse.role": "nope"})
		if err != nil || len(none) != 0 {
			t.Errorf("list with no match: %v %+v", err, none)
		}

		out, err := e.Exec(ctx, name, []string{"sh", "-c", "echo hi $EXTRA; touch /data/f"}, []string{"EXTRA=there"}, nil)
		if err != nil || out != "hi there\n" {
			t.Errorf("exec: %q %v", out, err)
		}
		out, err = e.Exec(ctx, name, []string{"cat"}, nil, strings.NewReader("from stdin"))
		if err != nil || out != "from stdin" {
			t.Errorf("exec stdin: %q %v", out, err)
		}
		_, err = e.Exec(ctx, name, []string{"sh", "-c", "echo bad >&2; exit 3"}, []string{"TOKEN=exec-secret"}, nil)
		var ce *CommandError
		if !errors.As(err, &ce) || ce.ExitCode != 3 || !strings.Contains(ce.Stderr, "bad") || errors.Is(err, ErrNotFound) {
			t.Errorf("exec failure: %v", err)
		} else if strings.Contains(strings.Join(ce.Args, " "), "exec-secret") || strings.Contains(err.Error(), "exec-secret") {
			t.Errorf("exec error leaks the env value: %q", ce.Args)
		}

		// stdout and stderr are two streams: the engines may merge "oops" before or after the
		// stdout lines written in the same instant, so only each stream's own order is fixed.
		logs, err := waitLogs(ctx, e, name, 2, "line5")
		if tail := strings.Split(strings.TrimSuffix(logs, "\n"), "\n"); err != nil || len(tail) != 2 || !slices.Contains(tail, "line5") {
			t.Errorf("logs tail 2: %q %v", logs, err)
		}
		logs, err = e.Logs(ctx, name, 0)
		stdout := strings.Replace(logs, "oops\n", "", 1)
		if err != nil || stdout != "line1\nline2\nline3\nline4\nline5\n" || !strings.Contains(logs, "oops\n") {
			t.Errorf("logs: %q %v", logs, err)
		}

		if err := e.Stop(ctx, name, 0); err != nil {
			t.Fatal(err)
		}
		c, err = e.InspectContainer(ctx, name)
		if err != nil || c.Running || c.Status != "exited" || c.FinishedAt.IsZero() {
			t.Errorf("after stop: %v %+v", err, c)
		}
		if err := e.Start(ctx, name); err != nil {
			t.Fatal(err)
		}
		if c, err = e.InspectContainer(ctx, name); err != nil || !c.Running {
			t.Errorf("after start: %v %+v", err, c)
		}
		if err := e.Remove(ctx, name, true, false); err != nil {
			t.Fatal(err)
		}
		if _, err := e.InspectContainer(ctx, name); !errors.Is(err, ErrNotFound) {
			t.Errorf("inspect after remove: %v", err)
		}
		if v, err := e.InspectVolume(ctx, vol); err != nil || v.Name != vol {
			t.Errorf("named volume must survive its container: %v", err)
		}
	})
}

func sortedStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// waitLogs polls until the tail holds want: the engines write logs asynchronously.
func waitLogs(ctx context.Context, e *Engine, name string, tail int, want string) (string, error) {
	for {
		logs, err := e.Logs(ctx, name, tail)
		if err != nil || strings.Contains(logs, want) {
			return logs, err
		}
		select {
		case <-ctx.Done():
			return logs, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestWaitExitCode(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		ctx := testCtx(t)
		name := uniqueName(t)
		cleanupContainer(t, e, name)
		if _, err := e.Run(ctx, RunOptions{Name: name, Image: image, Cmd: []string{"sh", "-c", "exit 7"}}); err != nil {
			t.Fatal(err)
		}
		code, err := e.Wait(ctx, name)
		if err != nil || code != 7 {
			t.Fatalf("wait: %d %v", code, err)
		}
		c, err := e.InspectContainer(ctx, name)
		if err != nil || c.ExitCode != 7 || c.Status != "exited" {
			t.Errorf("inspect: %v %+v", err, c)
		}
	})
}

func TestMissingObjects(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		ctx := testCtx(t)
		name := uniqueName(t)
		for what, err := range map[string]error{
			"remove container": e.Remove(ctx, name, false, false),
			"force remove":     e.Remove(ctx, name, true, true),
			"remove volume":    e.RemoveVolume(ctx, name),
			"remove network":   e.RemoveNetwork(ctx, name),
			"remove image":     e.RemoveImage(ctx, "localhost/"+name+":latest", false),
		} {
			if err != nil {
				t.Errorf("%s of a missing object: %v", what, err)
			}
		}
		_, err1 := e.InspectContainer(ctx, name)
		_, err2 := e.InspectImage(ctx, "localhost/"+name+":latest")
		_, err3 := e.InspectVolume(ctx, name)
		_, err4 := e.InspectNetwork(ctx, name)
		_, err5 := e.Wait(ctx, name)
		err6 := e.Start(ctx, name)
		for i, err := range []error{err1, err2, err3, err4, err5, err6} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("case %d: %v does not wrap ErrNotFound", i+1, err)
			}
		}
		ok, err := e.ImageExists(ctx, "localhost/"+name+":latest")
		if err != nil || ok {
			t.Errorf("ImageExists(missing) = %v, %v", ok, err)
		}
		ok, err = e.ImageExists(ctx, image)
		if err != nil || !ok {
			t.Errorf("ImageExists(base) = %v, %v", ok, err)
		}
	})
}

func TestRunErrorRedactsEnv(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		ctx := testCtx(t)
		name := uniqueName(t)
		cleanupContainer(t, e, name)
		_, err := e.Run(ctx, RunOptions{Name: name, Image: image, Cmd: []string{"true"},
			Env: []string{"POSTGRES_PASSWORD=hunter2-secret"}, Network: name + "-no-such-net"})
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Fatalf("want a *CommandError, got %v", err)
		}
		if ce.Engine != e.Name() || ce.ExitCode == 0 || ce.Stderr == "" {
			t.Errorf("command error %+v", ce)
		}
		if !slices.Contains(ce.Args, "POSTGRES_PASSWORD=***") || strings.Contains(strings.Join(ce.Args, " "), "hunter2") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("env value not redacted: %q / %v", ce.Args, err)
		}
	})
}

func TestCancelledExec(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		name := uniqueName(t)
		cleanupContainer(t, e, name)
		if _, err := e.Run(testCtx(t), RunOptions{Name: name, Image: image, Cmd: []string{"sleep", "300"}}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		_, err := e.Exec(ctx, name, []string{"sleep", "60"}, nil, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("exec past its deadline: %v, want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Errorf("cancelled exec took %s", d)
		}
	})
}

func TestBuild(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		ctx := testCtx(t)
		tag := "localhost/" + uniqueName(t)
		dir := t.TempDir()
		write := func(name, content string) {
			t.Helper()
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("containers/ok/Dockerfile", "FROM "+image+"\nARG GREETING\nARG TOKEN\nHEALTHCHECK --interval=30s CMD true\nSTOPSIGNAL SIGINT\nRUN echo \"$GREETING\" | tee /greeting\n")
		var out bytes.Buffer
		id, err := e.Build(ctx, BuildOptions{
			ContextDir: dir, Dockerfile: "containers/ok/Dockerfile", Tags: []string{tag + ":1", tag + ":latest"},
			BuildArgs: map[string]string{"GREETING": "hello-from-build", "TOKEN": "tok"},
			Labels:    map[string]string{"io.poststack.test": "yes"}, Output: &out,
		})
		t.Cleanup(func() {
			for _, ref := range []string{tag + ":1", tag + ":latest", tag + ":copy"} {
				_ = e.RemoveImage(context.Background(), ref, true)
			}
		})
		if err != nil {
			t.Fatalf("build: %v\n%s", err, out.String())
		}
		if !strings.HasPrefix(id, "sha256:") || !strings.Contains(out.String(), "hello-from-build") {
			t.Errorf("id %q, output %q", id, out.String())
		}
		img, err := e.InspectImage(ctx, tag+":latest")
		if err != nil {
			t.Fatal(err)
		}
		if img.ID != id || !slices.Contains(img.RepoTags, tag+":1") || !slices.Contains(img.RepoTags, tag+":latest") {
			t.Errorf("image %+v, build id %s", img, id)
		}
		if img.Labels["io.poststack.test"] != "yes" || img.StopSignal != "SIGINT" || !reflect.DeepEqual(img.Healthcheck, []string{"CMD-SHELL", "true"}) {
			t.Errorf("image metadata %+v", img)
		}
		if err := e.TagImage(ctx, id, tag+":copy"); err != nil {
			t.Fatal(err)
		}
		if ok, err := e.ImageExists(ctx, tag+":copy"); err != nil || !ok {
			t.Errorf("tag: %v %v", ok, err)
		}

		write("bad/Dockerfile", "FROM "+image+"\nRUN echo step-marker-output && false\n")
		_, err = e.Build(ctx, BuildOptions{ContextDir: filepath.Join(dir, "bad"), BuildArgs: map[string]string{"PASSWORD": "build-secret"}})
		var ce *CommandError
		if !errors.As(err, &ce) {
			t.Fatalf("failed build: want *CommandError, got %v", err)
		}
		if !strings.Contains(ce.Stderr, "step-marker-output") || strings.Count(ce.Stderr, "\n") >= buildTailLines {
			t.Errorf("stderr of failed build: %q", ce.Stderr)
		}
		if !slices.Contains(ce.Args, "PASSWORD") || strings.Contains(strings.Join(ce.Args, " ")+err.Error(), "build-secret") {
			t.Errorf("build arg not redacted: %q", ce.Args)
		}
	})
}

func TestNetworksAndVolumes(t *testing.T) {
	forEachEngine(t, func(t *testing.T, e *Engine, image string) {
		ctx := testCtx(t)
		label := uniqueName(t)
		a, b := label+"-a", label+"-b"
		t.Cleanup(func() {
			for _, n := range []string{a, b} {
				_ = e.RemoveNetwork(context.Background(), n)
				_ = e.RemoveVolume(context.Background(), n)
			}
		})
		labels := map[string]string{"pse.test": label, "pse.role": "a"}
		created, err := e.EnsureNetwork(ctx, a, labels)
		if err != nil || !created {
			t.Fatalf("ensure network: %v %v", created, err)
		}
		if created, err = e.EnsureNetwork(ctx, a, labels); err != nil || created {
			t.Errorf("ensure existing network: %v %v", created, err)
		}
		if err := e.CreateNetwork(ctx, b, map[string]string{"pse.test": label, "pse.role": "b"}); err != nil {
			t.Fatal(err)
		}
		n, err := e.InspectNetwork(ctx, a)
		if err != nil || n.Name != a || n.ID == "" || !reflect.DeepEqual(n.Labels, labels) {
			t.Errorf("inspect network: %v %+v", err, n)
		}
		ns, err := e.ListNetworks(ctx, map[string]string{"pse.test": label})
		if err != nil || len(ns) != 2 || ns[0].Name != a || ns[1].Name != b || ns[0].ID != n.ID {
			t.Errorf("list networks: %v %+v", err, ns)
		}
		ns, err = e.ListNetworks(ctx, labels)
		if err != nil || len(ns) != 1 || ns[0].Name != a {
			t.Errorf("list networks by two labels: %v %+v", err, ns)
		}

		if created, err = e.EnsureVolume(ctx, a, labels); err != nil || !created {
			t.Fatalf("ensure volume: %v %v", created, err)
		}
		if created, err = e.EnsureVolume(ctx, a, labels); err != nil || created {
			t.Errorf("ensure existing volume: %v %v", created, err)
		}
		if err := e.CreateVolume(ctx, b, map[string]string{"pse.test": label, "pse.role": "b"}); err != nil {
			t.Fatal(err)
		}
		v, err := e.InspectVolume(ctx, a)
		if err != nil || v.Name != a || v.Mountpoint == "" || !reflect.DeepEqual(v.Labels, labels) {
			t.Errorf("inspect volume: %v %+v", err, v)
		}
		vs, err := e.ListVolumes(ctx, map[string]string{"pse.test": label})
		if err != nil || len(vs) != 2 || vs[0].Name != a || vs[1].Name != b {
			t.Errorf("list volumes: %v %+v", err, vs)
		}
		vs, err = e.ListVolumes(ctx, labels)
		if err != nil || len(vs) != 1 || vs[0].Name != a {
			t.Errorf("list volumes by two labels: %v %+v", err, vs)
		}

		for _, name := range []string{a, b} {
			if err := e.RemoveNetwork(ctx, name); err != nil {
				t.Error(err)
			}
			if err := e.RemoveVolume(ctx, name); err != nil {
				t.Error(err)
			}
		}
		if _, err := e.InspectNetwork(ctx, a); !errors.Is(err, ErrNotFound) {
			t.Errorf("network after remove: %v", err)
		}
		if _, err := e.InspectVolume(ctx, a); !errors.Is(err, ErrNotFound) {
			t.Errorf("volume after remove: %v", err)
		}
	})
}

// TestAttackSecretsStayOffRealCommandLines runs a container and an exec with secrets through a
// wrapper that records the argv of every CLI run before it execs the real engine: the values
// reach the container and the command, never an argv another local user could read.
func TestAttackSecretsStayOffRealCommandLines(t *testing.T) {
	forEachEngine(t, func(t *testing.T, real *Engine, image string) {
		ctx := testCtx(t)
		dir := t.TempDir()
		log := filepath.Join(dir, "argv.log")
		wrapper := filepath.Join(dir, real.Name())
		script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + log + "\nexec " + real.Path() + " \"$@\"\n"
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		e, err := New(real.Name(), WithPath(wrapper), WithEnviron(real.environ))
		if err != nil {
			t.Fatal(err)
		}
		name := uniqueName(t)
		cleanupContainer(t, e, name)
		const runSecret, execSecret = "run-secret-4c1d", "exec-secret-9e2f"
		if _, err := e.Run(ctx, RunOptions{Name: name, Image: image, Cmd: []string{"sleep", "300"},
			Secrets: []string{"APP_PASSWORD=" + runSecret}, StopTimeout: time.Second}); err != nil {
			t.Fatal(err)
		}
		out, err := e.Exec(ctx, name, []string{"sh", "-c", `echo "$APP_PASSWORD $PGPASSWORD"`}, []string{"PGPASSWORD=" + execSecret}, nil)
		if want := runSecret + " " + execSecret + "\n"; err != nil || out != want {
			t.Errorf("in the container: %q, %v; want %q", out, err, want)
		}
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), runSecret) || strings.Contains(string(b), execSecret) {
			t.Errorf("a secret is on a command line:\n%s", b)
		}
		if !strings.Contains(string(b), "-e APP_PASSWORD ") || !strings.Contains(string(b), "-e PGPASSWORD ") {
			t.Errorf("the variables were not passed by name:\n%s", b)
		}
	})
}
