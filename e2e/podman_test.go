package e2e

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// echoArg pulls the message out of the example pod's `exec echo "…"` argument.
var echoArg = regexp.MustCompile(`(?m)^\s*- exec echo "(.*)"\s*$`)

func TestSubstPodmanKubePlay(t *testing.T) {
	podman := testenv.Podman(t)
	testenv.BaseImage(t, testenv.EnginePodman)
	psSubst := binary(t, "ps-subst")
	ctx := testContext(t, 60*time.Second)
	dir, project := exampleProject(t)

	rendered := mustRun(t, ctx, dir, nil, psSubst, "--env", "dev", "containers/app/app-pod.yaml")
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
