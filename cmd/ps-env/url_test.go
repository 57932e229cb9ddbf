package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/internal/cli"
)

// TestURL: url hands out the environment's URL with its password (the one kept in
// .poststack/), from the host or from the containers; --json names the side; bad
// arguments are exit 2 with nothing on stdout.
func TestURL(t *testing.T) {
	path := inProject(t, "environment: dev\n"+twoEnvs)
	dir := filepath.Dir(path)
	if err := os.Mkdir(filepath.Join(dir, ".poststack"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".poststack", "app-dev.password"), []byte("p@ss w0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"url"}, 0, "postgres://app_dev_user:p%40ss%20w0rd@127.0.0.1:5433/app_dev?sslmode=disable\n", ""},
		{[]string{"url", "dev", "--host"}, 0, "postgres://app_dev_user:p%40ss%20w0rd@127.0.0.1:5433/app_dev?sslmode=disable\n", ""},
		{[]string{"url", "--container"}, 0, "postgres://app_dev_user:p%40ss%20w0rd@app-dev-postgres:5432/app_dev?sslmode=disable\n", ""},
		{[]string{"url", "staging"}, 0, "postgres://u:sekret@db.example:6000/appdb\n", ""},
		{[]string{"url", "nope"}, 2, "", "ps-env: .poststack.yml:5:1: environment \"nope\" is not defined (known: dev, staging)\n"},
		{[]string{"url", "--host", "--container"}, 2, "", "ps-env: --host and --container exclude each other\n"},
		{[]string{"url", "dev", "staging"}, 2, "", "ps-env: unexpected argument \"staging\" (see 'ps-env url --help')\n"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runEnvCmd(t, tt.args...)
		if code != tt.code || stdout != tt.stdout || (tt.stderr != "" && stderr != tt.stderr) {
			t.Errorf("%v: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q, stderr %q", tt.args, code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
		}
	}

	code, stdout, _ := runEnvCmd(t, "--json", "url", "--container")
	var got urlReport
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil ||
		got != (urlReport{Environment: "dev", Side: "container", URL: "postgres://app_dev_user:p%40ss%20w0rd@app-dev-postgres:5432/app_dev?sslmode=disable"}) {
		t.Errorf("--json url --container: exit %d, %q (%v)", code, stdout, err)
	}
}

// TestURLUnderActions: the password is masked (::add-mask:: on stderr, where the runner reads
// commands) before the URL goes to stdout, which holds the URL alone, so that
// psql "$(ps-env url)" works in a workflow step.
func TestURLUnderActions(t *testing.T) {
	path := inProject(t, "project: {name: app}\nenvironments:\n  dev: {postgres: {password: s3cret, port: 5432}}\n")
	var stdout, stderr bytes.Buffer
	code := runEnv(context.Background(), []string{"url"}, cli.Env{
		Environ: []string{"GITHUB_ACTIONS=true"}, Dir: filepath.Dir(path),
		Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
	})
	want := "postgres://app_dev_user:s3cret@127.0.0.1:5432/app_dev?sslmode=disable\n"
	if code != 0 || stdout.String() != want {
		t.Fatalf("exit %d, stdout %q; want %q", code, stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "::add-mask::s3cret\n") {
		t.Errorf("stderr lacks the mask of the password:\n%s", stderr.String())
	}
}
