package migrate

import (
	"context"
	"fmt"
	"strings"

	"github.com/poststack/poststack/pkg/exitcode"
)

// drifts compares the ledger with the files. It reports missing files through the progress
// hook when notify is set.
func (m *Migrator) drifts(rows []ledgerRow, notify bool) []Drift {
	var out []Drift
	for _, r := range rows {
		mig, ok := m.byVersion[r.version]
		if !ok {
			if notify {
				m.emit(Event{Kind: EventMissingFile, Version: r.version, Name: r.name})
			}
			continue
		}
		if mig.Checksum != r.checksum || mig.Name != r.name {
			out = append(out, Drift{
				Version: r.version, File: mig.Up.File,
				AppliedName: r.name, Name: mig.Name,
				AppliedChecksum: r.checksum, Checksum: mig.Checksum,
			})
		}
	}
	return out
}

// checkDrift fails on drift unless it is allowed, in which case it reports each one.
func (m *Migrator) checkDrift(rows []ledgerRow, notify bool) error {
	ds := m.drifts(rows, notify)
	if len(ds) == 0 {
		return nil
	}
	if !m.cfg.allowDrift {
		return &DriftError{Drifts: ds}
	}
	if notify {
		for _, d := range ds {
			m.emit(Event{Kind: EventDriftAllowed, Version: d.Version, Name: d.Name, Migration: m.byVersion[d.Version], Err: &DriftError{Drifts: []Drift{d}}})
		}
	}
	return nil
}

// planUp lists the migrations Up would apply, in order.
func (m *Migrator) planUp(ctx context.Context, target int64, notify bool) ([]*Migration, error) {
	if target < 0 {
		return nil, exitcode.Usagef("target version %d is negative", target)
	}
	if target > 0 {
		if _, ok := m.byVersion[target]; !ok {
			return nil, exitcode.Usagef("target version %d: no migration has that version", target)
		}
	}
	lc, err := m.checkLedger(ctx)
	if err != nil {
		return nil, err
	}
	// The rows that match their files are no drift: checkDrift needs only the others.
	if err := m.checkDrift(lc.odd, notify); err != nil {
		return nil, err
	}
	var pending []*Migration
	var early []int64
	for i, mig := range m.migs {
		if target > 0 && mig.Version > target {
			break
		}
		if lc.applied[i] {
			continue
		}
		if mig.Version < lc.latest {
			early = append(early, mig.Version)
		}
		pending = append(pending, mig)
	}
	if len(early) > 0 && !m.cfg.allowOutOfOrder {
		return nil, &OutOfOrderError{Versions: early, Latest: lc.latest}
	}
	if len(pending) > 0 {
		// Something will run: every file must pass LoadDir's checks first, the rollbacks
		// it left to check too.
		if err := checkFiles(m.migs); err != nil {
			return nil, err
		}
	}
	return pending, nil
}

// readTexts reads the SQL of the migrations about to be applied (and of their rollbacks, which
// the ledger keeps) before any of them runs, so that a file changed since Load stops the run
// before it changes anything.
func readTexts(migs []*Migration) error {
	for _, mig := range migs {
		if _, err := mig.Up.Text(); err != nil {
			return err
		}
		if mig.Down != nil {
			if _, err := mig.Down.Text(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Plan returns the migrations Up(ctx, target) would apply, after the same checks (drift,
// order), without taking the lock or changing anything: the dry run.
func (m *Migrator) Plan(ctx context.Context, target int64) ([]*Migration, error) {
	return m.planUp(ctx, target, false)
}

// DownTarget says how far Down rolls back. Build it with ToVersion or Steps; the zero value is
// rejected.
type DownTarget struct {
	version int64
	steps   int
	byStep  bool
	set     bool
}

// ToVersion rolls back every applied migration newer than v, newest first; v = 0 rolls back all.
func ToVersion(v int64) DownTarget { return DownTarget{version: v, set: true} }

// Steps rolls back the n (at least 1) newest applied migrations.
func Steps(n int) DownTarget { return DownTarget{steps: n, byStep: true, set: true} }

// Step is one rollback that Down would run.
type Step struct {
	Version int64
	Name    string
	// Migration is nil when the file is gone and the rollback comes from the ledger.
	Migration *Migration
	Script    Script
	// FromLedger is set when Script is the ledger's copy of the rollback SQL.
	FromLedger bool
}

// PlanDown returns the steps Down(ctx, to) would run, after the same checks, without taking
// the lock or changing anything.
func (m *Migrator) PlanDown(ctx context.Context, to DownTarget) ([]Step, error) {
	return m.planDown(ctx, to, false)
}

func (m *Migrator) planDown(ctx context.Context, to DownTarget, notify bool) ([]Step, error) {
	switch {
	case !to.set:
		return nil, exitcode.Usagef("down needs a target version or a number of steps")
	case to.byStep && to.steps < 1:
		return nil, exitcode.Usagef("down steps must be 1 or more, not %d", to.steps)
	case to.version < 0:
		return nil, exitcode.Usagef("down target version %d is negative", to.version)
	}
	rows, err := m.readLedger(ctx, ledgerRollback)
	if err != nil {
		return nil, err
	}
	if err := m.checkDrift(rows, notify); err != nil {
		return nil, err
	}
	if to.version > 0 {
		_, inFiles := m.byVersion[to.version]
		inLedger := false
		for _, r := range rows {
			inLedger = inLedger || r.version == to.version
		}
		if !inFiles && !inLedger {
			return nil, exitcode.Usagef("target version %d: no migration has that version", to.version)
		}
	}
	if err := checkFiles(m.migs); err != nil {
		return nil, err
	}
	var steps []Step
	var missing []int64
	var missingNames []string
	for i := len(rows) - 1; i >= 0; i-- {
		r := rows[i]
		if to.byStep && len(steps) == to.steps || !to.byStep && r.version <= to.version {
			break
		}
		st := Step{Version: r.version, Name: r.name, Migration: m.byVersion[r.version]}
		switch {
		case st.Migration != nil && st.Migration.Down != nil:
			// Read before any step runs: a file changed since Load stops Down unchanged.
			if _, err := st.Migration.Down.Text(); err != nil {
				return nil, err
			}
			st.Script = *st.Migration.Down
		case r.rollback != nil:
			d, _ := parseDirectives(*r.rollback)
			file := fmt.Sprintf("%d_%s.rollback.sql", r.version, r.name)
			if st.Migration != nil {
				file = strings.TrimSuffix(st.Migration.Up.File, sqlExt) + rollbackExt
			}
			st.Script = Script{File: "ledger copy of " + file, SQL: *r.rollback, NoTransaction: d.NoTransaction}
			st.FromLedger = true
		default:
			missing = append(missing, r.version)
			missingNames = append(missingNames, r.name)
		}
		steps = append(steps, st)
	}
	if len(missing) > 0 {
		return nil, &MissingRollbackError{Versions: missing, Names: missingNames}
	}
	return steps, nil
}
