// Package progress is the one shape in which poststack's long operations
// report what they are doing: migrate, build, ephemeral, pgtest and
// pgnative all take a Func and call it with Events; the command-line core
// renders them (a live board on a terminal, ::group:: under GitHub
// Actions, plain lines otherwise) and logs them. Packages never print.
package progress

import (
	"log/slog"
	"sync"
	"time"
)

// Kind says what an Event reports.
type Kind string

// The kinds of Event. A step is bracketed by Start and one of Done or
// Failed with the same Step; Wait, Info and Warn may come at any time.
const (
	// Start: Step begins.
	Start Kind = "start"
	// Done: Step ended well after Elapsed.
	Done Kind = "done"
	// Failed: Step ended with Err after Elapsed. Renderers show only that
	// it failed; the operation returns Err, and the caller reports it.
	Failed Kind = "failed"
	// Wait: the operation is blocked on something outside it (a lock held
	// by another session, a server coming up); Message says what.
	Wait Kind = "wait"
	// Info: a fact for the log (cache hits, timings); not shown to people
	// unless they asked for debug output.
	Info Kind = "info"
	// Warn: a problem that did not stop the operation; Message says what,
	// Err may say why.
	Warn Kind = "warn"
)

// Event is one report of a long operation.
type Event struct {
	// Op is the operation's package: "migrate", "build", "ephemeral",
	// "pgtest", "pgnative".
	Op   string
	Kind Kind
	// Step names what the event is about as people read it, the same on a
	// step's Start and its end: "up 0002_users", "api", "postgres".
	Step string
	// Message says what happened, for Wait, Info and Warn.
	Message string
	// Elapsed is how long the step ran (Done, Failed) or waited.
	Elapsed time.Duration
	Err     error
	// Log is the path of a file holding the step's output, when it has one
	// (a build log); renderers may show it under Actions.
	Log string
	// Attrs are structured details for the log file.
	Attrs []slog.Attr
	// Data is the package's own typed value for callers that want more
	// than the common fields (a migrate.Event, a build.Event); nil if the
	// package has none.
	Data any
}

// Func receives events. Operations may call it from several goroutines,
// but never concurrently: calls are serialised by the operation (see
// Serialized).
type Func func(Event)

// Emit calls f with e; a nil Func discards it.
func (f Func) Emit(e Event) {
	if f != nil {
		f(e)
	}
}

// Serialized returns a Func that passes events to f one at a time, for an
// operation that reports from several goroutines, or that hands the same Func
// to a package that reports from its own (a nil f stays nil).
func (f Func) Serialized() Func {
	if f == nil {
		return nil
	}
	var mu sync.Mutex
	return func(e Event) {
		mu.Lock()
		defer mu.Unlock()
		f(e)
	}
}
