package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/logging"
	"github.com/poststack/poststack/pkg/progress"
)

// TestReportRendersEveryKind: steps reach the progress renderer (a failed
// step shows only "failed"; its error is the command's to report), waits
// are shown as steps, and warnings, infos and step ends are logged with
// their attributes.
func TestReportRendersEveryKind(t *testing.T) {
	var shown, logged bytes.Buffer
	app := New("ps-test", Env{})
	app.Progress = logging.NewPlainProgress(&shown)
	app.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))

	app.Report(progress.Event{Op: "migrate", Kind: progress.Start, Step: "up 0001_a"})
	app.Report(progress.Event{Op: "migrate", Kind: progress.Wait, Message: "waiting for a lock"})
	app.Report(progress.Event{Op: "migrate", Kind: progress.Done, Step: "up 0001_a", Elapsed: 3 * time.Millisecond})
	app.Report(progress.Event{Op: "migrate", Kind: progress.Start, Step: "up 0002_b"})
	app.Report(progress.Event{Op: "migrate", Kind: progress.Failed, Step: "up 0002_b", Err: errors.New("syntax error at or near x")})
	app.Report(progress.Event{Op: "migrate", Kind: progress.Warn, Step: "3_c", Message: "applied migration has no file any more",
		Attrs: []slog.Attr{slog.Int64("version", 3)}})
	app.Report(progress.Event{Op: "pgnative", Kind: progress.Info, Message: "initdb done"})

	want := "up 0001_a ...\n  waiting for a lock\nup 0001_a: done\nup 0002_b ...\nup 0002_b: failed\n"
	if shown.String() != want {
		t.Errorf("shown:\n%s\nwant:\n%s", shown.String(), want)
	}
	for _, w := range []string{
		`level=DEBUG msg="migrate: done" op=migrate step="up 0001_a" elapsed=3ms`,
		`level=DEBUG msg="migrate: failed" op=migrate step="up 0002_b" err="syntax error at or near x"`,
		`level=WARN msg="applied migration has no file any more" op=migrate step=3_c version=3`,
		`level=DEBUG msg="initdb done" op=pgnative`,
	} {
		if !strings.Contains(logged.String(), w) {
			t.Errorf("log lacks %s:\n%s", w, logged.String())
		}
	}
	if strings.Contains(shown.String(), "syntax error") {
		t.Errorf("a failed step shows its error; the command reports it once:\n%s", shown.String())
	}
}
