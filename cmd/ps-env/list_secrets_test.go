package main

import (
	"encoding/json"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
)

// TestEphemeralListJSONMasksPasswords starts a native server and asserts
// that `ephemeral list --json`, like the text listing, masks the superuser
// password in the URL unless --show-secrets is given.
func TestEphemeralListJSONMasksPasswords(t *testing.T) {
	testenv.Postgres(t) // skips (or fails under CI) where the server binaries are missing
	project := t.TempDir()
	environ := []string{"XDG_STATE_HOME=" + t.TempDir(), "PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}

	code, out, errOut := runIn(t, project, environ, "ephemeral", "up", "--provider", "native")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, errOut)
	}
	t.Cleanup(func() { runIn(t, project, environ, "ephemeral", "down", "--all") })
	full := strings.TrimSpace(out)
	cfg, err := pgx.ParseConfig(full)
	if err != nil || cfg.Password == "" {
		t.Fatalf("up printed %q: %v", full, err)
	}
	leaks := func(s string) bool {
		return strings.Contains(s, cfg.Password) || strings.Contains(s, url.QueryEscape(cfg.Password)) ||
			strings.Contains(s, url.PathEscape(cfg.Password))
	}

	type listed struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	list := func(args ...string) []listed {
		t.Helper()
		code, out, errOut := runIn(t, project, environ, append([]string{"ephemeral", "list", "--json"}, args...)...)
		var got []listed
		if err := json.Unmarshal([]byte(out), &got); code != 0 || err != nil || len(got) != 1 {
			t.Fatalf("list --json %v: exit %d, %v\n%s%s", args, code, err, out, errOut)
		}
		return got
	}

	masked := list()
	if leaks(masked[0].URL) || !strings.Contains(masked[0].URL, "****") {
		t.Errorf("list --json: url %q shows the password or is not masked", masked[0].URL)
	}
	if mcfg, err := pgx.ParseConfig(masked[0].URL); err != nil || mcfg.Host != cfg.Host || mcfg.Port != cfg.Port || mcfg.User != cfg.User {
		t.Errorf("list --json: masked url %q does not name the server of %s (%v)", masked[0].URL, "the up URL", err)
	}
	if shown := list("--show-secrets"); shown[0].URL != full || shown[0].ID != masked[0].ID {
		t.Errorf("list --json --show-secrets: %+v, want the URL up printed", shown[0])
	}

	code, out, errOut = runIn(t, project, environ, "ephemeral", "list")
	if code != 0 || leaks(out+errOut) || !strings.Contains(out, "****") {
		t.Errorf("list: exit %d, password shown or not masked:\n%s%s", code, out, errOut)
	}
	code, out, _ = runIn(t, project, environ, "ephemeral", "list", "--show-secrets")
	if code != 0 || !strings.Contains(out, full) {
		t.Errorf("list --show-secrets: exit %d, the URL is not shown:\n%s", code, out)
	}
}
