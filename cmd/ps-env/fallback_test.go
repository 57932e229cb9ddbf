package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/internal/testenv"
)

func runIn(t *testing.T, dir string, environ []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := cli.Env{Environ: environ, Dir: dir, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
	code = runEnv(context.Background(), args, env)
	return code, out.String(), errb.String()
}

// A repository's .env names a state directory of its choosing (where it could plant forged
// records) and asks for secrets to be shown: neither --state-dir nor --show-secrets is read from
// .env, and a stray POSTSTACK_SHOW_SECRETS in the environment does not reveal them either.
func TestAttackDotEnvStateDirAndShowSecrets(t *testing.T) {
	testenv.Postgres(t) // skips (or fails under CI) where the server binaries are missing
	project := t.TempDir()
	planted := t.TempDir()
	state := t.TempDir()
	if err := os.WriteFile(filepath.Join(project, ".env"),
		[]byte("POSTSTACK_STATE_DIR="+planted+"\nPOSTSTACK_SHOW_SECRETS=true\nPOSTSTACK_ALL=true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	environ := []string{"XDG_STATE_HOME=" + state, "POSTSTACK_SHOW_SECRETS=true", "PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}

	code, out, errOut := runIn(t, project, environ, "ephemeral", "up", "--provider", "native")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	url := strings.TrimSpace(out)
	t.Cleanup(func() { runIn(t, project, environ, "ephemeral", "down", "--all") })
	cfg, err := pgx.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		t.Fatalf("up printed %q: %v", url, err)
	}

	if entries, _ := os.ReadDir(planted); len(entries) != 0 {
		t.Errorf("the .env's state dir was used: %v", entries)
	}
	recorded, _ := filepath.Glob(filepath.Join(state, "poststack", "ephemeral", "*.json"))
	if len(recorded) != 1 {
		t.Errorf("records in $XDG_STATE_HOME: %v, want 1", recorded)
	}

	code, out, errOut = runIn(t, project, environ, "ephemeral", "list")
	if code != 0 || strings.Contains(out+errOut, cfg.Password) || !strings.Contains(out, "****") {
		t.Errorf("list with POSTSTACK_SHOW_SECRETS in .env and the environment: exit %d, password shown or not masked:\n%s%s", code, out, errOut)
	}
	// POSTSTACK_ALL does not turn a bare down into "stop everything".
	if code, _, errOut = runIn(t, project, environ, "ephemeral", "down"); code != 2 {
		t.Errorf("bare down with POSTSTACK_ALL=true: exit %d, want 2\n%s", code, errOut)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("the server is gone after a refused down: %v", err)
	}
	conn.Close(context.Background())
}
