package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/ghactions"
	"github.com/poststack/poststack/pkg/progress"
)

// boardEvents: api builds and fails with a log holding a secret, worker is
// up to date, after never starts, and a warning about no step of the board
// comes in between.
func boardEvents(t *testing.T) []progress.Event {
	log := filepath.Join(t.TempDir(), "api.log")
	if err := os.WriteFile(log, []byte("step 1\npassword s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return []progress.Event{
		{Op: "build", Kind: progress.Start, Step: "api", Message: "building (containers/api/Dockerfile)"},
		{Op: "build", Kind: progress.Start, Step: "worker", Message: "building (containers/worker/Dockerfile)"},
		{Op: "build", Kind: progress.Info, Step: "worker", Message: "cache hit"},
		{Op: "build", Kind: progress.Done, Step: "worker", Message: "up-to-date", Elapsed: 250 * time.Millisecond},
		{Op: "build", Kind: progress.Warn, Message: "no cache directory"},
		{Op: "build", Kind: progress.Failed, Step: "api", Message: "failed", Elapsed: 1520 * time.Millisecond, Log: log, Err: errors.New("exit 1")},
		{Op: "build", Kind: progress.Warn, Step: "after", Message: "skipped"},
	}
}

func boardApp(env ...string) (*App, *bytes.Buffer, *bytes.Buffer) {
	var stderr, logged bytes.Buffer
	app := New("ps-test", Env{Environ: env, Stderr: &stderr})
	app.Actions = ghactions.New(&stderr, app.Env.Getenv, app.Env.Dir)
	app.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	app.AddSecret("s3cret")
	return app, &stderr, &logged
}

func TestBoardPlainLines(t *testing.T) {
	app, stderr, logged := boardApp()
	report, done := app.Board([]string{"api", "worker", "after"})
	for _, e := range boardEvents(t) {
		report(e)
	}
	done()
	want := "api: building (containers/api/Dockerfile)\n" +
		"worker: building (containers/worker/Dockerfile)\n" +
		"worker: up-to-date in 0.2s\n" +
		"api: failed in 1.5s\n" +
		"after: skipped\n"
	if stderr.String() != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", stderr.String(), want)
	}
	for _, w := range []string{
		`level=DEBUG msg="build: done" op=build step=worker elapsed=250ms state=up-to-date`,
		`level=DEBUG msg="cache hit" op=build step=worker`,
		`level=WARN msg="no cache directory" op=build`,
		`level=DEBUG msg="build: failed" op=build step=api elapsed=1.52s err="exit 1" log=`,
		// Shown as the row's end: no warning of its own.
		`level=DEBUG msg=skipped op=build step=after`,
	} {
		if !strings.Contains(logged.String(), w) {
			t.Errorf("log lacks %s:\n%s", w, logged.String())
		}
	}
}

func TestBoardUnderActions(t *testing.T) {
	app, stderr, _ := boardApp("GITHUB_ACTIONS=true")
	report, done := app.Board([]string{"api", "worker", "after"})
	for _, e := range boardEvents(t) {
		report(e)
	}
	done()
	want := "::group::worker: up-to-date in 300ms\n::endgroup::\n" +
		"::group::api: failed in 1.5s\nstep 1\npassword ****\n::endgroup::\n" +
		"after: skipped\n"
	if got := stderr.String(); !strings.HasSuffix(got, want) || strings.Count(got, "s3cret") != 1 {
		t.Errorf("stderr:\n%s\nwant it to end with:\n%s", got, want)
	}
}

func TestBoardQuiet(t *testing.T) {
	app, stderr, logged := boardApp()
	app.Globals.Quiet = true
	report, done := app.Board([]string{"api", "worker", "after"})
	for _, e := range boardEvents(t) {
		report(e)
	}
	done()
	if stderr.Len() != 0 || !strings.Contains(logged.String(), `msg="build: failed"`) {
		t.Errorf("--quiet: stderr %q (want nothing), log:\n%s", stderr.String(), logged.String())
	}
}
