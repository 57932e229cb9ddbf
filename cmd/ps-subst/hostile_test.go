package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const knownPassword = "Kn0wn-Pr0ject-Passw0rd"

// secretProject is a project whose environment dev has a known password, and
// a variable that carries it without looking secret by its name.
func secretProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".poststack.yml"), `environment: dev
project:
  name: shop
environments:
  dev:
    postgres:
      database: shop_dev
      user: shop_user
      password: "`+knownPassword+`"
    variables:
      APP_NOTE: "pw=`+knownPassword+`"
`)
	return dir
}

// TestAttackSecretsInProblemsAreMasked puts a secret into every place a
// template can make ps-subst print it: required messages (:? and ?),
// nested defaults and alternate values inside them, YAML mode, -o, --check
// and --list; the password never shows, the exit codes stay as documented.
func TestAttackSecretsInProblemsAreMasked(t *testing.T) {
	dir := secretProject(t)
	writeFile(t, filepath.Join(dir, "out.yaml"), "previous\n")
	tests := []struct {
		name  string
		tmpl  string
		args  []string
		code  int
		shown string // what must appear instead
	}{
		{":?", "a: ${UNDEF:?need ${DB_PASSWORD}}\n", nil, 3, "need ****"},
		{"?", "a: ${UNDEF?need $DB_PASSWORD}\n", nil, 3, "need ****"},
		{"nested default", "a: ${UNDEF:?${X:-${Y:-${POSTSTACK_DATABASE_URL}}}}\n", nil, 3, "UNDEF is missing a value: ****"},
		{"alternate value", "a: ${UNDEF:?${DB_PASSWORD:+pw ${POSTSTACK_DB_PASSWORD}}}\n", nil, 3, "pw ****"},
		{"nested required", "a: ${UNDEF:?${OTHER:-${APP_NOTE}} ${U2?$DB_PASSWORD}}\n", nil, 3, "U2 is missing a value: ****"},
		{"with an invalid one", "a: ${UNDEF:?$DB_PASSWORD} ${\n", nil, 2, "missing a value: ****"},
		{"yaml", "a: ${UNDEF:?need ${DB_PASSWORD}}\n", []string{"--yaml"}, 3, "need ****"},
		{"-o", "a: ${UNDEF:?need ${DB_PASSWORD}}\n", []string{"-o", "out.yaml"}, 3, "need ****"},
		{"--check", "a: $DB_PASSWORD $APP_NOTE ${U:-$DB_PASSWORD}\n", []string{"--check"}, 0, "****"},
		{"--check --json", "a: $APP_NOTE $POSTSTACK_HOST_DATABASE_URL\n", []string{"--check", "--json"}, 0, "****"},
		{"--list --json", "a: ${U:-" + knownPassword + "} ${V:?$DB_PASSWORD}\n", []string{"--list", "--json"}, 0, "****"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--env", "dev"}, tt.args...)
			if tt.name == "--list --json" {
				// --list reads no variables: the password is known from
				// the run's database URL.
				args = append(tt.args, "--database-url", "postgres://u:"+knownPassword+"@h/db")
			}
			r := runIn(t, dir, nil, tt.tmpl, args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, knownPassword) {
				t.Errorf("the password leaked:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout+r.stderr, tt.shown) {
				t.Errorf("want %q in the output:\nstdout:\n%s\nstderr:\n%s", tt.shown, r.stdout, r.stderr)
			}
		})
	}
	if got := readFile(t, filepath.Join(dir, "out.yaml")); got != "previous\n" {
		t.Errorf("-o target changed: %q", got)
	}

	// --show-secrets is the one way to see them.
	r := runIn(t, dir, nil, "${UNDEF:?need ${DB_PASSWORD}}\n", "--env", "dev", "--show-secrets")
	if r.code != 3 || !strings.Contains(r.stderr, "need "+knownPassword) {
		t.Errorf("--show-secrets: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestAttackStandaloneSecretsAreMasked does the same without a project:
// secrets from the process environment, --env-file and --set.
func TestAttackStandaloneSecretsAreMasked(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ci.env"), "DEPLOY_KEY=deploy-key-from-file\n")
	environ := []string{"DB_PASSWORD=env-db-password", "APP_URL=postgres://app:url-password@db/app"}
	tmpl := "${U1:?${DB_PASSWORD}} ${U2?$APP_URL} ${U3:?${X:-$DEPLOY_KEY}} ${U4:?$API_TOKEN}\n"
	r := runIn(t, dir, environ, tmpl, "--env-file", "ci.env", "--set", "API_TOKEN=set-api-token")
	if r.code != 3 || strings.Count(r.stderr, "****") != 4 {
		t.Errorf("exit %d, want 3 with four masked messages; stderr:\n%s", r.code, r.stderr)
	}
	for _, s := range []string{"env-db-password", "url-password", "deploy-key-from-file", "set-api-token"} {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("%s leaked:\n%s", s, r.stderr)
		}
	}
}

// buildBinary builds ps-subst for tests that need a real process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ps-subst")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestAttackInterruptLeavesTargetUntouched sends SIGINT to ps-subst -o
// while it reads: from a pipe that stays open (the read blocks), and from
// a pipe that never stops sending. It must exit 130 within a second, leave
// the target as it was and no temporary file beside it.
func TestAttackInterruptLeavesTargetUntouched(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t)
	for _, flood := range []bool{false, true} {
		name := map[bool]string{false: "blocked read", true: "endless input"}[flood]
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			target := filepath.Join(dir, "out.yaml")
			writeFile(t, target, "previous\n")
			cmd := exec.Command(bin, "--allow-undefined", "-o", target)
			cmd.Dir = dir
			cmd.Env = []string{"NAME=x"}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			defer stdin.Close()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			defer close(stop)
			if flood {
				go func() {
					line := []byte(strings.Repeat("k: ${NAME} ${U:-${V:-d}}\n", 1000))
					for {
						select {
						case <-stop:
							return
						default:
						}
						if _, err := stdin.Write(line); err != nil {
							return
						}
					}
				}()
			} else if _, err := stdin.Write([]byte("a: $NAME\n")); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			sent := time.Now()
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err = <-done:
			case <-time.After(time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("still running a second after SIGINT; stderr: %s", stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 130 {
				t.Fatalf("exit %v after %v, want 130; stderr: %s", err, time.Since(sent), stderr.String())
			}
			if !strings.Contains(stderr.String(), "ps-subst: interrupted") {
				t.Errorf("stderr %q", stderr.String())
			}
			if got := readFile(t, target); got != "previous\n" {
				t.Errorf("target changed: %q", got)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 1 {
				t.Errorf("files left beside the target: %v", entries)
			}
		})
	}
}

// TestAttackYAMLKeyInjectionWarns inserts values that add a key, end a
// scalar or start a comment into a YAML file rendered as text: each gets a
// warning naming FILE:LINE:COL and the variable (never the value), the
// exit code stays 0; a .txt file gets none, and --yaml needs none and keeps
// each value exactly.
func TestAttackYAMLKeyInjectionWarns(t *testing.T) {
	dir := t.TempDir()
	values := map[string]string{"NEWLINE": "x\nadmin: true", "COLON": "a: b", "COMMENT": "v # c"}
	var environ []string
	for k, v := range values {
		environ = append(environ, k+"="+v)
	}
	tmpl := "newline: ${NEWLINE}\ncolon: pre $COLON\ncomment: ${COMMENT:-d}\nsafe: $SAFE\n"
	environ = append(environ, "SAFE=plain-value")
	for _, name := range []string{"pod.yaml", "pod.yml", "notes.txt"} {
		writeFile(t, filepath.Join(dir, name), tmpl)
	}
	for _, name := range []string{"pod.yaml", "pod.yml"} {
		r := runIn(t, dir, environ, "", name)
		want := []string{name + ":1:10: warning: the value of NEWLINE", name + ":2:12: warning: the value of COLON", name + ":3:10: warning: the value of COMMENT"}
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		if r.code != 0 || len(lines) != len(want) {
			t.Fatalf("%s: exit %d, want 0 and %d warnings; stderr:\n%s", name, r.code, len(want), r.stderr)
		}
		for i, w := range want {
			if !strings.HasPrefix(lines[i], w) || !strings.Contains(lines[i], "--yaml") {
				t.Errorf("%s: warning %d = %q, want prefix %q and a --yaml hint", name, i+1, lines[i], w)
			}
		}
		for _, v := range values {
			if strings.Contains(r.stderr, v) {
				t.Errorf("%s: a warning shows the value %q", name, v)
			}
		}
	}
	if r := runIn(t, dir, environ, "", "notes.txt"); r.code != 0 || r.stderr != "" {
		t.Errorf("notes.txt: exit %d stderr %q, want no warning", r.code, r.stderr)
	}
	r := runIn(t, dir, environ, "", "--yaml", "pod.yaml")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("--yaml: exit %d stderr %q", r.code, r.stderr)
	}
	var got map[string]string
	if err := yaml.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("--yaml output does not parse: %v\n%s", err, r.stdout)
	}
	want := map[string]string{"newline": values["NEWLINE"], "colon": "pre " + values["COLON"], "comment": values["COMMENT"], "safe": "plain-value"}
	if len(got) != len(want) {
		t.Errorf("--yaml keys %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("--yaml %s = %q, want %q", k, got[k], v)
		}
	}
}
