package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/render"
)

type result struct {
	code           int
	stdout, stderr string
}

// runIn runs ps-subst in dir with the given process environment.
func runIn(t *testing.T, dir string, environ []string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{Environ: environ, Dir: dir, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb}
	code := runEnv(context.Background(), args, env)
	return result{code, out.String(), errb.String()}
}

// TestBrokenTemplates asserts the exact report for every broken template
// in testdata/broken: each problem at FILE:LINE:COL, the exit code, and
// that nothing reached standard output.
func TestBrokenTemplates(t *testing.T) {
	const undef = "; set them, give defaults (${NAME:-default}) or use --allow-undefined"
	tests := []struct {
		file string
		code int
		want []string
	}{
		{"undefined-plain.tmpl", 3, []string{"undefined-plain.tmpl:3:9: undefined variable APP_NAME"}},
		{"undefined-after-multibyte.tmpl", 3, []string{
			"undefined-after-multibyte.tmpl:2:9: undefined variable REGISTRY",
			"undefined-after-multibyte.tmpl:2:25: undefined variable TAG"}},
		{"required-message.tmpl", 3, []string{"required-message.tmpl:1:8: required variable DEPLOY_TOKEN is missing a value: set DEPLOY_TOKEN to the deploy token"}},
		{"required-empty.tmpl", 3, []string{"required-empty.tmpl:2:9: required variable EMPTY is missing a value"}},
		{"invalid-unclosed.tmpl", 2, []string{"invalid-unclosed.tmpl:1:6: invalid template: "}},
		{"invalid-empty-braces.tmpl", 2, []string{"invalid-empty-braces.tmpl:3:8: invalid template: ${ is not followed by a variable name"}},
		{"invalid-digit-name.tmpl", 2, []string{"invalid-digit-name.tmpl:1:4: invalid template: ${ is not followed by a variable name"}},
		{"invalid-operator.tmpl", 2, []string{"invalid-operator.tmpl:1:4: invalid template: ${PORT: is not followed by -, +, or ?"}},
		{"undefined-in-default.tmpl", 3, []string{"undefined-in-default.tmpl:1:27: undefined variable DB_HOSTNAME"}},
		{"several-on-a-line.tmpl", 3, []string{
			"several-on-a-line.tmpl:1:6: undefined variable A",
			"several-on-a-line.tmpl:1:9: undefined variable B",
			"several-on-a-line.tmpl:1:12: undefined variable C"}},
		{"crlf.tmpl", 3, []string{"crlf.tmpl:2:9: undefined variable MISSING"}},
		{"yaml-undefined-quoted-and-block.yaml", 3, []string{
			"yaml-undefined-quoted-and-block.yaml:3:20: undefined variable WHO",
			"yaml-undefined-quoted-and-block.yaml:7:11: undefined variable BLOCKVAR"}},
		{"yaml-syntax.yaml", 2, []string{"ps-subst: yaml-syntax.yaml:2: yaml: did not find expected ',' or ']'"}},
	}
	dir := filepath.Join("testdata", "broken")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(tests) {
		t.Fatalf("testdata/broken has %d files, the table %d: keep them in step", len(entries), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			args := []string{tt.file}
			if strings.HasSuffix(tt.file, ".yaml") {
				args = append([]string{"--yaml"}, args...)
			}
			r := runIn(t, dir, []string{"EMPTY="}, "", args...)
			if r.code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout must stay empty on failure, got %q", r.stdout)
			}
			lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
			for i, w := range tt.want {
				if i >= len(lines) || !strings.HasPrefix(lines[i], w) {
					t.Fatalf("stderr line %d: want prefix %q; stderr:\n%s", i+1, w, r.stderr)
				}
			}
			if strings.HasPrefix(tt.want[0], "ps-subst:") {
				return
			}
			summary := lines[len(lines)-1]
			wantSummary := fmt.Sprintf("ps-subst: %d problems", len(tt.want))
			if len(tt.want) == 1 {
				wantSummary = "ps-subst: 1 problem"
			}
			wantSummary += ", nothing was written"
			if tt.code == 3 {
				wantSummary += undef
			}
			if summary != wantSummary || len(lines) != len(tt.want)+1 {
				t.Errorf("want %d problem lines and the summary %q; stderr:\n%s", len(tt.want), wantSummary, r.stderr)
			}
		})
	}
}

func TestSubstitutes(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.env"), "FROM_FILE=file\nBOTH=file\n")
	tests := []struct {
		name    string
		environ []string
		stdin   string
		args    []string
		want    string
		code    int
	}{
		{"process env", []string{"NAME=world"}, "hello $NAME ${NAME}!\n", nil, "hello world world!\n", 0},
		{"defaults and escapes", nil, "${A:-x} ${A-y} ${A:+z} $$A $1 $\n", nil, "x y  $A $1 $\n", 0},
		{"env file below process env", []string{"BOTH=env"}, "$FROM_FILE $BOTH\n", []string{"--env-file", "a.env"}, "file env\n", 0},
		{"--set wins", []string{"BOTH=env"}, "$BOTH\n", []string{"--env-file", "a.env", "--set", "BOTH=set=x"}, "set=x\n", 0},
		{"allow undefined", nil, "[$NOPE]\n", []string{"--allow-undefined"}, "[]\n", 0},
		{"stdin as -", []string{"X=1"}, "$X", []string{"-"}, "1", 0},
		{"no trailing newline kept", []string{"X=1"}, "a\n$X", nil, "a\n1", 0},
		{"bad --set", nil, "", []string{"--set", "1A=b"}, "", 2},
		{"missing file", nil, "", []string{"nope.txt"}, "", 2},
		{"stdin twice", nil, "", []string{"-", "-"}, "", 2},
		{"unknown flag", nil, "", []string{"--frobnicate"}, "", 2},
		{"list with check", nil, "", []string{"--list", "--check"}, "", 2},
		{"missing env file", nil, "x", []string{"--env-file", "missing.env"}, "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runIn(t, dir, tt.environ, tt.stdin, tt.args...)
			if r.code != tt.code || r.stdout != tt.want {
				t.Errorf("exit %d stdout %q, want exit %d stdout %q; stderr: %s", r.code, r.stdout, tt.code, tt.want, r.stderr)
			}
			if tt.code != 0 && !strings.HasPrefix(r.stderr, "ps-subst: ") {
				t.Errorf("a failure must explain itself on stderr as 'ps-subst: …', got %q", r.stderr)
			}
		})
	}
}

func TestOutputIsAtomic(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out.yaml")
	writeFile(t, out, "previous\n")
	writeFile(t, filepath.Join(dir, "bad.tmpl"), "a: $DEFINED\nb: $UNDEFINED\n")
	writeFile(t, filepath.Join(dir, "good.tmpl"), "a: $DEFINED\n")

	r := runIn(t, dir, []string{"DEFINED=1"}, "", "-o", "out.yaml", "bad.tmpl")
	if r.code != 3 || !strings.Contains(r.stderr, "out.yaml was left untouched") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if got := readFile(t, out); got != "previous\n" {
		t.Fatalf("target changed on failure: %q", got)
	}
	r = runIn(t, dir, []string{"DEFINED=1"}, "", "--output", "out.yaml", "good.tmpl")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := readFile(t, out); got != "a: 1\n" {
		t.Fatalf("output %q", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestYAML(t *testing.T) {
	tmpl := "# keep me\nmetadata:\n  name: ${NAME}\nspec:\n  port: ${PORT}\n  cmd: ${CMD}\n"
	r := runIn(t, t.TempDir(), []string{"NAME=app", "PORT=8080", `CMD=echo "a: b # c"`}, tmpl, "--yaml")
	want := "# keep me\nmetadata:\n  name: app\nspec:\n  port: 8080\n  cmd: 'echo \"a: b # c\"'\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d, stdout:\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
}

func TestListAndCheck(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "t.yaml"), "a: ${A}\nb: ${B:-dflt}\nc: ${API_TOKEN}\nd: $A ${Z:?need Z}\n")

	r := runIn(t, dir, nil, "", "--list", "--json", "t.yaml")
	var list []render.Variable
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	got := map[string]render.Variable{}
	for _, v := range list {
		got[v.Name] = v
	}
	if len(list) != 4 || !got["A"].Required || got["B"].Required || got["B"].Default != "dflt" ||
		strings.Join(got["A"].Where, " ") != "t.yaml:1:4 t.yaml:4:4" || !got["Z"].Required {
		t.Errorf("list: %+v", list)
	}

	r = runIn(t, dir, []string{"A=x", "API_TOKEN=s3cr3t-value"}, "", "--check", "t.yaml")
	if r.code != 3 || strings.Contains(r.stdout, "s3cr3t-value") || !strings.Contains(r.stdout, "API_TOKEN") {
		t.Fatalf("check must exit 3 for Z and mask the token: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"A ", "set", "environment", "dflt", "UNDEFINED", "****"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stderr, "1 undefined variable: Z") {
		t.Errorf("stderr: %s", r.stderr)
	}

	// The flags after the file mean the same; after "--" a dashed name is a file.
	after := runIn(t, dir, []string{"A=x", "API_TOKEN=s3cr3t-value"}, "", "t.yaml", "--check")
	if after.code != r.code || after.stdout != r.stdout || after.stderr != r.stderr {
		t.Errorf("t.yaml --check: exit %d\n%s%s\nwant what --check t.yaml printed", after.code, after.stdout, after.stderr)
	}
	writeFile(t, filepath.Join(dir, "--check"), "just ${A}\n")
	if r := runIn(t, dir, []string{"A=x"}, "", "--", "--check"); r.code != 0 || r.stdout != "just x\n" {
		t.Errorf("-- --check: exit %d, stdout %q, stderr %q; want the file named --check substituted", r.code, r.stdout, r.stderr)
	}

	r = runIn(t, dir, []string{"A=x", "API_TOKEN=s3cr3t-value", "Z=1"}, "", "--check", "--json", "--show-secrets", "t.yaml")
	var rs []render.Resolved
	if err := json.Unmarshal([]byte(r.stdout), &rs); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v: %s %s", r.code, err, r.stdout, r.stderr)
	}
	if len(rs) != 4 || rs[2].Name != "API_TOKEN" || rs[2].Value != "s3cr3t-value" || !rs[2].Secret || rs[1].Status != render.Defaulted {
		t.Errorf("check json: %+v", rs)
	}
}

func TestProjectEnvironment(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".poststack.yml"), `environment: dev
project:
  name: shop
environments:
  dev:
    postgres:
      database: shop_dev
      port: 5433
      user: shop_user
      password: "p@ss:w/rd"
    variables:
      APP_PORT: 8080
`)
	tmpl := "$POSTSTACK_PROJECT $POSTSTACK_ENVIRONMENT $DB_HOST $DB_PORT $APP_PORT\n$POSTSTACK_HOST_DATABASE_URL\n"
	r := runIn(t, dir, []string{"APP_PORT=9090"}, tmpl, "--env", "dev")
	want := "shop dev shop-dev-postgres 5432 9090\npostgres://shop_user:p%40ss%3Aw%2Frd@127.0.0.1:5433/shop_dev?sslmode=disable\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("exit %d\n got %q\nwant %q\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	r = runIn(t, dir, nil, "x", "--env", "prod")
	if r.code != 2 || !strings.Contains(r.stderr, "prod") {
		t.Errorf("unknown environment: exit %d stderr %q", r.code, r.stderr)
	}
	r = runIn(t, dir, nil, "x", "--env", "dev", "--set", "DB_HOST=elsewhere")
	if r.code != 2 || !strings.Contains(r.stderr, "DB_HOST") {
		t.Errorf("--set of a built-in: exit %d stderr %q", r.code, r.stderr)
	}
	r = runIn(t, dir, nil, "$DB_PASSWORD\n", "--env", "dev", "--check")
	if strings.Contains(r.stdout, "p@ss") {
		t.Errorf("password shown by --check: %s", r.stdout)
	}
}

func TestHelpAndVersion(t *testing.T) {
	r := runIn(t, t.TempDir(), nil, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "ps-subst --yaml < pod.yaml.tmpl | podman kube play -") {
		t.Errorf("help: exit %d\n%s", r.code, r.stdout)
	}
	r = runIn(t, t.TempDir(), nil, "", "--version")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ps-subst ") {
		t.Errorf("version: exit %d %q", r.code, r.stdout)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestProjectFileErrorsNameTheFileAsGiven(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "p.yml"), "project:\n  name: x\nenvironments:\n  dev:\n    postgres:\n      database: d\n      user: u\n      port: abc\n")
	r := runIn(t, dir, nil, "x", "--project-file", "p.yml", "--env", "dev")
	if r.code != 2 || r.stderr != "ps-subst: p.yml:8:13: port must be a number 1–65535 or auto, got \"abc\"\n" {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
	r = runIn(t, dir, nil, "x", "--env", "dev")
	if r.code != 2 || r.stderr != "ps-subst: --env dev reads the project file .poststack.yml: no such file or directory\n" {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}
}
