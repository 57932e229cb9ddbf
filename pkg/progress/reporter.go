package progress

import (
	"log/slog"
	"time"
)

// Reporter is how an operation sends its events: Op filled in, calls
// serialised, details given as slog's key-value pairs. The zero Reporter
// discards everything.
type Reporter struct {
	op string
	f  Func
}

// NewReporter returns a Reporter of op's events to f (Serialized); f may
// be nil.
func NewReporter(op string, f Func) Reporter {
	return Reporter{op: op, f: f.Serialized()}
}

// Func is where r sends events, for handing to another package (whose
// events keep their own Op) so that its calls are serialised with r's.
func (r Reporter) Func() Func { return r.f }

// Emit sends e as an event of r's operation.
func (r Reporter) Emit(e Event) {
	e.Op = r.op
	r.f.Emit(e)
}

// Info reports a fact for the log.
func (r Reporter) Info(msg string, elapsed time.Duration, args ...any) {
	r.Emit(Event{Kind: Info, Message: msg, Elapsed: elapsed, Attrs: attrs(args)})
}

// Warn reports a problem the operation works around.
func (r Reporter) Warn(msg string, err error, args ...any) {
	r.Emit(Event{Kind: Warn, Message: msg, Err: err, Attrs: attrs(args)})
}

// Step reports step starting and returns the function that reports its
// end: Done, or Failed when err is not nil, with the time since the start.
func (r Reporter) Step(step string, args ...any) (end func(err error, args ...any)) {
	began := time.Now()
	r.Emit(Event{Kind: Start, Step: step, Attrs: attrs(args)})
	return func(err error, args ...any) {
		e := Event{Kind: Done, Step: step, Elapsed: time.Since(began), Err: err, Attrs: attrs(args)}
		if err != nil {
			e.Kind = Failed
		}
		r.Emit(e)
	}
}

func attrs(args []any) []slog.Attr {
	if len(args) == 0 {
		return nil
	}
	return slog.Group("", args...).Value.Group()
}
