package images

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

func TestBuiltin(t *testing.T) {
	want := []Definition{
		{Name: "base-debian", Ref: "poststack/base-debian:latest", Dir: "defs/base-debian"},
		{Name: "postgres", Ref: "poststack/postgres:latest", Dir: "defs/postgres"},
	}
	got := Builtin()
	if len(got) != len(want) {
		t.Fatalf("Builtin() = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Builtin()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	got[0].Name = "changed"
	if Builtin()[0].Name != "base-debian" {
		t.Error("modifying the result of Builtin changed the next call's result")
	}
}

// TestBuiltinDependencyOrder checks that every definition's default BASE_IMAGE is either
// external or a built-in that comes earlier, so that building in Builtin order never needs a
// registry for poststack's own images.
func TestBuiltinDependencyOrder(t *testing.T) {
	seen := map[string]bool{}
	refs := map[string]bool{}
	for _, d := range Builtin() {
		refs[d.Ref] = true
	}
	for _, d := range Builtin() {
		base := defaultArg(t, d, "BASE_IMAGE")
		if base == "" {
			t.Errorf("%s: no ARG BASE_IMAGE=<default> in its Dockerfile", d.Name)
		}
		if refs[base] && !seen[base] {
			t.Errorf("%s is built FROM %s, which Builtin lists later", d.Name, base)
		}
		seen[d.Ref] = true
	}
	if got := defaultArg(t, mustLookup(t, "postgres"), "BASE_IMAGE"); got != mustLookup(t, "base-debian").Ref {
		t.Errorf("postgres BASE_IMAGE default = %q, want base-debian's ref", got)
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		name   string
		wantOK bool
		ref    string
	}{
		{"postgres", true, "poststack/postgres:latest"},
		{"base-debian", true, "poststack/base-debian:latest"},
		{"Postgres", false, ""},
		{"", false, ""},
	}
	for _, tc := range tests {
		d, ok := Lookup(tc.name)
		if ok != tc.wantOK || d.Ref != tc.ref {
			t.Errorf("Lookup(%q) = %+v, %v; want ref %q, %v", tc.name, d, ok, tc.ref, tc.wantOK)
		}
	}
}

// TestDockerfiles checks what the engines only report at build time, or never: every COPY/ADD
// source exists in the definition, and the instructions the images' contract rests on are there.
func TestDockerfiles(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"base-debian", []string{
			"ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim",
			"FROM ${BASE_IMAGE}",
			"--no-install-recommends ca-certificates curl gettext-base tini",
			"rm -rf /var/lib/apt/lists/*",
			"useradd --uid 10001",
			`ENTRYPOINT ["tini", "--"]`,
			"org.opencontainers.image.source=",
		}},
		{"postgres", []string{
			"ARG BASE_IMAGE=poststack/base-debian:latest",
			"FROM ${BASE_IMAGE}",
			"ARG PG_MAJOR=15",
			`--no-install-recommends "postgresql-${PG_MAJOR}"`,
			"PATH=/usr/lib/postgresql/${PG_MAJOR}/bin:$PATH",
			"PGDATA=/var/lib/postgresql/data",
			"VOLUME /var/lib/postgresql/data",
			"EXPOSE 5432",
			"STOPSIGNAL SIGINT",
			"HEALTHCHECK ",
			"pg_isready",
			`ENTRYPOINT ["docker-entrypoint.sh"]`,
			`CMD ["postgres"]`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := mustLookup(t, tc.name)
			data, err := fs.ReadFile(FS(), path.Join(d.Dir, "Dockerfile"))
			if err != nil {
				t.Fatal(err)
			}
			text := string(data)
			for _, w := range tc.want {
				if !strings.Contains(text, w) {
					t.Errorf("Dockerfile lacks %q", w)
				}
			}
			runs := 0
			for _, ins := range instructions(text) {
				fields := strings.Fields(ins)
				switch strings.ToUpper(fields[0]) {
				case "RUN":
					runs++
				case "COPY", "ADD":
					for _, src := range fields[1 : len(fields)-1] {
						if strings.HasPrefix(src, "--") {
							continue
						}
						if _, err := fs.Stat(FS(), path.Join(d.Dir, src)); err != nil {
							t.Errorf("%s source %s is not in the definition: %v", fields[0], src, err)
						}
					}
				}
			}
			// A single RUN keeps cached rebuilds fast and the image's layers few.
			if runs != 1 {
				t.Errorf("Dockerfile has %d RUN instructions, want 1", runs)
			}
		})
	}
}

func TestWriteContext(t *testing.T) {
	for _, d := range Builtin() {
		t.Run(d.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "ctx", "nested")
			if err := WriteContext(d, dir); err != nil {
				t.Fatal(err)
			}
			n := 0
			err := fs.WalkDir(FS(), d.Dir, func(name string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				n++
				rel := strings.TrimPrefix(name, d.Dir+"/")
				want, err := fs.ReadFile(FS(), name)
				if err != nil {
					return err
				}
				target := filepath.Join(dir, filepath.FromSlash(rel))
				got, err := os.ReadFile(target)
				if err != nil {
					t.Errorf("%s was not written: %v", rel, err)
					return nil
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the embedded file", rel)
				}
				info, err := os.Stat(target)
				if err != nil {
					return err
				}
				if info.Mode().Perm() != fileMode(rel) {
					t.Errorf("%s has mode %v, want %v", rel, info.Mode().Perm(), fileMode(rel))
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatal("the definition has no files")
			}
		})
	}
}

func TestWriteContextEntrypointExecutable(t *testing.T) {
	dir := t.TempDir()
	ep := filepath.Join(dir, "docker-entrypoint.sh")
	// A stale copy without the executable bit must not survive a rewrite: the image's
	// ENTRYPOINT would then fail with "permission denied".
	if err := os.WriteFile(ep, []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteContext(mustLookup(t, "postgres"), dir); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(ep)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o755 {
		t.Errorf("entrypoint mode = %v, want 0755", info.Mode().Perm())
	}
	data, err := os.ReadFile(ep)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("#!")) {
		t.Errorf("entrypoint was not rewritten: starts with %q", data[:min(len(data), 10)])
	}
}

func TestWriteContextErrors(t *testing.T) {
	tests := []struct {
		name string
		def  Definition
		want string
	}{
		{"empty dir", Definition{Name: "x"}, "invalid definition directory"},
		{"escaping dir", Definition{Name: "x", Dir: "../defs"}, "invalid definition directory"},
		{"missing dir", Definition{Name: "x", Dir: "defs/nope"}, "no Dockerfile"},
		{"no Dockerfile", Definition{Name: "x", Dir: "defs"}, "no Dockerfile"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "out")
			err := WriteContext(tc.def, dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WriteContext = %v, want an error containing %q", err, tc.want)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("a failed WriteContext created %s", dir)
			}
		})
	}
	t.Run("unwritable target", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteContext(mustLookup(t, "postgres"), file); err == nil {
			t.Fatal("WriteContext into a regular file succeeded")
		}
	})
}

func TestFileMode(t *testing.T) {
	tests := []struct {
		name string
		want fs.FileMode
	}{
		{"docker-entrypoint.sh", 0o755},
		{"scripts/init.sh", 0o755},
		{"Dockerfile", 0o644},
		{"postgresql.conf", 0o644},
		{"sh", 0o644},
		{"notes.sh.txt", 0o644},
	}
	for _, tc := range tests {
		if got := fileMode(tc.name); got != tc.want {
			t.Errorf("fileMode(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestEntrypointSyntax catches a shell syntax error before an image build would ship it; the
// behaviour is tested against real engines in e2e/pgimage_test.go.
func TestEntrypointSyntax(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash is not installed")
	}
	data, err := fs.ReadFile(FS(), "defs/postgres/docker-entrypoint.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "-n")
	cmd.Stdin = bytes.NewReader(data)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bash -n docker-entrypoint.sh: %v\n%s", err, out)
	}
	if sc, err := exec.LookPath("shellcheck"); err == nil {
		cmd := exec.Command(sc, "--shell=bash", "-")
		cmd.Stdin = bytes.NewReader(data)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck docker-entrypoint.sh: %v\n%s", err, out)
		}
	}
}

func mustLookup(t *testing.T, name string) Definition {
	t.Helper()
	d, ok := Lookup(name)
	if !ok {
		t.Fatalf("no built-in image %q", name)
	}
	return d
}

// defaultArg returns the default of `ARG name=default` in d's Dockerfile.
func defaultArg(t *testing.T, d Definition, name string) string {
	t.Helper()
	data, err := fs.ReadFile(FS(), path.Join(d.Dir, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ins := range instructions(string(data)) {
		if v, ok := strings.CutPrefix(ins, "ARG "+name+"="); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// instructions joins continuation lines and drops comments: one Dockerfile instruction each.
func instructions(dockerfile string) []string {
	var out []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(dockerfile))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	return out
}
