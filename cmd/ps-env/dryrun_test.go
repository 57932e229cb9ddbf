package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkProject is a project whose environments have container files: dev a pod init entry
// and a compose deployment, staging (external, by a URL with a password) a pod deployment.
const checkProject = `environment: dev
project: {name: app}
environments:
  dev:
    postgres: {port: 5433, password: "pa55-w0rd-SECRET"}
    init:
      - pod: c/init.yaml
    deployment:
      compose: c/compose.yml
    variables:
      LOG_LEVEL: debug
  staging:
    postgres:
      url: postgres://u:st4g1ng-SECRET@db.example:6000/appdb
    deployment:
      pod: c/app.yaml
`

// The secrets of checkProject, which no output may show unless asked to.
var checkSecrets = []string{"pa55-w0rd-SECRET", "st4g1ng-SECRET"}

func checkFiles() map[string]string {
	return map[string]string{
		"c/init.yaml": `apiVersion: v1
kind: Pod
metadata: {name: init}
spec:
  containers:
    - name: migrate
      image: app:${PSENV_TEST_TAG:-latest}
      env:
        - {name: PASSWORD, value: "${DB_PASSWORD}"}
        - {name: LEVEL, value: "${LOG_LEVEL}"}
`,
		"c/compose.yml": `services:
  web:
    image: nginx
    environment:
      DATABASE_URL: ${POSTSTACK_DATABASE_URL}
`,
		"c/app.yaml": `kind: Pod
spec:
  containers:
    - name: app
      image: app
      env:
        - {name: URL, value: "${POSTSTACK_HOST_DATABASE_URL}"}
`,
		"notes.txt": "host ${DB_HOST} $PSENV_TEST_NOTE\n",
	}
}

// inCheckProject makes a project of content and files (name → content) the working directory.
func inCheckProject(t *testing.T, content string, files map[string]string) string {
	t.Helper()
	dir := filepath.Dir(inProject(t, content))
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// noSecrets fails when out shows a secret of checkProject.
func noSecrets(t *testing.T, what, out string) {
	t.Helper()
	for _, s := range checkSecrets {
		if strings.Contains(out, s) {
			t.Errorf("%s shows the secret %s:\n%s", what, s, out)
		}
	}
}

func TestDryRun(t *testing.T) {
	inCheckProject(t, checkProject, checkFiles())
	dev := "c/init.yaml (init-1, pod)\n" +
		"  VARIABLE        VALUE                SOURCE\n" +
		"  PSENV_TEST_TAG  (default: \"latest\")  default\n" +
		"  DB_PASSWORD     ****                 built-in\n" +
		"  LOG_LEVEL       debug                variables\n" +
		"\n" +
		"c/compose.yml (deploy, compose)\n" +
		"  VARIABLE                VALUE                                                                       SOURCE\n" +
		"  POSTSTACK_DATABASE_URL  postgres://app_dev_user:****@app-dev-postgres:5432/app_dev?sslmode=disable  built-in\n"
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"dry-run"}, 0, dev, ""},
		{[]string{"dry-run", "dev"}, 0, dev, ""},
		{[]string{"dry-run", "--file", "c/compose.yml"}, 0, "c/compose.yml (deploy, compose)\n" +
			"  VARIABLE                VALUE                                                                       SOURCE\n" +
			"  POSTSTACK_DATABASE_URL  postgres://app_dev_user:****@app-dev-postgres:5432/app_dev?sslmode=disable  built-in\n", ""},
		{[]string{"dry-run", "dev", "--file", "c/init.yaml", "--set", "PSENV_TEST_TAG=1.2"}, 0, "c/init.yaml (init-1, pod)\n" +
			"  VARIABLE        VALUE  SOURCE\n" +
			"  PSENV_TEST_TAG  1.2    --set\n" +
			"  DB_PASSWORD     ****   built-in\n" +
			"  LOG_LEVEL       debug  variables\n", ""},
		{[]string{"dry-run", "staging"}, 0, "c/app.yaml (deploy, pod)\n" +
			"  VARIABLE                     VALUE                                    SOURCE\n" +
			"  POSTSTACK_HOST_DATABASE_URL  postgres://u:****@db.example:6000/appdb  built-in\n", ""},
		// Another file of the project, as text: undefined is exit 3 after the report.
		{[]string{"dry-run", "--file", "notes.txt"}, 3, "notes.txt\n" +
			"  VARIABLE         VALUE             SOURCE\n" +
			"  DB_HOST          app-dev-postgres  built-in\n" +
			"  PSENV_TEST_NOTE  UNDEFINED         notes.txt:1:17\n",
			"ps-env: 1 undefined variable: PSENV_TEST_NOTE\n"},
		{[]string{"dry-run", "--file", "nope.yaml"}, 2, "", "ps-env: --file nope.yaml: no such file or directory\n"},
		{[]string{"dry-run", "nope"}, 2, "", "ps-env: .poststack.yml:3:1: environment \"nope\" is not defined (known: dev, staging)\n"},
		{[]string{"dry-run", "dev", "staging"}, 2, "", "ps-env: unexpected argument \"staging\" (see 'ps-env dry-run --help')\n"},
		{[]string{"dry-run", "--set", "DB_PASSWORD=x"}, 2, "", "ps-env: --set DB_PASSWORD: DB_PASSWORD is built-in and cannot be overridden\n"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runEnvCmd(t, tt.args...)
		if code != tt.code || stdout != tt.stdout || stderr != tt.stderr {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit %d\nstdout %q\nstderr %q", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
		noSecrets(t, strings.Join(tt.args, " "), stdout+stderr)
	}

	// --show-secrets shows them, on stdout only.
	code, stdout, stderr := runEnvCmd(t, "dry-run", "--show-secrets")
	if code != 0 || !strings.Contains(stdout, "  DB_PASSWORD     pa55-w0rd-SECRET     built-in\n") ||
		!strings.Contains(stdout, "postgres://app_dev_user:pa55-w0rd-SECRET@app-dev-postgres:5432/app_dev?sslmode=disable") {
		t.Errorf("dry-run --show-secrets: exit %d\n%s%s", code, stdout, stderr)
	}

	code, stdout, stderr = runEnvCmd(t, "--json", "dry-run", "--file", "c/init.yaml")
	var got dryRunReport
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("--json dry-run: exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	noSecrets(t, "--json dry-run", stdout)
	if len(got.Files) != 1 || got.Files[0].File != "c/init.yaml" || got.Files[0].Kind != "pod" || got.Files[0].Unit != "init-1" || len(got.Files[0].Variables) != 3 {
		t.Fatalf("--json dry-run: %s", stdout)
	}
	v := got.Files[0].Variables
	if v[0].Name != "PSENV_TEST_TAG" || v[0].Status != "default" || v[0].Default != "latest" ||
		v[1].Name != "DB_PASSWORD" || v[1].Value != "****" || !v[1].Secret || v[1].Source != "built-in" || strings.Join(v[1].Where, " ") != "c/init.yaml:9:36" ||
		v[2].Name != "LOG_LEVEL" || v[2].Value != "debug" || v[2].Source != "variables" {
		t.Errorf("--json dry-run: %s", stdout)
	}
}

// TestDryRunFails: a deployment with an undefined variable is exit 3 naming every place; a
// pod file that is not YAML and an invalid template are exit 2 with nothing on stdout.
func TestDryRunFails(t *testing.T) {
	files := checkFiles()
	files["c/app.yaml"] = "kind: Pod\nspec:\n  containers:\n    - name: ${PSENV_TEST_MISSING}\n      image: ${PSENV_TEST_MISSING}:${DB_PASSWORD}\n"
	files["c/bad.yaml"] = "kind: [Pod\n"
	files["c/invalid.yaml"] = "kind: Pod\nname: ${DB_PASSWORD!}\n"
	inCheckProject(t, checkProject, files)

	code, stdout, stderr := runEnvCmd(t, "dry-run", "staging")
	want := "c/app.yaml (deploy, pod)\n" +
		"  VARIABLE            VALUE      SOURCE\n" +
		"  PSENV_TEST_MISSING  UNDEFINED  c/app.yaml:4:13 c/app.yaml:5:14\n" +
		"  DB_PASSWORD         ****       built-in\n"
	if code != 3 || stdout != want || stderr != "ps-env: 1 undefined variable: PSENV_TEST_MISSING\n" {
		t.Errorf("undefined: exit %d\nstdout %q\nstderr %q\nwant\n%q", code, stdout, stderr, want)
	}
	code, stdout, stderr = runEnvCmd(t, "dry-run", "--file", "c/bad.yaml")
	if code != 2 || stdout != "" || stderr != "ps-env: c/bad.yaml:2: yaml: did not find expected ',' or ']'\n" {
		t.Errorf("not YAML: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = runEnvCmd(t, "dry-run", "--file", "c/invalid.yaml")
	if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "c/invalid.yaml:2:7: invalid template: ") || !strings.HasSuffix(stderr, "\nps-env: 1 problem in templates\n") {
		t.Errorf("invalid template: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}
