package migrate

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlscan"
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

// Error is the one-line message: FILE:LINE:COL: ERROR: message (SQLSTATE code), or FILE: … when
// the failing spot is not in the file. The server's message is cut to maxServerText bytes: it
// can quote the input. Detail has the rest, for a person.
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
	fmt.Fprintf(&b, ": %s: %s (SQLSTATE %s)", sev, oneLine(clip(e.Err.Message)), e.Err.Code)
	return b.String()
}

// Detail is what a person needs besides Error, one item a line: the server's DETAIL, HINT and
// CONTEXT, the source line with a caret under the failing character, and a NOTE on what to do
// or what stays in effect; "" when there is nothing to add. A long source line is cut to an
// excerpt around the caret and the server's texts to maxServerText bytes each: a 10 MB line
// must not become 10 MB of stderr. The CLI prints it under the error line; machine-readable
// output (--json) carries Error only.
func (e *MigrationError) Detail() string {
	var lines []string
	if e.Err.Detail != "" {
		lines = append(lines, "DETAIL: "+clip(e.Err.Detail))
	}
	if e.Err.Hint != "" {
		lines = append(lines, "HINT: "+clip(e.Err.Hint))
	}
	if e.Err.Where != "" {
		lines = append(lines, "CONTEXT: "+strings.ReplaceAll(clip(e.Err.Where), "\n", "\n  "))
	}
	if e.Line > 0 && e.Source != "" {
		lines = append(lines, caretLines(e.Line, e.Source, e.Col))
	}
	if e.Err.Code == "25001" && !e.NoTransaction {
		lines = append(lines, fmt.Sprintf("NOTE: this statement cannot run in a transaction; put it in its own file that starts with %q",
			"-- "+directivePrefix+noTransaction))
	}
	if e.NoTransaction {
		lines = append(lines, "NOTE: the file runs without a transaction: statements before the failing one have taken effect and were not undone; it is not recorded as applied")
	}
	return strings.Join(lines, "\n")
}

// caretLines draws line number num of the source, an excerpt of it around character col, and
// a caret under that character on the line below.
func caretLines(num int, source string, col int) string {
	var b strings.Builder
	text, caret := caretExcerpt(source, col)
	n := fmt.Sprint(num)
	fmt.Fprintf(&b, " %s | %s\n %s | ", n, text, strings.Repeat(" ", len(n)))
	// Keep tabs so that the caret lines up under tab-indented SQL.
	i := 0
	for _, r := range text {
		if i >= caret-1 {
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
	return b.String()
}

// oneLine keeps a server message on the error's one line: Postgres messages are one line, but
// one raised by a migration (RAISE EXCEPTION) can hold anything.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// Limits of what an error prints from the source and from the server.
const (
	// excerptWidth is how many characters of a source line are shown around the caret.
	excerptWidth = 200
	// maxServerText bounds each of the server's message, DETAIL, HINT and CONTEXT.
	maxServerText = 1000
)

// caretExcerpt returns at most excerptWidth characters of line around character col (1-based),
// with "…" where it was cut, and the column of col in the excerpt.
func caretExcerpt(line string, col int) (string, int) {
	n := utf8.RuneCountInString(line)
	if n <= excerptWidth {
		return line, col
	}
	start := min(max(col-1-excerptWidth/2, 0), n-excerptWidth)
	from, to := runeOffset(line, start), runeOffset(line, start+excerptWidth)
	text, caret := line[from:to], col-start
	if start > 0 {
		text, caret = "…"+text, caret+1
	}
	if start+excerptWidth < n {
		text += "…"
	}
	return text, caret
}

// runeOffset returns the byte offset of the n-th character of s (0-based), or len(s).
func runeOffset(s string, n int) int {
	for i := range s {
		if n == 0 {
			return i
		}
		n--
	}
	return len(s)
}

// clip cuts s to maxServerText bytes and says how much it left out.
func clip(s string) string {
	head, more := cutText(s, maxServerText)
	if more == 0 {
		return s
	}
	return fmt.Sprintf("%s… (%d more bytes)", head, more)
}

// cutText returns the longest prefix of s of at most n bytes that ends at a character boundary,
// and how many bytes it leaves out.
func cutText(s string, n int) (head string, more int) {
	if len(s) <= n {
		return s, 0
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n], len(s) - n
}

// Unwrap returns the *pgconn.PgError.
func (e *MigrationError) Unwrap() error { return e.Err }

// ExitCode is 1: the operation failed.
func (e *MigrationError) ExitCode() int { return exitcode.Failure }

// HalfAppliedError reports a file run without a transaction that was interrupted: the
// statements that completed stay in effect, the rest did not run, and the ledger was not
// changed. It unwraps to the context's error, so it is exit 130.
type HalfAppliedError struct {
	File      string
	Direction Direction
	// Ran is how many statements completed, Total how many the file has.
	Ran, Total int
	// RanToLine is the last line of the last statement that completed (0 when none did).
	RanToLine int
	// Line and Col are where the statement that was interrupted starts.
	Line, Col int
	// Running is set when that statement was running (and was cancelled), not yet sent.
	Running bool
	// Concurrently is set when that statement builds an index CONCURRENTLY, which leaves an
	// invalid index behind when cancelled.
	Concurrently bool
	Err          error
}

var concurrently = regexp.MustCompile(`(?i)\bconcurrently\b`)

func newHalfAppliedError(script Script, dir Direction, stmts []sqlscan.Statement, i int, running bool, err error) *HalfAppliedError {
	e := &HalfAppliedError{File: script.File, Direction: dir, Ran: i, Total: len(stmts),
		Line: stmts[i].Line, Col: stmts[i].Col, Running: running, Err: err}
	if i > 0 {
		last := stmts[i-1]
		e.RanToLine = last.Line + strings.Count(last.SQL, "\n")
	}
	e.Concurrently = running && concurrently.MatchString(stmts[i].SQL)
	return e
}

// HalfDone says what the interruption left behind, without the context's error: the CLI
// prints it after "interrupted".
func (e *HalfAppliedError) HalfDone() string {
	var b strings.Builder
	switch e.Ran {
	case 0:
		fmt.Fprintf(&b, "%s: no statement of it completed", e.File)
	case 1:
		fmt.Fprintf(&b, "%s is half-applied: statement 1 of %d ran (up to line %d) and stays in effect", e.File, e.Total, e.RanToLine)
	default:
		fmt.Fprintf(&b, "%s is half-applied: statements 1-%d of %d ran (up to line %d) and stay in effect", e.File, e.Ran, e.Total, e.RanToLine)
	}
	what := "did not start"
	if e.Running {
		what = "was cancelled"
	}
	fmt.Fprintf(&b, "; statement %d (line %d:%d) %s", e.Ran+1, e.Line, e.Col, what)
	if e.Ran+1 < e.Total {
		b.WriteString(" and the rest did not run")
	}
	if e.Concurrently {
		b.WriteString("; a cancelled CONCURRENTLY build leaves an INVALID index behind: drop it")
	}
	if e.Direction == DirectionDown {
		b.WriteString("; the file runs without a transaction and the migration is still recorded as applied")
	} else {
		b.WriteString("; the file runs without a transaction and is not recorded as applied")
	}
	if e.Ran > 0 {
		b.WriteString(": undo or finish those statements by hand before running it again")
	}
	return b.String()
}

func (e *HalfAppliedError) Error() string { return e.HalfDone() + ": " + e.Err.Error() }

// Unwrap returns the context's error.
func (e *HalfAppliedError) Unwrap() error { return e.Err }

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
