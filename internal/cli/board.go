package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/logging"
	"github.com/poststack/poststack/pkg/progress"
)

// Board renders the progress of named steps that run at the same time
// (ps-build's images, ps-env's parallel phases), where one status line
// would not do: on a terminal a live board with a row per name (its state
// and time), under GitHub Actions a ::group:: per ended step holding its
// log file (Event.Log), plain lines otherwise, nothing with --quiet. Every
// event is logged, as Report logs it; events of steps not in names are
// only logged. Call the returned function once the steps have ended: it
// leaves the final board on the terminal.
//
// A step's Message is its state, optionally followed by a detail in
// parentheses: "building (containers/api/Dockerfile)" shows as "building"
// on the board and whole in the lines. Start, Done and Failed begin and end
// a row, Wait changes a running row's state, and a Warn ends a row that
// never ran ("skipped").
func (a *App) Board(names []string) (progress.Func, func()) {
	rows := make(map[string]bool, len(names))
	for _, n := range names {
		rows[n] = true
	}
	var show func(progress.Event)
	closeBoard := func() {}
	switch w := a.Env.Stderr; {
	case a.Globals.Quiet:
		show = func(progress.Event) {}
	case a.Actions.Enabled():
		show = a.groupStep
	case logging.IsTerminal(w):
		masked := make([]string, len(names))
		for i, n := range names {
			masked[i] = a.Secrets.Mask(n)
		}
		board := logging.NewBoard(w, masked, nil)
		show = func(e progress.Event) {
			name, state := a.Secrets.Mask(e.Step), a.Secrets.Mask(stepState(e))
			switch e.Kind {
			case progress.Start:
				board.Start(name, state)
			case progress.Wait:
				board.State(name, state)
			default:
				board.End(name, state)
			}
		}
		closeBoard = board.Close
	default:
		show = a.plainStep
	}
	report := func(e progress.Event) {
		switch {
		case !rows[e.Step] || e.Kind == progress.Info:
			a.logEvent(e, slog.LevelWarn)
		default:
			show(e)
			// Shown on the board or its lines: a skipped step is no warning of its own.
			a.logEvent(e, slog.LevelDebug)
		}
	}
	return progress.Func(report).Serialized(), closeBoard
}

// stepMessage is e's Message, or what its kind says when it has none.
func stepMessage(e progress.Event) string {
	if e.Message != "" {
		return e.Message
	}
	switch e.Kind {
	case progress.Start:
		return "running"
	case progress.Failed:
		return "failed"
	}
	return "done"
}

// stepState is stepMessage without its parenthesised detail.
func stepState(e progress.Event) string {
	state, _, _ := strings.Cut(stepMessage(e), " (")
	return state
}

// plainStep writes "api: building (containers/api/Dockerfile)" when a step
// starts, "api: built in 1.5s" when it ends.
func (a *App) plainStep(e progress.Event) {
	line := e.Step + ": " + stepMessage(e)
	if e.Kind == progress.Done || e.Kind == progress.Failed {
		line += fmt.Sprintf(" in %.1fs", e.Elapsed.Seconds())
	}
	fmt.Fprintln(a.Env.Stderr, a.Secrets.Mask(line))
}

// groupStep writes an ended step as a collapsed group "api: built in 1.5s"
// holding its log file, and other events as plain lines; a start shows
// nothing, since steps running at once cannot each hold an open group.
func (a *App) groupStep(e progress.Event) {
	switch e.Kind {
	case progress.Start:
		return
	case progress.Done, progress.Failed:
	default:
		fmt.Fprintln(a.Env.Stderr, a.Secrets.Mask(e.Step+": "+stepMessage(e)))
		return
	}
	a.Actions.Group(a.Secrets.Mask(fmt.Sprintf("%s: %s in %s", e.Step, stepMessage(e), e.Elapsed.Round(100*time.Millisecond))))
	if e.Log != "" {
		if data, err := os.ReadFile(e.Log); err == nil {
			fmt.Fprint(a.Env.Stderr, a.Secrets.Mask(string(data)))
		}
	}
	a.Actions.EndGroup()
}
