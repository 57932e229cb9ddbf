package migrate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/pgschema"
)

// RollbackProblem is a migration whose rollback does not give back the
// schema it started from, or whose re-application after the rollback does
// not give the schema of its first application.
type RollbackProblem struct {
	Version int64
	Name    string
	// Stage is "rollback" or "reapply".
	Stage string
	// Diffs say what differs, as pgschema.Diff words it.
	Diffs []string
}

func (p RollbackProblem) String() string {
	what := "its rollback does not restore the schema (\"before\": before it was applied, \"after\": after its rollback)"
	if p.Stage == "reapply" {
		what = "applying it again after its rollback gives another schema (\"before\": first application, \"after\": second)"
	}
	s := fmt.Sprintf("%d_%s: %s:", p.Version, p.Name, what)
	for _, d := range p.Diffs {
		s += "\n  " + d
	}
	return s
}

// VerifyRollback checks every rollback in scratch, a database holding
// nothing the migrations create: it applies each migration in order,
// rolls it back and compares the catalog with the one before, then applies
// it again and compares with the first application. It stops at the first
// rollback that leaves the schema changed, since what it left behind would
// make the next step fail for the wrong reason. The migrations it checked
// stay applied in scratch. opts configure the Migrator it uses; the
// ledger's schema is left out of the comparisons.
func VerifyRollback(ctx context.Context, scratch *pgx.Conn, migrations []*Migration, opts ...Option) ([]RollbackProblem, error) {
	m, err := New(scratch, migrations, opts...)
	if err != nil {
		return nil, err
	}
	missing := &MissingRollbackError{}
	for _, mig := range migrations {
		if mig.Down == nil {
			missing.Versions = append(missing.Versions, mig.Version)
			missing.Names = append(missing.Names, mig.Name)
		}
	}
	if len(missing.Versions) > 0 {
		return nil, missing
	}
	snap := func() (*pgschema.Schema, error) {
		return pgschema.Snapshot(ctx, scratch, pgschema.Options{Exclude: []string{m.cfg.schema}})
	}
	var problems []RollbackProblem
	before, err := snap()
	if err != nil {
		return nil, err
	}
	for _, mig := range migrations {
		if _, err := m.Up(ctx, mig.Version); err != nil {
			return problems, err
		}
		applied, err := snap()
		if err != nil {
			return problems, err
		}
		if _, err := m.Down(ctx, Steps(1)); err != nil {
			return problems, err
		}
		rolledBack, err := snap()
		if err != nil {
			return problems, err
		}
		if d := pgschema.Diff(before, rolledBack); len(d) > 0 {
			// What the rollback left behind would break the next
			// application: the check cannot go on from here.
			return append(problems, RollbackProblem{mig.Version, mig.Name, "rollback", d}), nil
		}
		if _, err := m.Up(ctx, mig.Version); err != nil {
			return problems, err
		}
		again, err := snap()
		if err != nil {
			return problems, err
		}
		if d := pgschema.Diff(applied, again); len(d) > 0 {
			problems = append(problems, RollbackProblem{mig.Version, mig.Name, "reapply", d})
		}
		before = again
	}
	return problems, nil
}

// CreateScratchDatabase creates an empty database next to the one conn is
// connected to, for VerifyRollback, and returns its name and a function
// that drops it (forcing out any session left in it).
func CreateScratchDatabase(ctx context.Context, conn *pgx.Conn) (name string, drop func(context.Context) error, err error) {
	var suffix string
	if err := conn.QueryRow(ctx, "select substr(md5(random()::text), 1, 10)").Scan(&suffix); err != nil {
		return "", nil, err
	}
	name = "poststack_verify_" + suffix
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE template0"); err != nil {
		return "", nil, fmt.Errorf("create scratch database %s: %w", name, err)
	}
	drop = func(ctx context.Context) error {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop scratch database %s: %w", name, err)
		}
		return nil
	}
	return name, drop, nil
}
