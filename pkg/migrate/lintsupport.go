package migrate

import (
	"context"
	"fmt"
	"time"

	"github.com/poststack/poststack/pkg/pgschema"
)

// What pkg/lint needs of a Migrator to apply a migration itself, statement by statement, and
// leave the ledger as Up would.

// LedgerSchema is the schema of the Migrator's ledger table, which schema comparisons leave out.
func (m *Migrator) LedgerSchema() string { return m.cfg.schema }

// StatementLockTimeout is the Postgres lock_timeout the Migrator runs migrations with (0: none).
func (m *Migrator) StatementLockTimeout() time.Duration { return m.cfg.stmtLockTimeout }

// EnsureLedger creates the ledger schema and table when they are missing, without the lock.
func (m *Migrator) EnsureLedger(ctx context.Context) error { return m.ensureLedger(ctx) }

// RecordApplied inserts the ledger row of mig (with its rollback SQL, when it has a rollback
// file) as Up writes it, d being its execution time. Run inside the transaction that applied
// mig, it commits with it.
func (m *Migrator) RecordApplied(ctx context.Context, mig *Migration, d time.Duration) error {
	var rollback *string
	if mig.Down != nil {
		rollback = &mig.Down.SQL
	}
	return m.record(ctx, mig, rollback, d)
}

// CheckRollback is one step of VerifyRollback for mig, the newest applied migration: it rolls
// mig back and compares the schema with before (the schema before mig was applied), then, if
// that matched, applies mig again and compares with applied (the schema after its first
// application). It returns the schema at the end (mig applied again, or rolled back when the
// rollback did not restore before) and the problem found, if any. Like VerifyRollback, the
// comparisons leave the ledger's schema out. tables, when not nil, restricts the two snapshots it
// takes (see pgschema.Only); before and applied must be restricted alike. A SQL error of the
// rollback or of the second application is returned as Down and Up return it (a
// *PartialError).
func (m *Migrator) CheckRollback(ctx context.Context, mig *Migration, before, applied *pgschema.Schema, tables *pgschema.Only) (*pgschema.Schema, *RollbackProblem, error) {
	snap := func() (*pgschema.Schema, error) {
		return pgschema.Snapshot(ctx, m.conn, pgschema.Options{Exclude: []string{m.cfg.schema}, Only: tables})
	}
	res, err := m.Down(ctx, Steps(1))
	if err := only(mig, "rolling back", res, err); err != nil {
		return nil, nil, err
	}
	rolledBack, err := snap()
	if err != nil {
		return nil, nil, err
	}
	if d := pgschema.Diff(before, rolledBack); len(d) > 0 {
		return rolledBack, &RollbackProblem{mig.Version, mig.Name, "rollback", d}, nil
	}
	res, err = m.Up(ctx, mig.Version)
	if err := only(mig, "applying again", res, err); err != nil {
		return nil, nil, err
	}
	again, err := snap()
	if err != nil {
		return nil, nil, err
	}
	if d := pgschema.Diff(applied, again); len(d) > 0 {
		return again, &RollbackProblem{mig.Version, mig.Name, "reapply", d}, nil
	}
	return again, nil, nil
}

// Describe is the RollbackProblem's sentence without its list of differences.
func (p RollbackProblem) Describe() string {
	if p.Stage == "reapply" {
		return fmt.Sprintf("applying %d_%s again after its rollback gives another schema", p.Version, p.Name)
	}
	return fmt.Sprintf("the rollback of %d_%s does not restore the schema", p.Version, p.Name)
}
