package migrate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ledgerRow is one applied migration as the ledger records it.
type ledgerRow struct {
	version   int64
	name      string
	checksum  string
	rollback  *string
	appliedAt time.Time
	duration  time.Duration
	appliedBy string
}

// Ledger columns to read: the checks need only the first three.
const (
	ledgerChecks = iota
	ledgerStatus
	ledgerRollback
)

// readLedger returns the applied migrations in version order; a missing ledger means none.
func (m *Migrator) readLedger(ctx context.Context, cols int) ([]ledgerRow, error) {
	sel := "version, name, checksum"
	switch cols {
	case ledgerStatus:
		sel += ", applied_at, coalesce((extract(epoch from execution_time) * 1000000)::bigint, 0), applied_by"
	case ledgerRollback:
		sel += ", rollback_sql"
	}
	rows, err := m.conn.Query(ctx, "SELECT "+sel+" FROM "+m.ledger+" ORDER BY version", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, m.ledgerErr(err)
	}
	defer rows.Close()
	var out []ledgerRow
	for rows.Next() {
		var r ledgerRow
		var us int64
		dst := []any{&r.version, &r.name, &r.checksum}
		switch cols {
		case ledgerStatus:
			dst = append(dst, &r.appliedAt, &us, &r.appliedBy)
		case ledgerRollback:
			dst = append(dst, &r.rollback)
		}
		if err := rows.Scan(dst...); err != nil {
			return nil, fmt.Errorf("read ledger %s: %w", m.ledger, err)
		}
		r.duration = time.Duration(us) * time.Microsecond
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, m.ledgerErr(err)
	}
	return out, nil
}

// ledgerCheck is what planning Up needs of the ledger: which migrations are applied, the
// newest applied version, and the rows that do not match a file (changed, or without one),
// which are all drifts can report.
type ledgerCheck struct {
	applied []bool // by index in m.migs
	latest  int64
	odd     []ledgerRow
}

// checkLedger reads the ledger's versions, names and checksums and compares them with the
// files as it goes: with thousands applied, a run with nothing to do is mostly this, so a row
// that matches its file costs no allocation.
func (m *Migrator) checkLedger(ctx context.Context) (ledgerCheck, error) {
	c := ledgerCheck{applied: make([]bool, len(m.migs))}
	rows, err := m.conn.Query(ctx, "SELECT version, name, checksum FROM "+m.ledger+" ORDER BY version", pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return c, m.ledgerErr(err)
	}
	defer rows.Close()
	j := 0 // the rows come in version order, as m.migs: one walk matches them
	for rows.Next() {
		raw := rows.RawValues()
		v, ok := int64(0), false
		if len(raw) == 3 && raw[1] != nil && raw[2] != nil {
			v, ok = parseVersion(raw[0])
		}
		if !ok {
			// Not the ledger's own column types: as readLedger scans them.
			var r ledgerRow
			if err := rows.Scan(&r.version, &r.name, &r.checksum); err != nil {
				return c, fmt.Errorf("read ledger %s: %w", m.ledger, err)
			}
			v, raw = r.version, [][]byte{nil, []byte(r.name), []byte(r.checksum)}
		}
		if j > 0 && m.migs[j-1].Version >= v {
			j = sort.Search(len(m.migs), func(i int) bool { return m.migs[i].Version >= v })
		}
		for j < len(m.migs) && m.migs[j].Version < v {
			j++
		}
		if j < len(m.migs) && m.migs[j].Version == v {
			c.applied[j] = true
			mig := m.migs[j]
			j++
			if string(raw[1]) == mig.Name && string(raw[2]) == mig.Checksum {
				c.latest = max(c.latest, v)
				continue
			}
		}
		c.odd = append(c.odd, ledgerRow{version: v, name: string(raw[1]), checksum: string(raw[2])})
		c.latest = max(c.latest, v)
	}
	if err := rows.Err(); err != nil {
		return ledgerCheck{applied: make([]bool, len(m.migs))}, m.ledgerErr(err)
	}
	return c, nil
}

// parseVersion parses a bigint in the text format, decimal digits and maybe a '-', of at most
// 18 digits (no overflow); false sends the caller to pgx's scan.
func parseVersion(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		v = v*10 + int64(d-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}

func (m *Migrator) ledgerErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") {
		return nil // undefined_table / invalid_schema_name: nothing applied yet
	}
	return fmt.Errorf("read ledger %s: %w", m.ledger, err)
}

// ensureLedger creates the ledger schema and table when missing. The schema is created only
// when it does not exist, because CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on
// the database even when the schema is there.
func (m *Migrator) ensureLedger(ctx context.Context) error {
	var tableExists, schemaExists bool
	err := m.conn.QueryRow(ctx,
		"SELECT to_regclass($1) IS NOT NULL, EXISTS (SELECT FROM pg_namespace WHERE nspname = $2)",
		m.ledger, m.cfg.schema).Scan(&tableExists, &schemaExists)
	if err != nil {
		return fmt.Errorf("look for ledger %s: %w", m.ledger, err)
	}
	if tableExists {
		return nil
	}
	var b strings.Builder
	b.WriteString("BEGIN;\n")
	if !schemaExists {
		fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", pgx.Identifier{m.cfg.schema}.Sanitize())
	}
	fmt.Fprintf(&b, `CREATE TABLE IF NOT EXISTS %s (
	version        bigint PRIMARY KEY,
	name           text NOT NULL,
	checksum       text NOT NULL,
	rollback_sql   text,
	applied_at     timestamptz NOT NULL DEFAULT now(),
	execution_time interval,
	applied_by     text NOT NULL DEFAULT current_user
);
COMMENT ON TABLE %s IS 'Migrations applied by poststack (ps-migrate); do not edit by hand';
COMMIT;`, m.ledger, m.ledger)
	if _, err := m.exec(ctx, b.String()); err != nil {
		m.rollbackIfOpen(ctx)
		return fmt.Errorf("create ledger %s: %w", m.ledger, err)
	}
	return nil
}

// record inserts the ledger row of a no-transaction migration after its statements ran.
func (m *Migrator) record(ctx context.Context, mig *Migration, rollback *string, d time.Duration) error {
	_, err := m.conn.Exec(ctx, "INSERT INTO "+m.ledger+
		" (version, name, checksum, rollback_sql, applied_by, execution_time) VALUES ($1, $2, $3, $4, $5, make_interval(secs => $6))",
		mig.Version, mig.Name, mig.Checksum, rollback, m.cfg.appliedBy, d.Seconds())
	if err != nil {
		return fmt.Errorf("%s ran completely but could not be recorded in %s; its changes are in place, so record it or undo them by hand: %w",
			mig.Up.File, m.ledger, err)
	}
	return nil
}
