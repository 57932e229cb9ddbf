package migrate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/sqlscan"
)

// cancelGrace is how long a cancelled migration may take to stop after the server was asked to
// cancel it, before the connection is dropped (which also rolls the transaction back).
const cancelGrace = 10 * time.Second

// exec sends sql as one simple-protocol query and returns how many of its statements
// completed. Cancelling ctx sends the server a cancel request, so the connection stays usable
// and an open transaction can be rolled back; if the server does not react within cancelGrace,
// the connection is dropped.
func (m *Migrator) exec(ctx context.Context, sql string) (completed int, err error) {
	pg := m.conn.PgConn()
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	execDone := make(chan struct{})
	watcherDone := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(watcherDone)
		cctx, cancel := context.WithTimeout(hard, cancelGrace)
		defer cancel()
		if pg.CancelRequest(cctx) != nil {
			hardCancel()
			return
		}
		t := time.NewTimer(cancelGrace)
		defer t.Stop()
		select {
		case <-execDone:
		case <-t.C:
			hardCancel()
		}
	})
	defer func() {
		close(execDone)
		if !stop() {
			// Wait for the cancel request to be delivered, so it cannot hit the next query.
			<-watcherDone
		}
	}()
	mrr := pg.Exec(hard, sql)
	for mrr.NextResult() {
		if _, err := mrr.ResultReader().Close(); err != nil {
			break
		}
		completed++
	}
	return completed, mrr.Close()
}

// rollbackIfOpen ends a transaction a failed query left open.
func (m *Migrator) rollbackIfOpen(ctx context.Context) {
	pg := m.conn.PgConn()
	if pg.IsClosed() || pg.TxStatus() == 'I' {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	// A late-arriving cancel request can abort a ROLLBACK too; try again then.
	for attempt := 0; attempt < 3 && !pg.IsClosed() && pg.TxStatus() != 'I'; attempt++ {
		_ = pg.Exec(rctx, "ROLLBACK").Close()
	}
}

// quoteLiteral quotes s as an E” string literal, which reads the same whatever
// standard_conforming_strings is.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	return "E'" + strings.ReplaceAll(s, "'", "''") + "'"
}

func (m *Migrator) setLockTimeout(local bool) string {
	ms := m.cfg.stmtLockTimeout.Milliseconds()
	if m.cfg.stmtLockTimeout > 0 && ms == 0 {
		ms = 1
	}
	if local {
		return fmt.Sprintf("SET LOCAL lock_timeout = %d", ms)
	}
	return fmt.Sprintf("SET lock_timeout = %d", ms)
}

func (m *Migrator) applyUp(ctx context.Context, mig *Migration) (Result, error) {
	res := Result{Version: mig.Version, Name: mig.Name, File: mig.Up.File, Direction: DirectionUp, Migration: mig}
	m.emitResult(EventStart, res, nil)
	start := m.cfg.now()
	var rollback *string
	if mig.Down != nil {
		rollback = &mig.Down.SQL
	}
	var err error
	if mig.Up.NoTransaction {
		err = m.runStatements(ctx, mig, DirectionUp, mig.Up)
		if err == nil {
			err = m.record(ctx, mig, rollback, m.cfg.now().Sub(start))
		}
	} else {
		rb := "NULL"
		if rollback != nil {
			rb = quoteLiteral(*rollback)
		}
		prefix := []string{"BEGIN", m.setLockTimeout(true),
			fmt.Sprintf("INSERT INTO %s (version, name, checksum, rollback_sql, applied_by) VALUES (%d, %s, %s, %s, %s)",
				m.ledger, mig.Version, quoteLiteral(mig.Name), quoteLiteral(mig.Checksum), rb, quoteLiteral(m.cfg.appliedBy))}
		suffix := fmt.Sprintf("\n;\nUPDATE %s SET execution_time = clock_timestamp() - now() WHERE version = %d;\nCOMMIT;", m.ledger, mig.Version)
		err = m.runTransaction(ctx, mig, DirectionUp, mig.Up, prefix, suffix)
	}
	res.Duration = m.cfg.now().Sub(start)
	m.emitResult(EventDone, res, err)
	return res, err
}

func (m *Migrator) applyDown(ctx context.Context, st Step) (Result, error) {
	res := Result{Version: st.Version, Name: st.Name, File: st.Script.File, Direction: DirectionDown, Migration: st.Migration}
	m.emitResult(EventStart, res, nil)
	start := m.cfg.now()
	var err error
	if st.Script.NoTransaction {
		err = m.runStatements(ctx, st.Migration, DirectionDown, st.Script)
		if err == nil {
			if _, derr := m.conn.Exec(ctx, "DELETE FROM "+m.ledger+" WHERE version = $1", st.Version); derr != nil {
				err = fmt.Errorf("%s ran completely but version %d could not be removed from %s; its changes are in place: %w",
					st.Script.File, st.Version, m.ledger, derr)
			}
		}
	} else {
		prefix := []string{"BEGIN", m.setLockTimeout(true), fmt.Sprintf("DELETE FROM %s WHERE version = %d", m.ledger, st.Version)}
		err = m.runTransaction(ctx, st.Migration, DirectionDown, st.Script, prefix, "\n;\nCOMMIT;")
	}
	res.Duration = m.cfg.now().Sub(start)
	m.emitResult(EventDone, res, err)
	return res, err
}

// runTransaction sends the prefix statements (BEGIN first), the script and suffix as one query;
// suffix ends with COMMIT. The prefix is a list so that the statements that complete before the
// script are counted, not assumed.
func (m *Migrator) runTransaction(ctx context.Context, mig *Migration, dir Direction, script Script, prefix []string, suffix string) error {
	head := strings.Join(prefix, ";\n") + ";\n"
	completed, err := m.exec(ctx, head+script.SQL+suffix)
	if err == nil && m.conn.PgConn().TxStatus() != 'I' {
		// The script swallowed the COMMIT (an unterminated quote or comment that our suffix
		// happened to close); nothing may be kept.
		m.rollbackIfOpen(ctx)
		return fmt.Errorf("%s: the file does not end cleanly (unterminated quote, comment or dollar quote?); rolled back", script.File)
	}
	if err == nil {
		return nil
	}
	m.rollbackIfOpen(ctx)
	if ctx.Err() != nil {
		if m.conn.IsClosed() {
			// The server did not stop in time and the connection was dropped: it either
			// finished the whole query, COMMIT included, or discarded all of it.
			return fmt.Errorf("%s: interrupted and disconnected; the %s and its ledger change were committed together or not at all, so check the ledger: %w",
				script.File, noun(dir), ctx.Err())
		}
		return fmt.Errorf("%s: interrupted; the %s was rolled back: %w", script.File, noun(dir), ctx.Err())
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if m.conn.IsClosed() {
			return fmt.Errorf("%s: connection lost; the file and its ledger row commit together or not at all, so check the ledger to see whether it was applied: %w", script.File, err)
		}
		return fmt.Errorf("%s: %w", script.File, err)
	}
	me := &MigrationError{Migration: mig, Direction: dir, File: script.File, Err: pgErr}
	if pgErr.Position > 0 {
		pos := int(pgErr.Position) - utf8.RuneCountInString(head)
		if pos >= 1 && pos <= utf8.RuneCountInString(script.SQL)+1 {
			me.Line, me.Col = sqlscan.CharPosition(script.SQL, pos)
		}
	} else if i := completed - len(prefix); i >= 0 {
		// Without a position (a runtime error), the count of statements that completed before
		// the error says which one failed; the server splits at the same semicolons.
		if stmts := sqlscan.Split(script.SQL); i < len(stmts) {
			me.Line, me.Col = stmts[i].Line, stmts[i].Col
		}
	}
	me.Source = sourceLine(script.SQL, me.Line)
	return me
}

// runStatements runs a no-transaction script statement by statement.
func (m *Migrator) runStatements(ctx context.Context, mig *Migration, dir Direction, script Script) (err error) {
	var old string
	if err := m.conn.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&old); err != nil {
		return fmt.Errorf("%s: read lock_timeout: %w", script.File, err)
	}
	if _, err := m.exec(ctx, m.setLockTimeout(false)); err != nil {
		return fmt.Errorf("%s: set lock_timeout: %w", script.File, err)
	}
	defer func() {
		if m.conn.IsClosed() {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, rerr := m.conn.Exec(rctx, "SELECT set_config('lock_timeout', $1, false)", old); rerr != nil && err == nil {
			err = fmt.Errorf("%s: restore lock_timeout: %w", script.File, rerr)
		}
	}()
	stmts := sqlscan.Split(script.SQL)
	for i, st := range stmts {
		if ctx.Err() != nil {
			return newHalfAppliedError(script, dir, stmts, i, false, ctx.Err())
		}
		if _, err := m.exec(ctx, st.SQL); err != nil {
			m.rollbackIfOpen(ctx)
			if ctx.Err() != nil {
				return newHalfAppliedError(script, dir, stmts, i, true, ctx.Err())
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) {
				return fmt.Errorf("%s:%d:%d: %w", script.File, st.Line, st.Col, err)
			}
			me := &MigrationError{Migration: mig, Direction: dir, File: script.File, Err: pgErr, NoTransaction: true,
				Line: st.Line, Col: st.Col}
			if pgErr.Position > 0 {
				me.Line, me.Col = st.Position(int(pgErr.Position))
			}
			me.Source = sourceLine(script.SQL, me.Line)
			return me
		}
	}
	if m.conn.PgConn().TxStatus() != 'I' {
		m.rollbackIfOpen(ctx)
		return fmt.Errorf("%s: the file leaves a transaction open (BEGIN without COMMIT); it was rolled back and not recorded", script.File)
	}
	return nil
}

func noun(dir Direction) string {
	if dir == DirectionDown {
		return "rollback"
	}
	return "migration"
}

// sourceLine returns line n (1-based) of text, or "" when n is 0.
func sourceLine(text string, n int) string {
	if n <= 0 {
		return ""
	}
	for i := 1; i < n; i++ {
		_, rest, ok := strings.Cut(text, "\n")
		if !ok {
			return ""
		}
		text = rest
	}
	line, _, _ := strings.Cut(text, "\n")
	return line
}
