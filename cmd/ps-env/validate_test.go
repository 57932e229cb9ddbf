package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	inCheckProject(t, checkProject, checkFiles())
	for _, tt := range []struct {
		args   []string
		stdout string
	}{
		{[]string{"validate"}, "ok: 2 environments, 3 files\n"},
		{[]string{"validate", "staging"}, "ok: 1 environment, 1 file\n"},
	} {
		code, stdout, stderr := runEnvCmd(t, tt.args...)
		if code != 0 || stdout != tt.stdout || stderr != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want %q", tt.args, code, stdout, stderr, tt.stdout)
		}
	}
	code, stdout, _ := runEnvCmd(t, "--json", "validate")
	var got validateReport
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil || !got.OK || got.Files != 3 ||
		strings.Join(got.Environments, ",") != "dev,staging" || got.Problems == nil || len(got.Problems) != 0 {
		t.Errorf("--json validate: exit %d, %v\n%s", code, err, stdout)
	}
	for _, tt := range []struct {
		args           []string
		stdout, stderr string
	}{
		{[]string{"validate", "nope"}, ".poststack.yml:3:1: environment \"nope\" is not defined (known: dev, staging)\n", "ps-env: 1 problem\n"},
		{[]string{"validate", "dev", "x"}, "", "ps-env: unexpected argument \"x\" (see 'ps-env validate --help')\n"},
	} {
		code, stdout, stderr := runEnvCmd(t, tt.args...)
		if code != 2 || stdout != tt.stdout || stderr != tt.stderr {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2, %q, %q", tt.args, code, stdout, stderr, tt.stdout, tt.stderr)
		}
	}
}

// badProject has a problem of every kind validate finds, in both environments.
const badProject = `project: {name: app}
environments:
  dev:
    postgres: {password: "pa55-w0rd-SECRET"}
    init:
      - pod: c/notyaml.yaml
      - pod: c/nokind.yaml
      - pod: c/nope.yaml
      - compose: c/rejected.yml
    deployment:
      pod: c/app.yaml
  staging:
    postgres:
      url: postgres://u:st4g1ng-SECRET@db.example:6000/appdb
    deployment:
      compose: c/undefined.yml
`

func badFiles() map[string]string {
	return map[string]string{
		"c/notyaml.yaml": "kind: Pod\nspec: [containers\n",
		"c/nokind.yaml":  "apiVersion: v1\n---\nkind: Service\n---\nkind: Pod\nspec:\n  containers:\n    - name: a\n    - image: b\n      name: ${DB_PASSWORD}\n",
		"c/rejected.yml": "services:\n  web:\n    image: nginx\n    depends_on: [db]\n",
		"c/app.yaml":     "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          image: app:${PSENV_TEST_TAG}\n",
		"c/undefined.yml": "services:\n  web:\n    image: ${PSENV_TEST_IMAGE}\n    environment:\n" +
			"      URL: ${POSTSTACK_DATABASE_URL}\n      X: ${PSENV_TEST_IMAGE:?need an image}\n",
	}
}

// TestValidateFails: every problem is listed as FILE:LINE:COL: message, sorted, with exit 2
// when one is bad input, else 3 for undefined variables alone.
func TestValidateFails(t *testing.T) {
	inCheckProject(t, badProject, badFiles())
	code, stdout, stderr := runEnvCmd(t, "validate")
	want := ".poststack.yml:8:9: pod file c/nope.yaml does not exist\n" +
		"c/app.yaml:7:22: undefined variable PSENV_TEST_TAG\n" +
		"c/nokind.yaml:1:1: document has no kind: (want one of Pod, Deployment, DaemonSet, Job, ConfigMap, Secret, PersistentVolumeClaim)\n" +
		"c/nokind.yaml:3:7: kind \"Service\" is not one podman kube play runs (want one of Pod, Deployment, DaemonSet, Job, ConfigMap, Secret, PersistentVolumeClaim)\n" +
		"c/nokind.yaml:8:7: container has no image:\n" +
		"c/notyaml.yaml:2:1: pod file is not YAML: did not find expected ',' or ']'\n" +
		"c/rejected.yml:1:1: compose file rejected: service \"web\" depends on undefined service \"db\": invalid compose project\n" +
		"c/undefined.yml:3:12: undefined variable PSENV_TEST_IMAGE\n" +
		"c/undefined.yml:6:10: required variable PSENV_TEST_IMAGE is missing a value: need an image\n"
	if code != 2 || stdout != want || stderr != "ps-env: 9 problems\n" {
		t.Errorf("validate: exit %d\nstdout %q\nstderr %q\nwant\n%q", code, stdout, stderr, want)
	}
	noSecrets(t, "validate", stdout+stderr)

	// Undefined variables alone: exit 3.
	code, stdout, stderr = runEnvCmd(t, "validate", "staging")
	want = "c/undefined.yml:3:12: undefined variable PSENV_TEST_IMAGE\n" +
		"c/undefined.yml:6:10: required variable PSENV_TEST_IMAGE is missing a value: need an image\n"
	if code != 3 || stdout != want || stderr != "ps-env: 2 problems\n" {
		t.Errorf("validate staging: exit %d\nstdout %q\nstderr %q\nwant\n%q", code, stdout, stderr, want)
	}

	code, stdout, _ = runEnvCmd(t, "--json", "validate", "staging")
	var got validateReport
	if err := json.Unmarshal([]byte(stdout), &got); code != 3 || err != nil || got.OK || len(got.Problems) != 2 ||
		got.Problems[0] != (validateProblem{File: "c/undefined.yml", Line: 3, Col: 12, Message: "undefined variable PSENV_TEST_IMAGE", Kind: "undefined"}) {
		t.Errorf("--json validate staging: exit %d, %v\n%s", code, err, stdout)
	}

	// The project file's own problems, every one.
	inProject(t, "project: {name: app}\nenvironments:\n  dev: {postgres: {prot: 1}, deploy: {pod: x}}\n")
	code, stdout, stderr = runEnvCmd(t, "validate")
	if code != 2 || strings.Count(stdout, "\n") != 2 || !strings.HasPrefix(stdout, ".poststack.yml:3:") || stderr != "ps-env: 2 problems\n" {
		t.Errorf("bad project file: exit %d\nstdout %q\nstderr %q", code, stdout, stderr)
	}
}

// TestValidateWritesNothing: no password is generated, no port picked, no file changed, for
// every environment, the current one included.
func TestValidateWritesNothing(t *testing.T) {
	dir := inCheckProject(t, "environment: dev\nproject: {name: app}\nenvironments:\n"+
		"  dev:\n    deployment: {pod: c/app.yaml}\n  other:\n    postgres: {port: auto}\n    deployment: {compose: c/compose.yml}\n", checkFiles())
	before := tree(t, dir)
	code, stdout, stderr := runEnvCmd(t, "validate")
	if code != 0 || stdout != "ok: 2 environments, 2 files\n" {
		t.Fatalf("validate: exit %d, %q %q", code, stdout, stderr)
	}
	if after := tree(t, dir); after != before {
		t.Errorf("validate changed the project:\nbefore\n%s\nafter\n%s", before, after)
	}
}

// tree lists every file and directory under dir with its size, mode and time.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %v %d %s\n", rel, info.Mode(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
