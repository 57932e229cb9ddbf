package testenv

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// recordingTB captures Skipf/Fatalf instead of stopping the goroutine, so the CI/non-CI
// decision can be asserted.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper() {}
func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}
func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func TestMissingServiceSkipsLocallyAndFailsInCI(t *testing.T) {
	// Port 1 on loopback refuses connections, so the probe fails fast.
	badURL := "postgres://u:hunter2@127.0.0.1:1/db?sslmode=disable&connect_timeout=2"
	tests := []struct {
		name     string
		env      map[string]string
		wantSkip bool
	}{
		{"local", map[string]string{DatabaseURLEnv: badURL}, true},
		{"ci", map[string]string{DatabaseURLEnv: badURL, "CI": "true"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingTB{TB: t}
			got := postgres(rec, env(tc.env))
			if got != badURL {
				t.Errorf("returned %q, want %q", got, badURL)
			}
			msg := rec.failed
			if tc.wantSkip {
				msg = rec.skipped
				if rec.failed != "" {
					t.Errorf("unexpected failure outside CI: %s", rec.failed)
				}
			} else if rec.skipped != "" {
				t.Errorf("unexpected skip under CI: %s", rec.skipped)
			}
			if !strings.Contains(msg, "scripts/setup.sh") || !strings.Contains(msg, DatabaseURLEnv) {
				t.Errorf("message %q should name %s and the fix", msg, DatabaseURLEnv)
			}
			if strings.Contains(msg, "hunter2") {
				t.Errorf("message leaks the password: %q", msg)
			}
		})
	}
}

func TestDockerUnreachableHost(t *testing.T) {
	tests := []struct{ host, want string }{
		{"unix:///nonexistent/docker.sock", "does not answer"},
		{"ssh://example", "unsupported DOCKER_HOST scheme"},
	}
	for _, tc := range tests {
		rec := &recordingTB{TB: t}
		docker(rec, env(map[string]string{"DOCKER_HOST": tc.host}))
		if !strings.Contains(rec.skipped, tc.want) {
			t.Errorf("DOCKER_HOST=%s: skip message %q, want it to contain %q", tc.host, rec.skipped, tc.want)
		}
	}
}

func TestPostgresAnswers(t *testing.T) {
	dbURL := Postgres(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var super bool
	if err := conn.QueryRow(ctx, "select rolsuper from pg_roles where rolname = current_user").Scan(&super); err != nil {
		t.Fatalf("query: %v", err)
	}
	if !super {
		t.Errorf("%s should name a superuser (tests create databases and roles)", DatabaseURLEnv)
	}
}

func TestEnginesHaveBaseImage(t *testing.T) {
	for _, engine := range []string{EnginePodman, EngineDocker} {
		t.Run(engine, func(t *testing.T) {
			if got := BaseImage(t, engine); got != DefaultBaseImage {
				t.Errorf("BaseImage = %q, want %q", got, DefaultBaseImage)
			}
		})
	}
}

func TestMissingImageIsReported(t *testing.T) {
	host := Docker(t)
	if err := dockerImageExists(host, "localhost/poststack-no-such-image:never"); err != errNoImage {
		t.Errorf("dockerImageExists(missing) = %v, want errNoImage", err)
	}
}

func TestPodmanSocket(t *testing.T) {
	if got := PodmanSocket(t); got != "unix://"+PodmanSocketPath {
		t.Errorf("PodmanSocket = %q", got)
	}
}

func TestMissingProgramSkipsLocallyAndFailsInCI(t *testing.T) {
	const name = "poststack-no-such-program"
	for _, ci := range []string{"", "true"} {
		rec := &recordingTB{TB: t}
		if got := program(rec, env(map[string]string{"CI": ci}), name); got != "" {
			t.Errorf("CI=%q: returned %q for a missing program", ci, got)
		}
		stopped, other := rec.skipped, rec.failed
		if ci != "" {
			stopped, other = rec.failed, rec.skipped
		}
		if !strings.Contains(stopped, name+" is not installed") || other != "" {
			t.Errorf("CI=%q: skipped %q, failed %q; want it %s", ci, rec.skipped, rec.failed, map[bool]string{true: "failed", false: "skipped"}[ci != ""])
		}
	}
	if got := program(t, env(nil), "go"); got == "" {
		t.Error("program(go) found nothing")
	}
}
