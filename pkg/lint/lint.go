package lint

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgschema"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// Finding is one thing the review found, at a statement of a migration file.
type Finding struct {
	Rule    string `json:"rule"`
	Level   Level  `json:"level"`
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Version int64  `json:"version"`
	// Message says what the server did, and the safe way.
	Message string `json:"message"`
	// Statement is the statement's first line, trimmed, at most 80 characters.
	Statement string `json:"statement"`
	// Reason is the lint-ignore reason of an ignored finding.
	Reason string `json:"reason,omitempty"`
}

// Options tune Review.
type Options struct {
	// Rows is how many rows Review puts in every table before the changes (0: DefaultRows).
	Rows int
	// LockTimeout is the lock_timeout the changes run with, as ps-migrate runs them: 0 takes the
	// Migrator's (migrate.WithStatementLockTimeout in Migrate, else its default); negative runs
	// them with none, which is when lock-without-timeout can fire.
	LockTimeout time.Duration
	// Migrate configures the Migrator Review applies the base and checks rollbacks with (ledger
	// schema and table, …).
	Migrate []migrate.Option
	// Progress receives one step per reviewed migration; nil is silent.
	Progress progress.Func
}

// Reviewed is one new migration as reviewed.
type Reviewed struct {
	Version    int64  `json:"version"`
	Name       string `json:"name"`
	File       string `json:"file"`
	Statements int    `json:"statements"`
	DurationMS int64  `json:"duration_ms"`
}

// Report is what Review found.
type Report struct {
	Reviewed []Reviewed
	// Findings are sorted by file, line and column.
	Findings []Finding
	// Ignored are the findings a lint-ignore comment silenced, with its reason.
	Ignored []Finding
	// Before is the schema after the base, After the one after the changes (ledger excluded).
	Before *pgschema.Schema
	After  *pgschema.Schema
	// Diff is pgschema.Diff(Before, After).
	Diff []string
	// Incomplete, when set, says why the review stopped before the last change (a rollback
	// that did not restore the schema left it unable to apply the change again); the findings
	// up to there stand, and After is the schema where it stopped.
	Incomplete string
}

// Errors counts the error findings.
func (r *Report) Errors() int { return r.count(Error) }

// Warnings counts the warning findings.
func (r *Report) Warnings() int { return r.count(Warning) }

func (r *Report) count(l Level) int {
	n := 0
	for _, f := range r.Findings {
		if f.Level == l {
			n++
		}
	}
	return n
}

// Review brings scratch to the base state, puts rows in every table, then applies each change
// (in version order) statement by statement and reports what the server did; see the package
// documentation. scratch must be empty, or hold base (or the first migrations of it) applied
// by the ledger opts.Migrate names: anything else is refused (exit 2) before anything runs. A
// change that fails with an SQL error is returned as a *migrate.MigrationError (exit 1); a
// failing base as migrate's Up returns it. The changes stay applied in scratch.
func Review(ctx context.Context, scratch *pgx.Conn, base, changes []*migrate.Migration, opts Options) (*Report, error) {
	all := slices.Concat(base, changes)
	m, err := migrate.New(scratch, all, opts.Migrate...)
	if err != nil {
		return nil, err
	}
	if len(base) > 0 && len(changes) > 0 && changes[0].Version <= base[len(base)-1].Version {
		return nil, exitcode.Usagef("lint: change %s has version %d, not above the base's newest, %d", changes[0].Up.File, changes[0].Version, base[len(base)-1].Version)
	}
	r := &reviewer{conn: scratch, m: m, ledgerSchema: m.LedgerSchema(), progress: opts.Progress}
	switch {
	case opts.LockTimeout < 0:
		r.lockTimeout = 0
	case opts.LockTimeout > 0:
		r.lockTimeout = opts.LockTimeout
	default:
		r.lockTimeout = m.StatementLockTimeout()
	}
	defer r.close(ctx)

	// Everything about the files is checked before anything runs.
	plans := make([]changePlan, len(changes))
	for i, mig := range changes {
		text, err := mig.Up.Text()
		if err != nil {
			return nil, err
		}
		p := changePlan{mig: mig, text: text, stmts: sqlscan.Split(text)}
		if p.ignores, err = parseIgnores(mig.Up.File, text, p.stmts); err != nil {
			return nil, err
		}
		if mig.Down != nil {
			down, err := mig.Down.Text()
			if err != nil {
				return nil, err
			}
			if p.rollbackIgnores, err = parseRollbackIgnores(mig.Down.File, down); err != nil {
				return nil, err
			}
			p.downText, p.downStmts = down, sqlscan.Split(down)
		}
		plans[i] = p
	}
	if err := r.checkScratch(ctx, base); err != nil {
		return nil, err
	}
	if len(base) > 0 {
		if _, err := m.Up(ctx, base[len(base)-1].Version); err != nil {
			return nil, err
		}
	} else if err := m.EnsureLedger(ctx); err != nil {
		return nil, err
	}
	rows := opts.Rows
	if rows <= 0 {
		rows = DefaultRows
	}
	if err := seed(ctx, scratch, r.ledgerSchema, rows); err != nil {
		return nil, err
	}
	rep := &Report{}
	if rep.Before, err = r.snapshot(ctx); err != nil {
		return nil, err
	}

	current := rep.Before // the whole schema now, when known
	for _, p := range plans {
		step := "lint " + migrate.Label(p.mig.Version, p.mig.Name, p.mig)
		r.progress.Emit(progress.Event{Op: "lint", Kind: progress.Start, Step: step})
		stepStart := time.Now()
		// The rollback check: in one transaction that is rolled back, when it can be made
		// there (see restores); else committed after the change, with the schema before it, of
		// the tables it and its rollback touch when a trial can tell them (see trial), else
		// the whole schema.
		check := p.mig.Down != nil
		var before *pgschema.Schema
		var only *pgschema.Only
		if check {
			restored, trialOnly, err := r.restores(ctx, p)
			if err != nil {
				return nil, err
			}
			check = !restored
			if check && trialOnly != nil {
				// The committed steps check again, to be sure and to say what differs, on
				// the relations the trial found; the trial left the state before p.
				only = trialOnly
				if before, err = r.snapshotOnly(ctx, only); err != nil {
					return nil, err
				}
			}
		}
		if check {
			if only == nil && current == nil {
				if current, err = r.snapshot(ctx); err != nil {
					return nil, err
				}
			}
			if only == nil {
				before = current
			}
		}
		start := time.Now()
		err := r.review(ctx, p, rep)
		elapsed := time.Since(start)
		if err != nil {
			r.progress.Emit(progress.Event{Op: "lint", Kind: progress.Failed, Step: step, Elapsed: elapsed, Err: err})
			return nil, err
		}
		rep.Reviewed = append(rep.Reviewed, Reviewed{Version: p.mig.Version, Name: p.mig.Name, File: p.mig.Up.File,
			Statements: len(p.stmts), DurationMS: elapsed.Milliseconds()})
		current = nil
		if check {
			current, err = r.checkRollback(ctx, p, before, only, rep)
			if err != nil {
				return nil, err
			}
		}
		r.progress.Emit(progress.Event{Op: "lint", Kind: progress.Done, Step: step, Elapsed: time.Since(stepStart)})
		if rep.Incomplete != "" {
			break
		}
	}
	if current == nil {
		if current, err = r.snapshot(ctx); err != nil {
			return nil, err
		}
	}
	rep.After = current
	rep.Diff = pgschema.Diff(rep.Before, rep.After)
	sortFindings(rep.Findings)
	sortFindings(rep.Ignored)
	return rep, nil
}

func sortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if c := cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col)); c != 0 {
			return c < 0
		}
		return a.Rule < b.Rule
	})
}

// changePlan is one change with what was read from its files before anything ran.
type changePlan struct {
	mig             *migrate.Migration
	text            string
	stmts           []sqlscan.Statement
	ignores         ignores
	rollbackIgnores ignores
	downText        string              // the rollback file, if any
	downStmts       []sqlscan.Statement // of it
}

// reviewer is the state of one Review.
type reviewer struct {
	conn         *pgx.Conn
	m            *migrate.Migrator
	ledgerSchema string
	lockTimeout  time.Duration // 0: none
	progress     progress.Func
	// blocker is the second connection that finds the locks of statements that cannot run in
	// a transaction (see outside); pid is the backend of conn.
	blocker *pgx.Conn
	pid     uint32
}

func (r *reviewer) close(ctx context.Context) {
	if r.blocker != nil {
		_ = r.blocker.Close(context.WithoutCancel(ctx))
	}
}

func (r *reviewer) snapshot(ctx context.Context) (*pgschema.Schema, error) {
	return r.snapshotOnly(ctx, nil)
}

// snapshotOnly is snapshot restricted to some tables (nil: all).
func (r *reviewer) snapshotOnly(ctx context.Context, only *pgschema.Only) (*pgschema.Schema, error) {
	return pgschema.Snapshot(ctx, r.conn, pgschema.Options{Exclude: []string{r.ledgerSchema}, Only: only})
}

// checkScratch refuses a scratch database that holds anything but (a prefix of) base applied.
func (r *reviewer) checkScratch(ctx context.Context, base []*migrate.Migration) error {
	states, err := r.m.Status(ctx)
	if err != nil {
		return err
	}
	inBase := map[int64]bool{}
	for _, b := range base {
		inBase[b.Version] = true
	}
	applied := 0
	for _, st := range states {
		switch {
		case st.Status == migrate.StatusPending:
		case st.Status == migrate.StatusApplied && inBase[st.Version]:
			applied++
		case st.Status == migrate.StatusApplied:
			return exitcode.Usagef("scratch database already has %s applied, which is not in the base: give an empty database", st.File)
		case st.Status == migrate.StatusChanged:
			return exitcode.Usagef("scratch database has another version of %s applied: give an empty database", st.File)
		default:
			return exitcode.Usagef("scratch database has version %d (%s) applied, which is not in the base: give an empty database", st.Version, st.Name)
		}
	}
	if applied > 0 {
		return nil
	}
	err = migrate.CheckEmpty(ctx, r.conn, r.mOptions()...)
	var ne *migrate.NotEmptyError
	if errors.As(err, &ne) && ne.Ledger != "" && len(ne.Objects) == 0 && ne.More == 0 {
		return nil // an empty ledger
	}
	return err
}

func (r *reviewer) mOptions() []migrate.Option {
	schema, table, _ := strings.Cut(r.m.Ledger(), ".")
	return []migrate.Option{migrate.WithSchema(unquote(schema)), migrate.WithTable(unquote(table))}
}

// unquote undoes pgx.Identifier.Sanitize for one part.
func unquote(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(s, `"`), `"`), `""`, `"`)
}

// exec sends one statement in the simple protocol.
func (r *reviewer) exec(ctx context.Context, sql string) error {
	_, err := r.conn.PgConn().Exec(ctx, sql).ReadAll()
	return err
}

func (r *reviewer) rollback(ctx context.Context) {
	if r.conn.PgConn().TxStatus() != 'I' {
		_ = r.exec(context.WithoutCancel(ctx), "ROLLBACK")
	}
}

func (r *reviewer) lockTimeoutMS() int64 {
	ms := r.lockTimeout.Milliseconds()
	if r.lockTimeout > 0 && ms == 0 {
		ms = 1
	}
	return ms
}

// review applies one change and records its findings in rep.
func (r *reviewer) review(ctx context.Context, p changePlan, rep *Report) error {
	if p.mig.Up.NoTransaction {
		return r.reviewOutside(ctx, p, rep, false)
	}
	b, err := takeBaseline(ctx, r.conn, r.ledgerSchema)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := r.exec(ctx, fmt.Sprintf("BEGIN; SET LOCAL lock_timeout = %d", r.lockTimeoutMS())); err != nil {
		r.rollback(ctx)
		return fmt.Errorf("%s: begin: %w", p.mig.Up.File, err)
	}
	defer r.rollback(ctx)
	prev, err := observe(ctx, r.conn, b)
	if err != nil {
		return err
	}
	var found []pending
	j := newJudge(p, b)
	for i, st := range p.stmts {
		if err := r.exec(ctx, st.SQL); err != nil {
			r.rollback(ctx)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "25001" {
				r.add(rep, p, i, Finding{Rule: RuleNeedsNoTransaction, Message: fmt.Sprintf(
					"the server refused it inside a transaction (%s): put it in a migration of its own that starts with -- poststack:no-transaction (reviewed here as if it were)",
					pgErr.Message)})
				return r.reviewOutside(ctx, p, rep, true)
			}
			return statementError(p, st, err, false)
		}
		cur, err := observe(ctx, r.conn, b)
		if err != nil {
			return err
		}
		found = append(found, j.judge(i, diff(b, prev, cur, true))...)
		prev = cur
	}
	if err := r.m.RecordApplied(ctx, p.mig, time.Since(start)); err != nil {
		return err
	}
	if err := r.exec(ctx, "COMMIT"); err != nil {
		return statementError(p, sqlscan.Statement{}, err, false)
	}
	for _, f := range found {
		r.add(rep, p, f.stmt, f.f)
	}
	return nil
}

// reviewOutside applies a no-transaction change as migrate does, statement by statement, each
// that can run in a transaction inside one of its own so that it can be observed (which
// changes nothing: outside a transaction block it would be a transaction of its own). One
// that cannot (SQLSTATE 25001) runs outside, watched through a second connection (see
// outside). unmarked is set for a transactional file that needed this: its
// needs-no-transaction finding says enough, and mixed-no-transaction is not added.
func (r *reviewer) reviewOutside(ctx context.Context, p changePlan, rep *Report, unmarked bool) (err error) {
	b, err := takeBaseline(ctx, r.conn, r.ledgerSchema)
	if err != nil {
		return err
	}
	var old string
	if err := r.conn.QueryRow(ctx, "SELECT current_setting('lock_timeout')").Scan(&old); err != nil {
		return fmt.Errorf("%s: read lock_timeout: %w", p.mig.Up.File, err)
	}
	if err := r.exec(ctx, fmt.Sprintf("SET lock_timeout = %d", r.lockTimeoutMS())); err != nil {
		return fmt.Errorf("%s: set lock_timeout: %w", p.mig.Up.File, err)
	}
	defer func() {
		r.rollback(ctx)
		if _, rerr := r.conn.Exec(context.WithoutCancel(ctx), "SELECT set_config('lock_timeout', $1, false)", old); rerr != nil && err == nil {
			err = fmt.Errorf("%s: restore lock_timeout: %w", p.mig.Up.File, rerr)
		}
	}()
	start := time.Now()
	var found []pending
	var changers []int // statements that ran in a transaction and took a lock above ACCESS SHARE
	needs := 0
	j := newJudge(p, b)
	var prev *observation // inside a transaction the file opened itself
	for i, st := range p.stmts {
		if r.conn.PgConn().TxStatus() != 'I' && prev != nil {
			if err := r.exec(ctx, st.SQL); err != nil {
				return statementError(p, st, err, true)
			}
			cur, err := observe(ctx, r.conn, b)
			if err != nil {
				return err
			}
			e := diff(b, prev, cur, true)
			found = append(found, j.judge(i, e)...)
			if e.changes() {
				changers = append(changers, i)
			}
			prev = cur
			if _, ok := sqlscan.HasTransactionControl([]sqlscan.Statement{st}); ok && r.conn.PgConn().TxStatus() == 'I' {
				prev = nil
				j.reset()
			}
			continue
		}
		if _, ok := sqlscan.HasTransactionControl([]sqlscan.Statement{st}); ok {
			if err := r.exec(ctx, st.SQL); err != nil {
				return statementError(p, st, err, true)
			}
			if r.conn.PgConn().TxStatus() != 'I' {
				if prev, err = observe(ctx, r.conn, b); err != nil {
					return err
				}
			}
			continue
		}
		if err := r.exec(ctx, "BEGIN"); err != nil {
			return fmt.Errorf("%s: begin: %w", p.mig.Up.File, err)
		}
		before, err := observe(ctx, r.conn, b)
		if err != nil {
			return err
		}
		j.reset()
		if err := r.exec(ctx, st.SQL); err != nil {
			r.rollback(ctx)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "25001" {
				return statementError(p, st, err, true)
			}
			needs++
			waited, err := r.outside(ctx, b, st)
			if err != nil {
				return statementError(p, st, err, true)
			}
			after, err := observe(ctx, r.conn, b)
			if err != nil {
				return err
			}
			e := diff(b, before, after, false)
			e.added, e.held = waited, waited
			found = append(found, j.judge(i, e)...)
			continue
		}
		after, err := observe(ctx, r.conn, b)
		if err != nil {
			return err
		}
		e := diff(b, before, after, true)
		found = append(found, j.judge(i, e)...)
		if e.changes() {
			changers = append(changers, i)
		}
		if err := r.exec(ctx, "COMMIT"); err != nil {
			return statementError(p, st, err, true)
		}
	}
	if r.conn.PgConn().TxStatus() != 'I' {
		return fmt.Errorf("%s: the file leaves a transaction open (BEGIN without COMMIT)", p.mig.Up.File)
	}
	if err := r.m.RecordApplied(ctx, p.mig, time.Since(start)); err != nil {
		return err
	}
	for _, f := range found {
		r.add(rep, p, f.stmt, f.f)
	}
	if !unmarked && len(p.stmts) > 1 && len(changers) > 0 && len(changers)+needs > 1 {
		what := "that need it"
		if needs == 0 {
			what = "that need it (none here: drop the marker)"
		}
		r.add(rep, p, changers[0], Finding{Rule: RuleMixedNoTransaction, Message: fmt.Sprintf(
			"%d of the %d statements of this no-transaction migration could run in a transaction (this is the first): when one fails the ones before it stay applied; keep here only the statements %s and move the others to a migration of their own",
			len(changers), len(p.stmts), what)})
	}
	return nil
}

// changes is whether the statement took a lock above ACCESS SHARE: it changed something.
func (e effect) changes() bool {
	if e.otherLocks {
		return true
	}
	for _, m := range e.added {
		if m&^1 != 0 {
			return true
		}
	}
	return false
}

// outside runs a statement that cannot run in a transaction block and returns the locks it
// waited for on the baseline's tables. A second connection holds ROW EXCLUSIVE (the lock of
// any INSERT, UPDATE or DELETE) on every table meanwhile: a statement that needs a lock which
// blocks writes has to wait for it, and pg_locks shows what it waits for; the blocker then lets
// go at once. A statement that waits for the blocker's transaction to end (CREATE INDEX
// CONCURRENTLY waits for older transactions) is let go the same way.
func (r *reviewer) outside(ctx context.Context, b *baseline, st sqlscan.Statement) (map[uint32]modeSet, error) {
	if r.blocker == nil {
		if err := r.conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&r.pid); err != nil {
			return nil, err
		}
		bl, err := pgx.ConnectConfig(ctx, r.conn.Config().Copy())
		if err != nil {
			return nil, fmt.Errorf("lint: second connection to the scratch database: %w", err)
		}
		r.blocker = bl
	}
	waited := map[uint32]modeSet{}
	if _, err := r.blocker.Exec(ctx, "BEGIN"); err != nil {
		return nil, err
	}
	held := true
	release := func() error {
		if !held {
			return nil
		}
		held = false
		_, err := r.blocker.Exec(context.WithoutCancel(ctx), "COMMIT")
		return err
	}
	defer func() { _ = release() }()
	var list string
	if err := r.blocker.QueryRow(ctx, "SELECT coalesce(string_agg(oid::regclass::text, ', '), '') FROM pg_class WHERE oid = ANY($1) AND relkind IN ('r', 'p')",
		b.oids).Scan(&list); err != nil {
		return nil, fmt.Errorf("lint: list tables on the second connection: %w", err)
	}
	if list != "" {
		if _, err := r.blocker.Exec(ctx, "LOCK TABLE "+list+" IN ROW EXCLUSIVE MODE NOWAIT"); err != nil {
			return nil, fmt.Errorf("lint: lock tables on the second connection: %w", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- r.exec(ctx, st.SQL) }()
	for held {
		select {
		case err := <-done:
			return waited, errors.Join(err, release())
		case <-time.After(time.Millisecond):
		}
		rows, err := r.blocker.Query(ctx, "SELECT coalesce(relation, 0), mode FROM pg_locks WHERE pid = $1 AND NOT granted", r.pid)
		if err != nil {
			_ = release()
			return waited, errors.Join(err, <-done)
		}
		waiting := false
		for rows.Next() {
			var rel uint32
			var mode string
			if err := rows.Scan(&rel, &mode); err == nil {
				waiting = true
				if _, ok := b.tables[rel]; ok {
					waited[rel] |= modeOf(mode)
				}
			}
		}
		rows.Close()
		if waiting {
			if err := release(); err != nil {
				return waited, errors.Join(err, <-done)
			}
		}
	}
	return waited, <-done
}

// add records f for statement i of p (or, with i < 0, for the file as a whole), as a finding
// or, when a lint-ignore comment names its rule, as an ignored one.
func (r *reviewer) add(rep *Report, p changePlan, i int, f Finding) {
	f.Level, _ = ruleLevel(f.Rule)
	f.Version = p.mig.Version
	if f.File == "" {
		f.File = p.mig.Up.File
	}
	ig := p.ignores
	if i >= 0 && i < len(p.stmts) {
		st := p.stmts[i]
		f.Line, f.Col, f.Statement = st.Line, st.Col, excerpt(st.SQL)
	} else {
		ig = p.rollbackIgnores
	}
	if x, ok := ig.find(i, f.Rule); ok {
		f.Reason = x.reason
		rep.Ignored = append(rep.Ignored, f)
		return
	}
	rep.Findings = append(rep.Findings, f)
}

// excerpt is the first line of sql, trimmed, cut to 80 characters.
func excerpt(sql string) string {
	line, _, _ := strings.Cut(sql, "\n")
	line = strings.TrimSpace(line)
	if r := []rune(line); len(r) > 80 {
		return string(r[:79]) + "…"
	}
	return line
}

// checkRollback rolls the change back and applies it again (migrate's CheckRollback), and
// returns the whole schema afterwards (nil when unknown). before is the schema before the
// change, restricted to only when that is not nil (see trial), and so are the others it
// compares.
func (r *reviewer) checkRollback(ctx context.Context, p changePlan, before *pgschema.Schema, only *pgschema.Only, rep *Report) (*pgschema.Schema, error) {
	applied, err := r.snapshotOnly(ctx, only)
	if err != nil {
		return nil, err
	}
	whole := func(s *pgschema.Schema) *pgschema.Schema {
		if only != nil {
			return nil
		}
		return s
	}
	now, prob, err := r.m.CheckRollback(ctx, p.mig, before, applied, only)
	var me *migrate.MigrationError
	switch {
	case errors.As(err, &me) && me.Direction == migrate.DirectionDown:
		// The rollback failed and was rolled back itself: the change is still applied.
		f := Finding{Rule: RuleRollbackNotRestored, File: me.File, Line: max(me.Line, 1), Col: max(me.Col, 1),
			Message: fmt.Sprintf("the rollback fails: %s", me.Err.Message)}
		if me.Line > 0 {
			f.Statement = excerpt(me.Source)
		}
		r.add(rep, p, -1, f)
		return whole(applied), nil
	case err != nil:
		return nil, err
	case prob == nil:
		return whole(now), nil
	}
	diffs := prob.Diffs
	more := ""
	if len(diffs) > 3 {
		diffs, more = diffs[:3], fmt.Sprintf(" (and %d more)", len(prob.Diffs)-3)
	}
	r.add(rep, p, -1, Finding{Rule: RuleRollbackNotRestored, File: p.mig.Down.File, Line: 1, Col: 1,
		Message: fmt.Sprintf("%s: %s%s; make it undo exactly what the migration does", prob.Describe(), strings.Join(diffs, "; "), more)})
	if prob.Stage == "reapply" {
		return whole(now), nil
	}
	// The change is rolled back: apply it again so that the next ones see it.
	if _, err := r.m.Up(ctx, p.mig.Version); err != nil {
		rep.Incomplete = fmt.Sprintf("stopped after %s: its rollback did not restore the schema and applying it again failed: %v", p.mig.Up.File, err)
	}
	return nil, nil
}

// statementError is err of statement st of p as migrate reports it: a *migrate.MigrationError
// placed in the file for a SQL error.
func statementError(p changePlan, st sqlscan.Statement, err error, noTx bool) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		if st.Line == 0 {
			return fmt.Errorf("%s: %w", p.mig.Up.File, err)
		}
		return fmt.Errorf("%s:%d:%d: %w", p.mig.Up.File, st.Line, st.Col, err)
	}
	me := &migrate.MigrationError{Migration: p.mig, Direction: migrate.DirectionUp, File: p.mig.Up.File, Err: pgErr,
		NoTransaction: noTx, Line: st.Line, Col: st.Col}
	if pgErr.Position > 0 && st.Line > 0 {
		me.Line, me.Col = st.Position(int(pgErr.Position))
	}
	if me.Line > 0 {
		lines := strings.Split(p.text, "\n")
		if me.Line <= len(lines) {
			me.Source = lines[me.Line-1]
		}
	}
	return me
}
