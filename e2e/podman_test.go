package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// echoPod is a pod that prints the values it was rendered with and exits. The example's own
// app-pod.yaml runs a server that needs the environment's database (ps-env up), so the test
// renders this one inside the example project, with the example's dev variables.
const echoPod = `apiVersion: v1
kind: Pod
metadata:
  name: ${POSTSTACK_PROJECT}-${POSTSTACK_ENVIRONMENT}-app
spec:
  restartPolicy: Never
  containers:
    - name: app
      image: localhost/debian:bookworm
      imagePullPolicy: IfNotPresent
      command: ["/bin/sh", "-c"]
      args:
        - exec echo "myapp started project=${POSTSTACK_PROJECT} environment=${POSTSTACK_ENVIRONMENT} log_level=${LOG_LEVEL} port=${APP_PORT} db_host=${DB_HOST}"
`

// echoArg pulls the message out of echoPod's `exec echo "…"` argument.
var echoArg = regexp.MustCompile(`(?m)^\s*- exec echo "(.*)"\s*$`)

func TestSubstPodmanKubePlay(t *testing.T) {
	podman := testenv.Podman(t)
	testenv.BaseImage(t, testenv.EnginePodman)
	psSubst := binary(t, "ps-subst")
	ctx := testContext(t, 60*time.Second)
	dir, project := exampleProject(t)

	if err := os.WriteFile(filepath.Join(dir, "echo-pod.yaml"), []byte(echoPod), 0o644); err != nil {
		t.Fatal(err)
	}
	rendered := mustRun(t, ctx, dir, nil, psSubst, "--env", "dev", "echo-pod.yaml")
	if strings.Contains(rendered, "${") {
		t.Fatalf("rendered pod still holds a placeholder:\n%s", rendered)
	}
	m := echoArg.FindStringSubmatch(rendered)
	if m == nil {
		t.Fatalf("rendered pod has no `exec echo` argument:\n%s", rendered)
	}
	want := m[1]
	for _, part := range []string{"project=" + project + " ", "environment=dev ", "log_level=debug ", "port=8080 "} {
		if !strings.Contains(want, part) {
			t.Errorf("rendered message %q lacks %q", want, part)
		}
	}
	if strings.HasSuffix(want, "db_host=") {
		t.Errorf("DB_HOST rendered empty: %q", want)
	}

	pod := project + "-dev-app"
	container := pod + "-app"
	t.Cleanup(func() {
		// Cleanup gets its own deadline: the test's may be spent.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := run(ctx, dir, strings.NewReader(rendered), podman, "kube", "down", "-"); err != nil {
			t.Errorf("podman kube down: %v", err)
		}
	})
	mustRun(t, ctx, dir, strings.NewReader(rendered), podman, "kube", "play", "-")

	code := mustRun(t, ctx, dir, nil, podman, "wait", container)
	logs := mustRun(t, ctx, dir, nil, podman, "logs", container)
	if got := strings.TrimSpace(code); got != "0" {
		t.Errorf("%s exited with %s; logs:\n%s", container, got, logs)
	}
	if got := strings.TrimSpace(logs); got != want {
		t.Errorf("%s printed\n  %q\nwant\n  %q", container, got, want)
	}
}
