package migrate

import (
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
)

// MigrationError is a SQL error raised by a migration or rollback file, placed in the file.
type MigrationError struct {
	Migration *Migration
	Direction Direction
	// File is the script that failed; for a rollback taken from the ledger it names the ledger.
	File string
	// Line and Col are 1-based (Col in characters); both are 0 when the failing spot is not in
	// the file (e.g. a deferred constraint checked at COMMIT).
	Line, Col int
	// Source is the text of line Line, for the caret display.
	Source string
	// NoTransaction is set when the script ran outside a transaction: statements before the
	// failing one have taken effect and stay.
	NoTransaction bool
	Err           *pgconn.PgError
}

// Error renders the message as FILE:LINE:COL: ERROR: message (SQLSTATE code), then the DETAIL,
// HINT and CONTEXT lines and the source line with a caret under the failing character.
func (e *MigrationError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	sev := e.Err.Severity
	if sev == "" {
		sev = "ERROR"
	}
	fmt.Fprintf(&b, ": %s: %s (SQLSTATE %s)", sev, e.Err.Message, e.Err.Code)
	if e.Err.Detail != "" {
		b.WriteString("\nDETAIL: " + e.Err.Detail)
	}
	if e.Err.Hint != "" {
		b.WriteString("\nHINT: " + e.Err.Hint)
	}
	if e.Err.Where != "" {
		b.WriteString("\nCONTEXT: " + strings.ReplaceAll(e.Err.Where, "\n", "\n  "))
	}
	if e.Line > 0 && e.Source != "" {
		num := fmt.Sprint(e.Line)
		pad := strings.Repeat(" ", len(num))
		fmt.Fprintf(&b, "\n %s | %s\n %s | ", num, e.Source, pad)
		// Keep tabs so that the caret lines up under tab-indented SQL.
		i := 0
		for _, r := range e.Source {
			if i >= e.Col-1 {
				break
			}
			if r == '\t' {
				b.WriteByte('\t')
			} else {
				b.WriteByte(' ')
			}
			i++
		}
		b.WriteByte('^')
	}
	if e.Err.Code == "25001" && !e.NoTransaction {
		fmt.Fprintf(&b, "\nNOTE: this statement cannot run in a transaction; put it in its own file that starts with %q",
			"-- "+directivePrefix+noTransaction)
	}
	if e.NoTransaction {
		b.WriteString("\nNOTE: the file runs without a transaction: statements before the failing one have taken effect and were not undone; it is not recorded as applied")
	}
	return b.String()
}

// Unwrap returns the *pgconn.PgError.
func (e *MigrationError) Unwrap() error { return e.Err }

// ExitCode is 1: the operation failed.
func (e *MigrationError) ExitCode() int { return exitcode.Failure }

// PartialError reports a run that stopped partway: Applied lists what completed (and stays
// applied), Failed the migration that did not.
type PartialError struct {
	Applied []Result
	Failed  *Result
	Err     error
}

func (e *PartialError) Error() string { return e.Err.Error() }

// Unwrap returns the cause, so errors.As finds a *MigrationError and errors.Is a context error.
func (e *PartialError) Unwrap() error { return e.Err }

// LockTimeoutError means another session held the migration lock for longer than the lock
// timeout.
type LockTimeoutError struct {
	Timeout time.Duration
	Key     int64
	// Holders are the backend PIDs holding the lock when the wait ended, when they could be read.
	Holders []int32
}

func (e *LockTimeoutError) Error() string {
	msg := fmt.Sprintf("timed out after %s waiting for the migration lock (advisory lock %d)", e.Timeout, e.Key)
	if len(e.Holders) > 0 {
		pids := make([]string, len(e.Holders))
		for i, p := range e.Holders {
			pids[i] = fmt.Sprint(p)
		}
		msg += "; held by backend pid " + strings.Join(pids, ", ") + " (see pg_stat_activity)"
	}
	return msg
}

// ExitCode is 4: timed out.
func (e *LockTimeoutError) ExitCode() int { return exitcode.Timeout }

// Drift is an applied migration whose file no longer matches what was applied.
type Drift struct {
	Version int64  `json:"version"`
	File    string `json:"file"`
	// AppliedName and AppliedChecksum come from the ledger, Name and Checksum from the file.
	AppliedName     string `json:"applied_name"`
	Name            string `json:"name"`
	AppliedChecksum string `json:"applied_checksum"`
	Checksum        string `json:"checksum"`
}

func (d Drift) String() string {
	var what []string
	if d.AppliedChecksum != d.Checksum {
		what = append(what, "content changed since it was applied")
	}
	if d.AppliedName != d.Name {
		what = append(what, fmt.Sprintf("applied as %q", d.AppliedName))
	}
	return fmt.Sprintf("%s: version %d: %s", d.File, d.Version, strings.Join(what, "; "))
}

// DriftError lists applied migrations whose files changed.
type DriftError struct {
	Drifts []Drift
}

func (e *DriftError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d applied migration(s) changed since they were applied (checksum drift):", len(e.Drifts))
	for _, d := range e.Drifts {
		b.WriteString("\n  " + d.String())
	}
	return b.String()
}

// ExitCode is 3: a check found a problem.
func (e *DriftError) ExitCode() int { return exitcode.Check }

// OutOfOrderError lists pending migrations older than the newest applied one (typically from
// a merged branch). Applying them silently would make rollback order differ from apply order.
type OutOfOrderError struct {
	Versions []int64
	Latest   int64
}

func (e *OutOfOrderError) Error() string {
	vs := make([]string, len(e.Versions))
	for i, v := range e.Versions {
		vs[i] = fmt.Sprint(v)
	}
	return fmt.Sprintf("pending migration(s) %s are older than the newest applied version %d; renumber them or allow out-of-order migrations",
		strings.Join(vs, ", "), e.Latest)
}

// ExitCode is 3: a check found a problem.
func (e *OutOfOrderError) ExitCode() int { return exitcode.Check }

// MissingRollbackError lists the steps of a rollback that have neither a rollback file nor a
// rollback stored in the ledger; Down checks this before it changes anything.
type MissingRollbackError struct {
	Versions []int64
	Names    []string
}

func (e *MissingRollbackError) Error() string {
	parts := make([]string, len(e.Versions))
	for i, v := range e.Versions {
		parts[i] = fmt.Sprintf("%d_%s", v, e.Names[i])
	}
	return "no rollback SQL (no .rollback.sql file and none stored in the ledger) for: " + strings.Join(parts, ", ")
}

// ExitCode is 2: nothing was changed.
func (e *MissingRollbackError) ExitCode() int { return exitcode.Usage }
