package progress

import (
	"fmt"
	"strings"
	"time"
)

// Lines renders every event as one plain line through logf, for callers
// without a terminal of their own: a Go test's t.Logf, log.Printf.
//
//	pgtest.WithProgress(progress.Lines(log.Printf))
//
// A line is "op: step: what happened", with the elapsed time in
// parentheses and the structured details as key=value after it:
//
//	migrate: up 0001_users ...
//	migrate: up 0001_users: done (3ms) version=1 name=users
//	pgnative: warning: cannot store data directory in cache: disk full
func Lines(logf func(format string, args ...any)) Func {
	return func(e Event) { logf("%s", Line(e)) }
}

// Line is the line Lines writes for e.
func Line(e Event) string {
	var b strings.Builder
	if e.Op != "" {
		b.WriteString(e.Op)
		b.WriteString(": ")
	}
	if e.Kind == Warn {
		b.WriteString("warning: ")
	}
	what := e.Message
	switch e.Kind {
	case Start:
		if what == "" {
			what = "..."
		}
	case Done:
		if what == "" {
			what = "done"
		}
	case Failed:
		if what == "" {
			what = "failed"
		}
	}
	switch {
	case e.Step != "" && e.Kind == Start && e.Message == "":
		b.WriteString(e.Step + " " + what)
	case e.Step != "" && what != "":
		b.WriteString(e.Step + ": " + what)
	default:
		b.WriteString(e.Step + what)
	}
	if e.Elapsed > 0 {
		fmt.Fprintf(&b, " (%s)", roundElapsed(e.Elapsed))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(firstLine(e.Err.Error()))
	}
	for _, a := range e.Attrs {
		b.WriteByte(' ')
		b.WriteString(a.String())
	}
	return b.String()
}

// roundElapsed keeps two or three significant digits: 3ms, 1.25s, 2m3s.
func roundElapsed(d time.Duration) time.Duration {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond)
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Second)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
