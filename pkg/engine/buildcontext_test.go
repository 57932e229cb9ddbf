package engine

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// hostileContext writes a project whose .dockerignore tries to bring back the local secrets,
// with a link to a file outside, a link to /dev/zero and a FIFO.
func hostileContext(t *testing.T) (dir, outside string) {
	t.Helper()
	dir = t.TempDir()
	outside = filepath.Join(t.TempDir(), "outside-secret")
	if err := os.WriteFile(outside, []byte("outside-secret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		".dockerignore":             "*.tmp\n!.env\n!.poststack\n!.poststack/x.password\n!logs\n!sub/.env.local\n",
		".env":                      "DB_PASSWORD=hunter2\n",
		".env.prod":                 "DB_PASSWORD=hunter3\n",
		".poststack/x.password":     "hunter4\n",
		"logs/poststack.log":        "{}\n",
		"sub/.env.local":            "K=v\n",
		"sub/.poststack/y.password": "hunter5\n",
		"var/log/build.log":         "build log\n",
		"src/main.go":               "package main\n",
		"scratch.tmp":               "tmp\n",
		".poststack.yml":            "project:\n  name: x\n",
		"containers/app/Dockerfile": "FROM scratch\nCOPY . /app\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"leak": outside, "zero": "/dev/zero", "env-link": ".env"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, outside
}

var hostileExclude = []string{"**/.poststack", "**/.env*", "logs", "var/log"}

func TestHostileContextLeavesOutSecretsWhateverTheIgnoreFileSays(t *testing.T) {
	dir, _ := hostileContext(t)
	var got []string
	err := WalkContext(dir, hostileExclude, func(rel string, info fs.FileInfo) error {
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{".env", ".env.prod", ".poststack", ".poststack/x.password", "logs", "logs/poststack.log",
		"sub/.env.local", "sub/.poststack", "sub/.poststack/y.password", "var/log", "var/log/build.log", "scratch.tmp", "pipe"} {
		if slices.Contains(got, secret) {
			t.Errorf("%s is in the context: %q", secret, got)
		}
	}
	for _, want := range []string{".dockerignore", ".poststack.yml", "containers/app/Dockerfile", "src/main.go", "sub", "var",
		"leak", "zero", "env-link"} {
		if !slices.Contains(got, want) {
			t.Errorf("%s is missing from the context: %q", want, got)
		}
	}
}

func TestHostileContextTarHoldsLinksNotTheirTargets(t *testing.T) {
	dir, _ := hostileContext(t)
	var buf bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- writeContext(&buf, dir, hostileExclude, []string{"containers/app/Dockerfile", ".dockerignore"})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("writing the context blocked (a FIFO or /dev/zero was opened)")
	}
	tr := tar.NewReader(&buf)
	entries := map[string]*tar.Header{}
	var content bytes.Buffer
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := entries[h.Name]; dup {
			t.Errorf("%s is twice in the stream", h.Name)
		}
		entries[h.Name] = h
		io.Copy(&content, tr)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" {
			t.Errorf("%s owned by %d:%d %q", h.Name, h.Uid, h.Gid, h.Uname)
		}
	}
	for name, target := range map[string]string{"leak": "", "zero": "/dev/zero", "env-link": ".env"} {
		h := entries[name]
		if h == nil || h.Typeflag != tar.TypeSymlink || target != "" && h.Linkname != target {
			t.Errorf("%s: %+v, want a symbolic link to %q", name, h, target)
		}
	}
	if h := entries["src/main.go"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != int64(len("package main\n")) {
		t.Errorf("src/main.go: %+v", h)
	}
	if h := entries["src/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Errorf("src/: %+v", h)
	}
	for _, secret := range []string{"hunter2", "hunter3", "hunter4", "hunter5", "outside-secret-value"} {
		if strings.Contains(content.String(), secret) {
			t.Errorf("the context stream holds %q", secret)
		}
	}
}

func TestHostileContextRefusesIgnoreFileAndDockerfileOutside(t *testing.T) {
	dir, outside := hostileContext(t)
	os.Remove(filepath.Join(dir, ".dockerignore"))
	if err := os.Symlink(outside, filepath.Join(dir, ".dockerignore")); err != nil {
		t.Fatal(err)
	}
	err := WalkContext(dir, hostileExclude, func(string, fs.FileInfo) error { return nil })
	var se *safefile.Error
	if !errors.As(err, &se) || exitcode.Of(err) != exitcode.Usage || strings.Contains(err.Error(), "outside-secret-value") {
		t.Errorf("a .dockerignore linking outside: %v (exit %d), want a *safefile.Error, exit 2", err, exitcode.Of(err))
	}

	os.Remove(filepath.Join(dir, ".dockerignore"))
	df := filepath.Join(dir, "containers/app/Dockerfile")
	os.Remove(df)
	if err := os.Symlink(outside, df); err != nil {
		t.Fatal(err)
	}
	err = writeContext(io.Discard, dir, hostileExclude, []string{"containers/app/Dockerfile"})
	if !errors.As(err, &se) || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "outside the project directory") {
		t.Errorf("a Dockerfile linking outside: %v, want it refused", err)
	}
	if _, err := newContextFilter(dir, []string{"!.env"}); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("a re-including exclude pattern: %v, want a usage error", err)
	}
}

func TestBuildArgsByName(t *testing.T) {
	tests := map[string]bool{
		"TOKEN": true, "DB_PASSWORD": true, "PG_MAJOR": true, "_x1": true, "GOPROXY": true,
		"PATH": false, "HOME": false, "TMPDIR": false, "DOCKER_HOST": false, "DOCKER_CONFIG": false,
		"CONTAINERS_CONF": false, "XDG_RUNTIME_DIR": false, "LD_PRELOAD": false, "HTTP_PROXY": false,
		"https_proxy": false, "SSL_CERT_FILE": false, "LC_ALL": false, "LANG": false, "OTEL_EXPORTER_OTLP_ENDPOINT": false,
		"BUILDAH_ISOLATION": false, "my-arg": false, "1X": false, "A.B": false,
	}
	for name, want := range tests {
		if got := passableByName(name); got != want {
			t.Errorf("passableByName(%q) = %v, want %v", name, got, want)
		}
	}
	o := BuildOptions{ContextDir: "/ctx", BuildArgs: map[string]string{"TOKEN": "s3cret", "HTTP_PROXY": "http://proxy:3128"}}
	args, err := (&Engine{name: Docker}).buildArgs(o, "/iid")
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	if strings.Contains(line, "s3cret") || !strings.Contains(line, "--build-arg TOKEN ") || !strings.Contains(line, "--build-arg HTTP_PROXY=http://proxy:3128") {
		t.Errorf("build command line %q", line)
	}
	if env := buildArgEnv(o); !slices.Equal(env, []string{"TOKEN=s3cret"}) {
		t.Errorf("build environment %q", env)
	}
	if _, err := dockerfileInContext(BuildOptions{ContextDir: "/ctx", Dockerfile: "/elsewhere/Dockerfile"}); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("a Dockerfile outside the context: %v, want a usage error", err)
	}
}
