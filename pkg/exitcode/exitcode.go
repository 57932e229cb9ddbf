// Package exitcode holds the exit-code table shared by every poststack binary
// and the one function that picks a code from an error.
package exitcode

import (
	"context"
	"errors"
	"fmt"
)

// The exit codes of DESIGN.md, shared by all four binaries.
const (
	OK          = 0   // done
	Failure     = 1   // the operation failed (SQL error, engine error, container exited non-zero)
	Usage       = 2   // bad usage or bad input; nothing was changed
	Check       = 3   // a check found a problem (undefined variables, drift, verify mismatch)
	Timeout     = 4   // timed out waiting for something
	Interrupted = 130 // interrupted by SIGINT/SIGTERM
)

// Error attaches an exit code to an error. Wrap errors in it where the code
// is known; Of finds it anywhere in the chain.
type Error struct {
	Code int
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// With returns err carrying code, or nil when err is nil.
func With(code int, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Err: err}
}

// Usagef formats a bad-usage or bad-input error (exit 2).
func Usagef(format string, args ...any) error {
	return &Error{Code: Usage, Err: fmt.Errorf(format, args...)}
}

// Checkf formats a failed-check error (exit 3).
func Checkf(format string, args ...any) error {
	return &Error{Code: Check, Err: fmt.Errorf(format, args...)}
}

// Coder is implemented by errors that know their own exit code.
type Coder interface{ ExitCode() int }

// Of picks the exit code for err: 0 for nil, the code of the outermost
// *Error or Coder in the chain, 130 for cancellation, 4 for a deadline,
// and 1 for anything else.
func Of(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c Coder
	if errors.As(err, &c) {
		return c.ExitCode()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return Interrupted
	case errors.Is(err, context.DeadlineExceeded):
		return Timeout
	}
	return Failure
}
