package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	files := checkFiles()
	files[".env"] = "PSENV_TEST_DOTENV=from-dotenv\nAPI_TOKEN=t0ken-SECRET\n"
	inCheckProject(t, checkProject, files)
	checkSecrets := append(checkSecrets, "t0ken-SECRET")
	dev := "project      app\n" +
		"environment  dev (current)\n" +
		"postgres:\n" +
		"  database       app_dev\n" +
		"  user           app_dev_user\n" +
		"  password       ****\n" +
		"  port           5433\n" +
		"  bind           127.0.0.1\n" +
		"  image          poststack/postgres:latest\n" +
		"  url            postgres://app_dev_user:****@127.0.0.1:5433/app_dev?sslmode=disable\n" +
		"  container url  postgres://app_dev_user:****@app-dev-postgres:5432/app_dev?sslmode=disable\n" +
		"init:\n" +
		"  init-1  pod  c/init.yaml\n" +
		"deployment:\n" +
		"  deploy  compose  c/compose.yml\n" +
		"variables:\n"
	code, stdout, stderr := runEnvCmd(t, "config", "--set", "PSENV_TEST_SET=x")
	if code != 0 || !strings.HasPrefix(stdout, dev) {
		t.Fatalf("config: exit %d\n%s\nwant it to start\n%s\n%s", code, stdout, dev, stderr)
	}
	for _, line := range []string{
		"  POSTSTACK_HOST_DATABASE_URL  postgres://app_dev_user:****@127.0.0.1:5433/app_dev?sslmode=disable         built-in\n",
		"  DB_PASSWORD                  ****                                                                        built-in\n",
		"  API_TOKEN                    ****                                                                        .env (",
		"  PSENV_TEST_DOTENV            from-dotenv                                                                 .env (",
		"  LOG_LEVEL                    debug                                                                       variables\n",
		"  PSENV_TEST_SET               x                                                                           --set\n",
	} {
		if !strings.Contains(stdout, line) {
			t.Errorf("config lacks %q:\n%s", line, stdout)
		}
	}
	if strings.Contains(stdout, "PATH ") {
		t.Errorf("config lists the process environment:\n%s", stdout)
	}
	for _, s := range checkSecrets {
		if strings.Contains(stdout+stderr, s) {
			t.Errorf("config shows %s:\n%s%s", s, stdout, stderr)
		}
	}

	code, stdout, stderr = runEnvCmd(t, "config", "staging")
	want := "project      app\n" +
		"environment  staging\n" +
		"postgres:\n" +
		"  url       postgres://u:****@db.example:6000/appdb (external: no container is started)\n" +
		"  database  appdb\n" +
		"  user      u\n" +
		"  password  ****\n" +
		"  port      6000\n" +
		"init: none\n" +
		"deployment:\n" +
		"  deploy  pod  c/app.yaml\n" +
		"variables:\n"
	if code != 0 || !strings.HasPrefix(stdout, want) {
		t.Errorf("config staging: exit %d\n%s\nwant it to start\n%s\n%s", code, stdout, want, stderr)
	}
	noSecrets(t, "config staging", stdout+stderr)

	code, stdout, stderr = runEnvCmd(t, "--json", "config", "staging")
	var got configReport
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("--json config: exit %d, %v\n%s%s", code, err, stdout, stderr)
	}
	noSecrets(t, "--json config", stdout)
	wantPG := configPostgres{External: true, Database: "appdb", User: "u", Password: "****", Port: 6000,
		URL: "postgres://u:****@db.example:6000/appdb", ContainerURL: "postgres://u:****@db.example:6000/appdb"}
	if got.Project != "app" || got.Environment != "staging" || got.Current || got.Postgres != wantPG ||
		len(got.Init) != 0 || got.Deployment == nil || *got.Deployment != (configStep{Unit: "deploy", Kind: "pod", Path: "c/app.yaml"}) {
		t.Errorf("--json config staging:\n%s", stdout)
	}

	for _, tt := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"config", "nope"}, "ps-env: .poststack.yml:3:1: environment \"nope\" is not defined (known: dev, staging)\n"},
		{[]string{"config", "dev", "x"}, "ps-env: unexpected argument \"x\" (see 'ps-env config --help')\n"},
		{[]string{"config", "--set", "nope"}, "ps-env: --set \"nope\": want NAME=VALUE\n"},
	} {
		code, stdout, stderr := runEnvCmd(t, tt.args...)
		if code != 2 || stdout != "" || stderr != tt.stderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2, stderr %q", tt.args, code, stdout, stderr, tt.stderr)
		}
	}
}

// TestConfigGenerated: a generated password is shown as such, never its value.
func TestConfigGenerated(t *testing.T) {
	dir := filepath.Dir(inProject(t, "project: {name: app}\nenvironments:\n  dev: {postgres: {port: 5439}}\n"))
	code, stdout, stderr := runEnvCmd(t, "config")
	pw, err := os.ReadFile(filepath.Join(dir, ".poststack", "app-dev.password"))
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(stdout, "  password       auto_generated (kept in .poststack/)\n") ||
		strings.Contains(stdout+stderr, strings.TrimSpace(string(pw))) {
		t.Errorf("config: exit %d\n%s%s", code, stdout, stderr)
	}
}
