package envdb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// SeedError is a SQL error raised by a seed file, placed in the file.
type SeedError struct {
	File string
	// Line and Col are 1-based (Col in characters); 0 when the failing spot is not in the file.
	Line, Col int
	Err       *pgconn.PgError
}

// maxMessage bounds the server's message in Error: it can quote the input.
const maxMessage = 300

// Error is FILE:LINE:COL: ERROR: message (SQLSTATE code).
func (e *SeedError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	msg := strings.Join(strings.Fields(e.Err.Message), " ")
	if len(msg) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	sev := e.Err.Severity
	if sev == "" {
		sev = "ERROR"
	}
	fmt.Fprintf(&b, ": %s: %s (SQLSTATE %s)", sev, msg, e.Err.Code)
	return b.String()
}

// Detail is the server's DETAIL, HINT and CONTEXT, one a line.
func (e *SeedError) Detail() string {
	var lines []string
	for _, l := range []struct{ label, text string }{{"DETAIL", e.Err.Detail}, {"HINT", e.Err.Hint}, {"CONTEXT", e.Err.Where}} {
		if l.text != "" {
			lines = append(lines, l.label+": "+strings.ReplaceAll(l.text, "\n", "\n  "))
		}
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the server's error.
func (e *SeedError) Unwrap() error { return e.Err }

// ExitCode is 1: the operation failed.
func (e *SeedError) ExitCode() int { return exitcode.Failure }

// runSeed runs a seed file as one simple-protocol query: one round trip, and one implicit
// transaction unless the file has its own.
func runSeed(ctx context.Context, conn *pgx.Conn, sd seed, rep progress.Reporter) (err error) {
	end := rep.Step("seed " + sd.file)
	defer func() { end(err) }()
	if strings.TrimSpace(sd.text) == "" {
		return nil
	}
	_, err = conn.Exec(ctx, sd.text, pgx.QueryExecModeSimpleProtocol)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		se := &SeedError{File: sd.file, Err: pgErr}
		if pgErr.Position > 0 {
			se.Line, se.Col = sqlscan.CharPosition(sd.text, int(pgErr.Position))
		}
		return se
	}
	if err != nil {
		return fmt.Errorf("envdb: seed %s: %w", sd.file, err)
	}
	return nil
}
