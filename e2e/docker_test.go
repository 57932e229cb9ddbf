package e2e

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/poststack/poststack/internal/testenv"
)

func TestSubstDockerSocket(t *testing.T) {
	host := testenv.Docker(t)
	image := testenv.BaseImage(t, testenv.EngineDocker)
	psSubst := binary(t, "ps-subst")
	// The reaper image cannot be pulled here, and /.dockerenv makes testcontainers-go mistake
	// this host for a container (see ENGINES.md).
	for k, v := range map[string]string{
		"TESTCONTAINERS_RYUK_DISABLED": "true",
		"TESTCONTAINERS_HOST_OVERRIDE": "localhost",
	} {
		if os.Getenv(k) == "" {
			t.Setenv(k, v)
		}
	}
	// Pin the docker daemon even when a podman socket would also answer.
	t.Setenv("DOCKER_HOST", host)
	ctx := testContext(t, 60*time.Second)
	dir, project := exampleProject(t)

	tmpl := filepath.Join(dir, "greeting.txt")
	if err := os.WriteFile(tmpl, []byte("${POSTSTACK_PROJECT}:${POSTSTACK_ENVIRONMENT}:${LOG_LEVEL}:${APP_PORT}:$${LITERAL}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	greeting := strings.TrimSpace(mustRun(t, ctx, dir, nil, psSubst, "--env", "dev", "greeting.txt"))
	want := project + ":dev:debug:8080:${LITERAL}"
	if greeting != want {
		t.Fatalf("ps-subst rendered %q, want %q", greeting, want)
	}

	ctr, err := testcontainers.GenericContainer(ctx, testcontainers.GenericContainerRequest{
		ContainerRequest: testcontainers.ContainerRequest{
			Image:      image,
			Cmd:        []string{"echo", greeting},
			Labels:     map[string]string{"io.poststack.test": "e2e"},
			WaitingFor: wait.ForExit().WithExitTimeout(30 * time.Second),
		},
		Started: true,
	})
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("run %s on docker: %v", image, err)
	}

	state, err := ctr.State(ctx)
	if err != nil {
		t.Fatalf("container state: %v", err)
	}
	if state.ExitCode != 0 {
		t.Errorf("container exited with %d", state.ExitCode)
	}
	rc, err := ctr.Logs(ctx)
	if err != nil {
		t.Fatalf("container logs: %v", err)
	}
	defer rc.Close()
	logs, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read logs: %v", err)
	}
	if got := strings.TrimSpace(string(logs)); got != want {
		t.Errorf("container printed %q, want %q", got, want)
	}
}
