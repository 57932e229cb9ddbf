package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeListShapes(t *testing.T) {
	type obj struct{ A int }
	tests := []struct {
		name string
		in   string
		want []obj
	}{
		{"empty", "", nil},
		{"whitespace", " \n", nil},
		{"null", "null", nil},
		{"array", `[{"A":1},{"A":2}]`, []obj{{1}, {2}}},
		{"empty array", `[]`, nil},
		{"stream", "{\"A\":1}\n{\"A\":2}\n", []obj{{1}, {2}}},
		{"array then stream", "[{\"A\":1}]\n{\"A\":2}", []obj{{1}, {2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeList[obj]([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := decodeList[obj]([]byte(`[{"A":1}`)); err == nil {
		t.Error("truncated JSON decoded without error")
	}
}

func TestLabelMap(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{`null`, map[string]string{}},
		{`{"a":"b"}`, map[string]string{"a": "b"}},
		{`""`, map[string]string{}},
		{`"a=b,x=y"`, map[string]string{"a": "b", "x": "y"}},
		{`"a=b,c,x=y="`, map[string]string{"a": "b,c", "x": "y="}},
		{`"flag="`, map[string]string{"flag": ""}},
	}
	for _, tt := range tests {
		var m struct{ L labelMap }
		if err := jsonUnmarshal(`{"L":`+tt.in+`}`, &m); err != nil {
			t.Fatalf("%s: %v", tt.in, err)
		}
		if !reflect.DeepEqual(map[string]string(m.L), tt.want) {
			t.Errorf("%s: got %v, want %v", tt.in, m.L, tt.want)
		}
	}
}

// The samples in testdata are real output of podman 4.3.1 and docker 20.10 (CLI 28) for the
// same objects: a running container "pse-cap-c" (labels a=b, x=y; env FOO=bar; port
// 127.0.0.1:181x0->80/tcp; volume pse-cap-vol on /data; /tmp read-only on /hosttmp; network
// pse-cap-net; restart unless-stopped) and a created container "pse-cap-c2".
func TestDecodeContainerSamples(t *testing.T) {
	for _, eng := range []string{Podman, Docker} {
		t.Run(eng, func(t *testing.T) {
			cs, err := decodeList[containerJSON](readTestdata(t, eng+"-inspect-container.json"))
			if err != nil || len(cs) != 1 {
				t.Fatalf("decode: %v (%d)", err, len(cs))
			}
			c := cs[0].container()
			hostPort := map[string]int{Podman: 18180, Docker: 18280}[eng]
			if c.Name != "pse-cap-c" || c.Image != "localhost/debian:bookworm" || !strings.HasPrefix(c.ImageID, "sha256:") || len(c.ID) != 64 {
				t.Errorf("identity: %+v", c)
			}
			if c.Status != "running" || !c.Running || c.StartedAt.IsZero() || !c.FinishedAt.IsZero() || c.Health != "" {
				t.Errorf("state: %+v", c)
			}
			if !reflect.DeepEqual(c.Labels, map[string]string{"a": "b", "x": "y"}) {
				t.Errorf("labels %v", c.Labels)
			}
			if len(c.Env) == 0 || c.Env[0] != "FOO=bar" {
				t.Errorf("env %v", c.Env)
			}
			if want := []PortMapping{{"127.0.0.1", hostPort, 80, "tcp"}}; !reflect.DeepEqual(c.Ports, want) {
				t.Errorf("ports %+v, want %+v", c.Ports, want)
			}
			wantMounts := []Mount{{"pse-cap-vol", "/data", false}, {"/tmp", "/hosttmp", true}}
			if !reflect.DeepEqual(c.Mounts, wantMounts) {
				t.Errorf("mounts %+v", c.Mounts)
			}
			if !reflect.DeepEqual(c.Networks, []string{"pse-cap-net"}) || c.RestartPolicy != "unless-stopped" {
				t.Errorf("networks %v restart %q", c.Networks, c.RestartPolicy)
			}

			cs, err = decodeList[containerJSON](readTestdata(t, eng+"-inspect-container-created.json"))
			if err != nil || len(cs) != 1 {
				t.Fatalf("decode created: %v", err)
			}
			c = cs[0].container()
			if c.Name != "pse-cap-c2" || c.Status != "created" || c.Running || !c.StartedAt.IsZero() || c.RestartPolicy != "no" || len(c.Ports) != 0 {
				t.Errorf("created: %+v", c)
			}
		})
	}
}

func TestDecodeListSamples(t *testing.T) {
	for _, tt := range []struct{ eng, ext string }{{Podman, "json"}, {Docker, "jsonl"}} {
		t.Run(tt.eng, func(t *testing.T) {
			vs, err := decodeList[volumeJSON](readTestdata(t, tt.eng+"-volume-ls."+tt.ext))
			if err != nil || len(vs) != 1 {
				t.Fatalf("volumes: %v %+v", err, vs)
			}
			if v := vs[0].volume(); v.Name != "pse-cap-vol" || !strings.HasSuffix(v.Mountpoint, "/pse-cap-vol/_data") || !reflect.DeepEqual(v.Labels, map[string]string{"a": "b"}) {
				t.Errorf("volume %+v", v)
			}
			ns, err := decodeList[networkJSON](readTestdata(t, tt.eng+"-network-ls."+tt.ext))
			if err != nil || len(ns) != 1 {
				t.Fatalf("networks: %v %+v", err, ns)
			}
			if n := ns[0].network(); n.Name != "pse-cap-net" || len(n.ID) != 64 || !reflect.DeepEqual(n.Labels, map[string]string{"a": "b"}) {
				t.Errorf("network %+v", n)
			}
			type psRow struct {
				Labels labelMap
				State  string
			}
			rows, err := decodeList[psRow](readTestdata(t, tt.eng+"-ps."+tt.ext))
			if err != nil || len(rows) != 2 {
				t.Fatalf("ps: %v %+v", err, rows)
			}
			for _, r := range rows {
				if r.Labels["a"] != "b" {
					t.Errorf("ps row labels %v", r.Labels)
				}
			}
			for _, kind := range []string{"volume", "network"} {
				vs, err := decodeList[volumeJSON](readTestdata(t, tt.eng+"-inspect-"+kind+".json"))
				if err != nil || len(vs) != 1 || vs[0].Name != "pse-cap-"+kind[:3] || vs[0].Labels["a"] != "b" {
					t.Errorf("inspect %s: %v %+v", kind, err, vs)
				}
			}
		})
	}
}

func TestDecodeImageSamples(t *testing.T) {
	for _, eng := range []string{Podman, Docker} {
		t.Run(eng, func(t *testing.T) {
			is, err := decodeList[imageJSON](readTestdata(t, eng+"-inspect-image.json"))
			if err != nil || len(is) != 1 {
				t.Fatalf("decode: %v", err)
			}
			img := is[0].image()
			if !strings.HasPrefix(img.ID, "sha256:") || !reflect.DeepEqual(img.RepoTags, []string{"localhost/debian:bookworm"}) ||
				img.Created.IsZero() || !reflect.DeepEqual(img.Cmd, []string{"bash"}) || img.Healthcheck != nil || img.Volumes != nil {
				t.Errorf("base image %+v", img)
			}
			// Built from: LABEL l1=v1, HEALTHCHECK CMD true, STOPSIGNAL SIGINT, VOLUME /data,
			// ENTRYPOINT ["/bin/sh","-c"].
			is, err = decodeList[imageJSON](readTestdata(t, eng+"-inspect-image-built.json"))
			if err != nil || len(is) != 1 {
				t.Fatalf("decode built: %v", err)
			}
			img = is[0].image()
			if img.Labels["l1"] != "v1" || img.StopSignal != "SIGINT" ||
				!reflect.DeepEqual(img.Healthcheck, []string{"CMD-SHELL", "true"}) ||
				!reflect.DeepEqual(img.Volumes, []string{"/data"}) ||
				!reflect.DeepEqual(img.Entrypoint, []string{"/bin/sh", "-c"}) {
				t.Errorf("built image %+v", img)
			}
		})
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"run", "-e", "PASSWORD=hunter2", "--env", "A=b=c", "--env=T=tok", "-e=X=1", "-e", "PASSTHROUGH",
		"--build-arg", "SECRET=s3", "--build-arg=K=v", "--label", "keep=visible", "img", "echo"}
	want := []string{"run", "-e", "PASSWORD=***", "--env", "A=***", "--env=T=***", "-e=X=***", "-e", "PASSTHROUGH",
		"--build-arg", "SECRET=***", "--build-arg=K=***", "--label", "keep=visible", "img", "echo"}
	got := redactArgs(in)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if in[2] != "PASSWORD=hunter2" {
		t.Error("redactArgs modified its input")
	}
}

func TestCommandErrorMessage(t *testing.T) {
	base := errors.New("exit status 125")
	tests := []struct {
		name string
		ce   CommandError
		want string
	}{
		{"short", CommandError{Engine: "podman", Args: []string{"rm", "x"}, ExitCode: 125, Stderr: "Error: no such container", Err: base},
			"podman rm x: exit status 125: Error: no such container"},
		{"picks the error line over later warnings", CommandError{Engine: "podman", Args: []string{"start", "x"}, ExitCode: 125,
			Stderr: "Error: boom\ntime=\"…\" level=warning msg=\"noise\"", Err: base},
			"podman start x: exit status 125: Error: boom"},
		{"kube play: the first container's reason", CommandError{Engine: "podman", Args: []string{"kube", "play", "-"}, ExitCode: 125,
			// podman 4.3's stderr when the pod's host port is taken.
			Stderr: "failed to connect to syslog: Initialization\n" +
				"starting container a93a14105b6c13b8bc4547048aa40c00f72743fffc2a72b833a13168c527fd61: cannot listen on the TCP port: listen tcp4 127.0.0.1:23456: bind: address already in use\n" +
				"starting container 57bf7a8356c3752f9fc323bc3451f751125d68d12488de3499ae4281b63d74fa: a dependency of container 57bf7a8356c3752f9fc323bc3451f751125d68d12488de3499ae4281b63d74fa failed to start: container state improper\n" +
				"Error: failed to start 2 containers", Err: base},
			"podman kube play -: exit status 125: Error: failed to start 2 containers (starting container a93a14105b6c: cannot listen on the TCP port: listen tcp4 127.0.0.1:23456: bind: address already in use)"},
		{"quotes and elides", CommandError{Engine: "docker", Args: []string{"run", "-d", "--name", "a b", "--label", strings.Repeat("k", 80) + "=v", "img"}, ExitCode: 1, Err: errors.New("exit status 1")},
			`docker run -d --name "a b" --label ` + strings.Repeat("k", 80) + "=v …: exit status 1"},
		{"no stderr", CommandError{Engine: "docker", Args: []string{"wait", "x"}, ExitCode: 1, Err: errors.New("exit status 1")},
			"docker wait x: exit status 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ce.Error(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if strings.Contains(tt.ce.Error(), "\n") {
				t.Error("multi-line message")
			}
		})
	}
	ce := &CommandError{Err: context.Canceled}
	if err := fmt.Errorf("op: %w", ce); !errors.Is(err, context.Canceled) || exitcode.Of(err) != exitcode.Interrupted {
		t.Error("a cancelled command must unwrap to context.Canceled")
	}
	if exitcode.Of(&CommandError{ExitCode: 125, Err: errors.New("exit status 125")}) != exitcode.Failure {
		t.Error("a failed command is exit 1")
	}
}

func TestIsNotFound(t *testing.T) {
	// Messages captured from podman 4.3.1 and docker 20.10 for missing objects.
	missing := []string{
		"Error: no container with name or ID \"nonexistent-xyz\" found: no such container",
		"Error response from daemon: No such container: nonexistent-xyz",
		"Error: inspecting object: no such object: \"nonexistent-xyz\"",
		"Error: No such object: nonexistent-xyz",
		"Error: nonexistent-xyz: image not known",
		"Error response from daemon: No such image: nonexistent-xyz:latest",
		"Error: no volume with name \"nonexistent-xyz\" found: no such volume",
		"Error response from daemon: get nonexistent-xyz: no such volume",
		"Error: unable to find network with name or ID nonexistent-xyz: network not found",
		"Error response from daemon: network nonexistent-xyz not found\nexit status 1",
	}
	for _, s := range missing {
		if !isNotFound(&CommandError{ExitCode: 1, Stderr: s}) {
			t.Errorf("not recognised as missing: %q", s)
		}
	}
	other := []string{
		"OCI runtime exec failed: exec failed: unable to start container process: exec: \"nope\": executable file not found in $PATH",
		"Error: address already in use",
		"sh: 1: foo: not found",
	}
	for _, s := range other {
		if isNotFound(&CommandError{ExitCode: 126, Stderr: s}) {
			t.Errorf("wrongly taken as missing: %q", s)
		}
	}
	if isNotFound(errors.New("no such container")) || isNotFound(nil) {
		t.Error("only command errors are classified")
	}
}

func TestRunArgs(t *testing.T) {
	tests := []struct {
		name        string
		o           RunOptions
		want        []string
		wantSecrets []string
	}{
		{"minimal", RunOptions{Image: "img"}, []string{"run", "-d", "img"}, nil},
		{"full", RunOptions{
			Name: "c", Image: "img", Cmd: []string{"a", "b"}, Env: []string{"K=V"}, Secrets: []string{"PW=hunter2", "T=a=b"},
			Labels: map[string]string{"z": "1", "a": "2"}, Network: "n", Aliases: []string{"db"},
			Ports: []PortMapping{{HostIP: "127.0.0.1", HostPort: 5433, ContainerPort: 5432}, {ContainerPort: 53, Protocol: "udp"},
				{HostIP: "::1", ContainerPort: 80}, {HostPort: 8080, ContainerPort: 80}},
			Mounts:  []Mount{{Source: "vol", Target: "/data"}, {Source: "/etc/x", Target: "/x", ReadOnly: true}},
			Restart: "always", User: "1000", Remove: true, StopTimeout: 1500 * time.Millisecond,
			Entrypoint: []string{"/bin/sh", "-c"}, ExtraArgs: []string{"--init"},
		}, []string{"run", "-d", "--name", "c", "--label", "a=2", "--label", "z=1", "-e", "K=V", "-e", "PW", "-e", "T", "--network", "n",
			"--network-alias", "db", "-p", "127.0.0.1:5433:5432/tcp", "-p", "53/udp", "-p", "[::1]::80/tcp", "-p", "8080:80/tcp",
			"-v", "vol:/data", "-v", "/etc/x:/x:ro", "--restart", "always", "--user", "1000", "--rm", "--stop-timeout", "2",
			"--entrypoint=/bin/sh", "--init", "img", "-c", "a", "b"}, []string{"PW=hunter2", "T=a=b"}},
		{"cleared entrypoint", RunOptions{Image: "img", Entrypoint: []string{}, Cmd: []string{"x"}},
			[]string{"run", "-d", "--entrypoint=", "img", "x"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, secrets, err := runArgs(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(secrets, tt.wantSecrets) {
				t.Errorf("secrets %q, want %q", secrets, tt.wantSecrets)
			}
		})
	}
	bad := []RunOptions{
		{},
		{Image: "i", Restart: "sometimes"},
		{Image: "i", Aliases: []string{"a"}},
		{Image: "i", Ports: []PortMapping{{HostPort: 1}}},
		{Image: "i", Mounts: []Mount{{Source: "v", Target: "rel"}}},
		{Image: "i", Mounts: []Mount{{Target: "/x"}}},
		{Image: "--privileged"},
		{Image: "i", Secrets: []string{"NOVALUE"}},
		{Image: "i", Secrets: []string{"PG*=x"}},
		{Image: "i", Secrets: []string{"PATH=tcp://x"}},
		{Image: "i", Secrets: []string{"DOCKER_HOST=tcp://x"}},
	}
	for _, o := range bad {
		_, _, err := runArgs(o)
		if exitcode.Of(err) != exitcode.Usage {
			t.Errorf("runArgs(%+v) = %v, want a usage error", o, err)
		}
		if err != nil && strings.Contains(err.Error(), "tcp://x") {
			t.Errorf("runArgs(%+v): the error shows a secret value: %v", o, err)
		}
	}
}

// recordingCLI writes an executable that appends its arguments (one line per run) and the
// variables named in show (NAME=value, or NAME unset) to a log, and returns both paths.
func recordingCLI(t *testing.T, show ...string) (cli, log string) {
	t.Helper()
	dir := t.TempDir()
	cli, log = filepath.Join(dir, "podman"), filepath.Join(dir, "argv.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"argv: $*\" >> " + log + "\n"
	for _, n := range show {
		script += "printf '%s\\n' \"env: " + n + "=${" + n + "-unset}\" >> " + log + "\n"
	}
	if err := os.WriteFile(cli, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return cli, log
}

// TestAttackSecretsStayOffTheCommandLine runs Run and Exec through a CLI that records its argv
// and environment: the password must reach the CLI's environment only, under its name.
func TestAttackSecretsStayOffTheCommandLine(t *testing.T) {
	cli, log := recordingCLI(t, "PW", "PGPASSWORD")
	e, err := New(Podman, WithPath(cli), WithEnviron([]string{"PATH=/usr/bin:/bin"}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// The fake prints no container ID, so Run fails after the CLI ran; only what it saw counts.
	_, _ = e.Run(ctx, RunOptions{Name: "c", Image: "img", Env: []string{"PLAIN=visible"}, Secrets: []string{"PW=hunter2-run"}})
	if _, err := e.Exec(ctx, "c", []string{"psql"}, []string{"PGPASSWORD=hunter2-exec"}, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	want := "argv: run -d --name c -e PLAIN=visible -e PW img\nenv: PW=hunter2-run\nenv: PGPASSWORD=unset\n" +
		"argv: exec -e PGPASSWORD c psql\nenv: PW=unset\nenv: PGPASSWORD=hunter2-exec\n"
	if string(b) != want {
		t.Errorf("the CLI saw\n%s\nwant\n%s", b, want)
	}
}

// TestAttackNamesThatReadAsFlags: an object name from a forged record such as "--all" must
// never reach a CLI, where `rm -f --all` would remove every container.
func TestAttackNamesThatReadAsFlags(t *testing.T) {
	cli, log := recordingCLI(t)
	e, err := New(Podman, WithPath(cli))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]func(name string) error{
		"Remove":           func(n string) error { return e.Remove(ctx, n, true, true) },
		"Stop":             func(n string) error { return e.Stop(ctx, n, time.Second) },
		"Start":            func(n string) error { return e.Start(ctx, n) },
		"InspectContainer": func(n string) error { _, err := e.InspectContainer(ctx, n); return err },
		"Logs":             func(n string) error { _, err := e.Logs(ctx, n, 1); return err },
		"Exec":             func(n string) error { _, err := e.Exec(ctx, n, []string{"true"}, nil, nil); return err },
		"Wait":             func(n string) error { _, err := e.Wait(ctx, n); return err },
		"RemoveNetwork":    func(n string) error { return e.RemoveNetwork(ctx, n) },
		"InspectNetwork":   func(n string) error { _, err := e.InspectNetwork(ctx, n); return err },
		"CreateNetwork":    func(n string) error { return e.CreateNetwork(ctx, n, nil) },
		"RemoveVolume":     func(n string) error { return e.RemoveVolume(ctx, n) },
		"InspectVolume":    func(n string) error { _, err := e.InspectVolume(ctx, n); return err },
		"CreateVolume":     func(n string) error { return e.CreateVolume(ctx, n, nil) },
		"InspectImage":     func(n string) error { _, err := e.InspectImage(ctx, n); return err },
		"RemoveImage":      func(n string) error { return e.RemoveImage(ctx, n, true) },
		"TagImage":         func(n string) error { return e.TagImage(ctx, n, "x:1") },
		"TagImage dst":     func(n string) error { return e.TagImage(ctx, "x:1", n) },
	}
	for name, call := range calls {
		for _, bad := range []string{"--all", "-a", ""} {
			if err := call(bad); exitcode.Of(err) != exitcode.Usage {
				t.Errorf("%s(%q) = %v, want a usage error", name, bad, err)
			}
		}
	}
	if b, err := os.ReadFile(log); err == nil {
		t.Errorf("the CLI ran:\n%s", b)
	}
}

func TestBuildArgs(t *testing.T) {
	o := BuildOptions{ContextDir: "/ctx", Dockerfile: "containers/x/Dockerfile", Tags: []string{"a:1", "a:latest"},
		BuildArgs: map[string]string{"B": "2", "A": "1"}, Labels: map[string]string{"l": "v"}, NoCache: true}
	tests := []struct {
		eng, pull string
		want      []string
	}{
		{Podman, "", []string{"build", "--format", "docker", "--pull=missing", "--force-rm", "--iidfile", "/iid", "-f", "containers/x/Dockerfile",
			"-t", "a:1", "-t", "a:latest", "--build-arg", "A", "--build-arg", "B", "--label", "l=v", "--no-cache", "-"}},
		{Podman, "never", []string{"build", "--format", "docker", "--pull=never", "--force-rm", "--iidfile", "/iid", "-f", "containers/x/Dockerfile",
			"-t", "a:1", "-t", "a:latest", "--build-arg", "A", "--build-arg", "B", "--label", "l=v", "--no-cache", "-"}},
		{Docker, "always", []string{"build", "--pull", "--force-rm", "--iidfile", "/iid", "-f", "containers/x/Dockerfile",
			"-t", "a:1", "-t", "a:latest", "--build-arg", "A", "--build-arg", "B", "--label", "l=v", "--no-cache", "-"}},
		{Docker, "never", []string{"build", "--force-rm", "--iidfile", "/iid", "-f", "containers/x/Dockerfile",
			"-t", "a:1", "-t", "a:latest", "--build-arg", "A", "--build-arg", "B", "--label", "l=v", "--no-cache", "-"}},
	}
	for _, tt := range tests {
		e := &Engine{name: tt.eng}
		o.Pull = tt.pull
		got, err := e.buildArgs(o, "/iid")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s pull=%q:\ngot  %q\nwant %q", tt.eng, tt.pull, got, tt.want)
		}
	}
	e := &Engine{name: Podman}
	for _, bad := range []BuildOptions{{}, {ContextDir: "/c", Pull: "sometimes"}} {
		if _, err := e.buildArgs(bad, "/iid"); exitcode.Of(err) != exitcode.Usage {
			t.Errorf("buildArgs(%+v) = %v, want a usage error", bad, err)
		}
	}
}

func TestTailWriter(t *testing.T) {
	tw := &tailWriter{max: 3}
	for _, chunk := range []string{"l1\nl2", "\nl3\r\nl4\n", "l5"} {
		if _, err := tw.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if got := tw.String(); got != "l3\nl4\nl5" {
		t.Errorf("got %q", got)
	}
}

func TestNewAndDetect(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "podman")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(fake)

	if _, err := New("containerd"); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("unknown engine: %v, want a usage error", err)
	}
	if _, err := Detect("lxc"); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("unknown preference: %v, want a usage error", err)
	}
	e, err := New(Docker, WithPath(fake))
	if err != nil || e.Path() != fake || e.Name() != Docker {
		t.Errorf("WithPath: %v %+v", err, e)
	}
	if _, err := New(Podman, WithPath(filepath.Join(dir, "missing"))); err == nil {
		t.Error("WithPath of a missing file accepted")
	}
	if _, err := New(Podman, WithEnviron([]string{"NOEQUALS"})); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("bad environ: %v", err)
	}
	// The environment's PATH decides which CLI is found.
	e, err = Detect("", WithEnviron([]string{"PATH=" + dir}))
	if err != nil || e.Name() != Podman || e.Path() != fake {
		t.Errorf("Detect with podman on PATH: %v %+v", err, e)
	}
	_, err = New(Docker, WithEnviron([]string{"PATH=" + dir}))
	if err == nil || !strings.Contains(err.Error(), "docker") {
		t.Errorf("missing docker: %v", err)
	}
	_, err = Detect("", WithEnviron([]string{"PATH=" + t.TempDir()}))
	if err == nil || !strings.Contains(err.Error(), "podman") || !strings.Contains(err.Error(), "docker") {
		t.Errorf("Detect with neither: %v", err)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
