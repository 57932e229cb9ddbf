package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const twoEnvs = `# the project
project:
  name: app
environments:
  dev:
    postgres: {port: 5433}
  staging:
    postgres:
      url: postgres://u:sekret@db.example:6000/appdb
`

// inProject makes a temporary directory holding .poststack.yml with content, and makes it the
// working directory.
func inProject(t *testing.T, content string) string {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	path := filepath.Join(dir, ".poststack.yml")
	if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func runEnvCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestList(t *testing.T) {
	tests := []struct {
		name, file string
		args       []string
		stdout     string
	}{
		{"environment key", "environment: staging\n" + twoEnvs, []string{"list"},
			"  ENVIRONMENT  DATABASE  PORT\n" +
				"  dev          app_dev   5433\n" +
				"* staging      appdb     6000  external (url:)\n"},
		{"no current", twoEnvs, []string{"list"},
			"  ENVIRONMENT  DATABASE  PORT\n" +
				"  dev          app_dev   5433\n" +
				"  staging      appdb     6000  external (url:)\n"},
		{"only environment", "project: {name: app}\nenvironments:\n  dev: {}\n", []string{"list"},
			"  ENVIRONMENT  DATABASE  PORT\n" +
				"* dev          app_dev   auto\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inProject(t, tt.file)
			code, stdout, stderr := runEnvCmd(t, tt.args...)
			if code != 0 || stdout != tt.stdout {
				t.Errorf("ps-env %v: exit %d, stdout\n%s\nwant\n%s\nstderr %s", tt.args, code, stdout, tt.stdout, stderr)
			}
		})
	}
}

func TestListJSON(t *testing.T) {
	inProject(t, "environment: dev\n"+twoEnvs)
	for _, args := range [][]string{{"list", "--json"}, {"--json", "list"}} {
		code, stdout, stderr := runEnvCmd(t, args...)
		if code != 0 {
			t.Fatalf("ps-env %v: exit %d: %s", args, code, stderr)
		}
		if strings.Contains(stdout, "sekret") {
			t.Errorf("ps-env %v shows the password:\n%s", args, stdout)
		}
		var got envList
		if err := json.Unmarshal([]byte(stdout), &got); err != nil {
			t.Fatalf("ps-env %v: %v\n%s", args, err, stdout)
		}
		want := envList{Current: "dev", Environments: []envEntry{
			{Name: "dev", Current: true, Database: "app_dev", Port: 5433},
			{Name: "staging", Database: "appdb", Port: 6000, External: true},
		}}
		if g, w := mustJSON(t, got), mustJSON(t, want); g != w {
			t.Errorf("ps-env %v = %s, want %s", args, g, w)
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestListFails(t *testing.T) {
	t.Run("no project file", func(t *testing.T) {
		t.Chdir(t.TempDir())
		code, stdout, stderr := runEnvCmd(t, "list")
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "ps-env: project file .poststack.yml: ") {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("bad project file", func(t *testing.T) {
		inProject(t, "project: {name: app}\nenvironments:\n  dev: {postgres: {prot: 1}}\n")
		code, _, stderr := runEnvCmd(t, "list")
		if code != 2 || !strings.Contains(stderr, ".poststack.yml:3:") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("argument", func(t *testing.T) {
		inProject(t, twoEnvs)
		if code, _, stderr := runEnvCmd(t, "list", "dev"); code != 2 || !strings.Contains(stderr, `unexpected argument "dev"`) {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}
