package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSwitch(t *testing.T) {
	tests := []struct {
		name, file, env, want, stdout string
	}{
		{"rewrites the line", "environment: dev  # current\n" + twoEnvs, "staging",
			"environment: staging  # current\n" + twoEnvs, "switched to environment staging\n"},
		{"adds the line", twoEnvs, "dev", "# the project\nenvironment: dev\n" + strings.TrimPrefix(twoEnvs, "# the project\n"),
			"switched to environment dev\n"},
		{"already current", "environment: 'dev'\n" + twoEnvs, "dev", "environment: 'dev'\n" + twoEnvs,
			"environment dev is already current\n"},
		{"crlf", strings.ReplaceAll("environment: dev\n"+twoEnvs, "\n", "\r\n"), "staging",
			strings.ReplaceAll("environment: staging\n"+twoEnvs, "\n", "\r\n"), "switched to environment staging\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := inProject(t, tt.file)
			code, stdout, stderr := runEnvCmd(t, "switch", tt.env)
			if code != 0 || stdout != tt.stdout {
				t.Errorf("exit %d, stdout %q, want %q; stderr %s", code, stdout, tt.stdout, stderr)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf(".poststack.yml =\n%q\nwant\n%q", got, tt.want)
			}
			if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("mode after switch: %v, %v; want 0640", st.Mode(), err)
			}
		})
	}
}

func TestSwitchJSON(t *testing.T) {
	inProject(t, "environment: dev\n"+twoEnvs)
	code, stdout, stderr := runEnvCmd(t, "--json", "switch", "staging")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var got switchReport
	if err := json.Unmarshal([]byte(stdout), &got); err != nil || got.Previous != "dev" || got.Current != "staging" {
		t.Errorf("stdout %s (%v), want previous dev, current staging", stdout, err)
	}
}

// TestSwitchLinkInside checks that a project file linked to another file of the project stays a
// link: the file it points at is rewritten.
func TestSwitchLinkInside(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	real := filepath.Join(dir, "conf", "poststack.yml")
	if err := os.Mkdir(filepath.Dir(real), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(real, []byte("environment: dev\n"+twoEnvs), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("conf/poststack.yml", ".poststack.yml"); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runEnvCmd(t, "switch", "staging"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if l, err := os.Readlink(".poststack.yml"); err != nil || l != "conf/poststack.yml" {
		t.Errorf(".poststack.yml is no longer the link: %q, %v", l, err)
	}
	got, _ := os.ReadFile(real)
	if string(got) != "environment: staging\n"+twoEnvs {
		t.Errorf("linked file =\n%s", got)
	}
	if st, err := os.Stat(real); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("mode after switch: %v, %v; want 0600", st.Mode(), err)
	}
}

func TestSwitchFails(t *testing.T) {
	tests := []struct {
		name, file, stderr string // stderr: substring
		args               []string
	}{
		{"unknown environment", "environment: dev\n" + twoEnvs, `environment "prod" is not defined (known: dev, staging)`, []string{"switch", "prod"}},
		{"no argument", twoEnvs, "missing ENV", []string{"switch"}},
		{"two arguments", twoEnvs, `unexpected argument "staging"`, []string{"switch", "dev", "staging"}},
		{"flow top level", `{project: {name: app}, environments: {dev: {}, prod: {}}}`, ".poststack.yml:1:1: the top level is a flow mapping", []string{"switch", "prod"}},
		{"invalid file", "environment: prod\n" + twoEnvs, `environment "prod" is not defined`, []string{"switch", "dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := inProject(t, tt.file)
			code, stdout, stderr := runEnvCmd(t, tt.args...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, stdout, stderr, tt.stderr)
			}
			if got, _ := os.ReadFile(path); string(got) != tt.file {
				t.Errorf("the file changed:\n%s", got)
			}
		})
	}
	t.Run("link out of the project", func(t *testing.T) {
		outside := filepath.Join(t.TempDir(), "elsewhere.yml")
		if err := os.WriteFile(outside, []byte(twoEnvs), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Chdir(t.TempDir())
		if err := os.Symlink(outside, ".poststack.yml"); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := runEnvCmd(t, "switch", "dev")
		if code != 2 || !strings.Contains(stderr, "outside the project directory") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
		if got, _ := os.ReadFile(outside); string(got) != twoEnvs {
			t.Errorf("the linked file changed:\n%s", got)
		}
	})
	t.Run("not a regular file", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if err := os.Mkdir(".poststack.yml", 0o755); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runEnvCmd(t, "switch", "dev"); code != 2 || !strings.Contains(stderr, ".poststack.yml") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}
