package lint

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/pkg/pgschema"
)

// The rollback check of a change whose file and rollback both run in a transaction is first
// made inside one transaction that is rolled back, before the change is applied: after the
// trial that finds what to compare (see trial), back in the state before the change, the
// change, its rollback and the change again run there, and the state is compared after each,
// as CheckRollback compares it after each committed step: the rollback must give the state
// before, the change applied again the state after the first time. A state is one query,
// pgschema.Fingerprint of the same restricted snapshot, whose texts are equal only when the
// snapshots are. Nothing of it is committed and no ledger row is written; the change is then
// applied and observed as one without a rollback file. Sequences the trial advanced stay
// advanced, which a snapshot does not show.
//
// Whatever could make one transaction behave otherwise than the committed steps sends the
// change to the committed check (touched, then checkRollback after the real run), which
// words the finding too:
//   - a state that differs, or a statement that fails (a rollback that does not restore, or
//     one that cannot run after the change in one transaction);
//   - a deferred constraint that the end of a step would find violated: at each state,
//     SET CONSTRAINTS ALL IMMEDIATE under a savepoint that is rolled back checks what COMMIT
//     would, and leaves the constraints and their pending checks as they were;
//   - a setting a step changed (SET LOCAL ends with the step's transaction when committed,
//     not here): the session's settings (pg_settings changed in the session), current_user and
//     session_user are compared too. Placeholder settings (SET LOCAL app.x), which pg_settings
//     does not list, are not; nor is now(), which one transaction keeps.

// checkSavepoint is where each state's deferred-constraint check goes back to.
const checkSavepoint = "poststack_lint_check"

// settingsQuery is what of the session's settings a step could leave for the next one.
const settingsQuery = `SELECT coalesce(string_agg(name || '=' || setting, E'\n' ORDER BY name), '') || E'\n' || current_user || E'\n' || session_user
FROM pg_settings WHERE source = 'session'`

// state is one comparison point of restores.
type state struct {
	schema, settings string
}

// restores checks p's rollback in one transaction (see the top of this file). It returns
// whether the rollback restores the schema, and the relations the trial found to compare (nil
// when it could not tell them: the committed check compares whole schemas then).
func (r *reviewer) restores(ctx context.Context, p changePlan) (bool, *pgschema.Only, error) {
	only, err := r.trial(ctx, p)
	defer r.rollback(ctx)
	if only == nil || err != nil {
		return false, nil, err
	}
	fpSQL, fpArgs := pgschema.FingerprintQuery(pgschema.Options{Exclude: []string{r.ledgerSchema}, Only: only})
	// settings is false after the last step, which leaves nothing for a later step: the
	// change, applied again from a state the first checks found alike, sets what it set the
	// first time.
	read := func(settings bool) (*state, error) {
		b := &pgx.Batch{}
		b.Queue("SAVEPOINT " + checkSavepoint)
		b.Queue("SET CONSTRAINTS ALL IMMEDIATE")
		b.Queue("ROLLBACK TO SAVEPOINT " + checkSavepoint)
		var s state
		b.Queue(fpSQL, fpArgs...).QueryRow(func(row pgx.Row) error { return row.Scan(&s.schema) })
		if settings {
			b.Queue(settingsQuery).QueryRow(func(row pgx.Row) error { return row.Scan(&s.settings) })
		}
		if err := r.conn.SendBatch(ctx, b).Close(); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				return nil, nil // a deferred constraint fails
			}
			return nil, fmt.Errorf("lint: rollback check of %s: %w", p.mig.Up.File, err)
		}
		return &s, nil
	}
	run := func(file, sql string) (bool, error) {
		if err := r.exec(ctx, sql); err != nil {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				return false, nil
			}
			return false, fmt.Errorf("lint: rollback check of %s: %w", file, err)
		}
		if r.conn.PgConn().TxStatus() != 'T' {
			return false, fmt.Errorf("lint: rollback check of %s: the file ended the transaction", file)
		}
		return true, nil
	}
	before, err := read(true)
	if before == nil || err != nil {
		return false, only, err
	}
	var applied *state
	for i, step := range []struct {
		file, sql string
		want      func() *state
	}{
		{p.mig.Up.File, p.text, nil},
		{p.mig.Down.File, p.downText, func() *state { return before }},
		{p.mig.Up.File, p.text, func() *state { return applied }},
	} {
		if ok, err := run(step.file, step.sql); !ok || err != nil {
			return false, only, err
		}
		last := i == 2
		s, err := read(!last)
		if s == nil || err != nil || !last && s.settings != before.settings {
			return false, only, err
		}
		if i == 0 {
			applied = s
		} else if s.schema != step.want().schema {
			return false, only, nil
		}
	}
	return true, only, nil
}
