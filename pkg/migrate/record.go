package migrate

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// Adopted is a ledger row written without running its migration: one that another tool
// applied (see pkg/adopt), recorded so that Status shows it applied and Up does not run it.
type Adopted struct {
	Version  int64
	Name     string
	Checksum string
	// Rollback is the rollback SQL the row keeps, as Up keeps a rollback file's text; nil for
	// none.
	Rollback *string
	// AppliedAt is when the other tool applied it; zero when it does not say, and the row then
	// gets the time Record writes it (and a comparison ignores it).
	AppliedAt time.Time
	// AppliedBy is who applied it; "" for the Migrator's applied-by (WithAppliedBy).
	AppliedBy string
	// Duration is how long it ran; zero records none.
	Duration time.Duration
}

// RecordConflict is one way the ledger differs from the rows Record was to write.
type RecordConflict struct {
	Version int64
	Reason  string
}

// RecordConflictError is Record finding a ledger that already has rows which are not the
// ones it would write: it writes nothing then. Exit code 3.
type RecordConflictError struct {
	Ledger    string
	Conflicts []RecordConflict
}

func (e *RecordConflictError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ledger %s already has rows that differ from what would be written (%d %s):", e.Ledger, len(e.Conflicts), plural(len(e.Conflicts), "difference", "differences"))
	for i, c := range e.Conflicts {
		if i > 0 {
			b.WriteString(";")
		}
		fmt.Fprintf(&b, " version %d %s", c.Version, c.Reason)
	}
	return b.String()
}

// ExitCode is 3: a check found a problem; nothing was written.
func (e *RecordConflictError) ExitCode() int { return exitcode.Check }

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// CheckRecord tells what Record(rows) would do, without the lock and without writing: the
// number of rows it would insert, 0 when the ledger already holds every one of them (a
// second adoption), or a *RecordConflictError.
func (m *Migrator) CheckRecord(ctx context.Context, rows []Adopted) (int, error) {
	have, err := m.recordedRows(ctx)
	if err != nil {
		return 0, err
	}
	return m.compareRecord(rows, have)
}

// Record writes rows into the ledger, creating it when missing, holding the migration lock,
// in one transaction: all of them or none. The ledger must be empty, or hold exactly these
// rows already, in which case nothing is written (0 is returned); rows it has for versions
// newer than all of them (applied by Up since) are left alone. Anything else is a
// *RecordConflictError and nothing is written. It returns the number of rows inserted.
func (m *Migrator) Record(ctx context.Context, rows []Adopted) (int, error) {
	for i, r := range rows {
		if r.Version <= 0 || r.Name == "" || r.Checksum == "" {
			return 0, fmt.Errorf("migrate: record: row %d (version %d) needs a version, a name and a checksum", i, r.Version)
		}
		if i > 0 && rows[i-1].Version >= r.Version {
			return 0, fmt.Errorf("migrate: record: rows must be sorted by unique version (%d after %d)", r.Version, rows[i-1].Version)
		}
	}
	var n int
	err := m.withLock(ctx, func() error {
		if err := m.ensureLedger(ctx); err != nil {
			return err
		}
		have, err := m.recordedRows(ctx)
		if err != nil {
			return err
		}
		if n, err = m.compareRecord(rows, have); err != nil || n == 0 {
			return err
		}
		tx, err := m.conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("record in %s: %w", m.ledger, err)
		}
		defer tx.Rollback(context.WithoutCancel(ctx))
		for _, r := range rows {
			by := r.AppliedBy
			if by == "" {
				by = m.cfg.appliedBy
			}
			var at *time.Time
			if !r.AppliedAt.IsZero() {
				at = &r.AppliedAt
			}
			var secs *float64
			if r.Duration > 0 {
				s := r.Duration.Seconds()
				secs = &s
			}
			if _, err := tx.Exec(ctx, "INSERT INTO "+m.ledger+
				" (version, name, checksum, rollback_sql, applied_at, execution_time, applied_by)"+
				" VALUES ($1, $2, $3, $4, coalesce($5::timestamptz, now()), make_interval(secs => $6::float8), $7)",
				r.Version, r.Name, r.Checksum, r.Rollback, at, secs, by); err != nil {
				return fmt.Errorf("record version %d in %s: %w", r.Version, m.ledger, err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("record in %s: %w", m.ledger, err)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// recordedRows reads the whole ledger; a missing one is empty.
func (m *Migrator) recordedRows(ctx context.Context) ([]ledgerRow, error) {
	rows, err := m.conn.Query(ctx, "SELECT version, name, checksum, rollback_sql, applied_at, applied_by FROM "+m.ledger+" ORDER BY version")
	if err != nil {
		return nil, m.ledgerErr(err)
	}
	defer rows.Close()
	var out []ledgerRow
	for rows.Next() {
		var r ledgerRow
		if err := rows.Scan(&r.version, &r.name, &r.checksum, &r.rollback, &r.appliedAt, &r.appliedBy); err != nil {
			return nil, fmt.Errorf("read ledger %s: %w", m.ledger, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, m.ledgerErr(err)
	}
	return out, nil
}

// compareRecord returns how many of rows are to be inserted into a ledger holding have.
func (m *Migrator) compareRecord(rows []Adopted, have []ledgerRow) (int, error) {
	if len(have) == 0 {
		return len(rows), nil
	}
	byVersion := make(map[int64]ledgerRow, len(have))
	for _, h := range have {
		byVersion[h.version] = h
	}
	var newest int64
	var conflicts []RecordConflict
	for _, r := range rows {
		newest = max(newest, r.Version)
		h, ok := byVersion[r.Version]
		if !ok {
			conflicts = append(conflicts, RecordConflict{r.Version, "is not in it"})
			continue
		}
		delete(byVersion, r.Version)
		by := r.AppliedBy
		if by == "" {
			by = m.cfg.appliedBy
		}
		switch {
		case h.name != r.Name:
			conflicts = append(conflicts, RecordConflict{r.Version, fmt.Sprintf("is named %q, not %q", h.name, r.Name)})
		case h.checksum != r.Checksum:
			conflicts = append(conflicts, RecordConflict{r.Version, "has another checksum"})
		case !sameText(h.rollback, r.Rollback):
			conflicts = append(conflicts, RecordConflict{r.Version, "has other rollback SQL"})
		case h.appliedBy != by:
			conflicts = append(conflicts, RecordConflict{r.Version, fmt.Sprintf("was applied by %q, not %q", h.appliedBy, by)})
		case !r.AppliedAt.IsZero() && !h.appliedAt.Equal(r.AppliedAt.Truncate(time.Microsecond)):
			conflicts = append(conflicts, RecordConflict{r.Version, fmt.Sprintf("was applied at %s, not %s", h.appliedAt.UTC().Format(time.RFC3339Nano), r.AppliedAt.UTC().Format(time.RFC3339Nano))})
		}
	}
	for _, h := range have {
		if _, ok := byVersion[h.version]; ok && h.version < newest {
			conflicts = append(conflicts, RecordConflict{h.version, "is in it but not among the rows to write"})
		}
	}
	if len(conflicts) > 0 {
		slices.SortStableFunc(conflicts, func(a, b RecordConflict) int { return cmp.Compare(a.Version, b.Version) })
		return 0, &RecordConflictError{Ledger: m.ledger, Conflicts: conflicts}
	}
	return 0, nil
}

func sameText(a, b *string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

// Ledger returns the quoted name of the ledger table ("poststack"."schema_migrations").
func (m *Migrator) Ledger() string { return m.ledger }
