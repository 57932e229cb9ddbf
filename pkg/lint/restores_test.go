package lint

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// TestRestoresInOneTransaction: the rollback check made in one rolled-back transaction passes a
// rollback that restores the schema and commits nothing; it sends every other case to the
// committed check, which reports what one transaction would hide: a rollback that only works
// because a SET LOCAL of the change is still in force, and one that breaks a deferred
// constraint, which only COMMIT checks.
func TestRestoresInOneTransaction(t *testing.T) {
	base := loadMap(t, map[string]string{"0001_base.sql": `
CREATE SCHEMA other;
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE child (parent_id int REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO parent VALUES (1);
INSERT INTO child VALUES (1);
`})
	cases := []struct {
		name, up, down string
		restores       bool
		finding        string // of rollback-does-not-restore, in the review
	}{
		{"restores", "CREATE TABLE promotions (code text PRIMARY KEY);\nALTER TABLE parent ADD COLUMN note text;",
			"ALTER TABLE parent DROP COLUMN note;\nDROP TABLE promotions;", true, ""},
		{"does not restore", "ALTER TABLE parent ADD COLUMN note text;\nCREATE TABLE promotions (code text);",
			"ALTER TABLE parent DROP COLUMN note;", false, "table public.promotions exists only after"},
		{"a SET LOCAL of the change", "SET LOCAL search_path = other, public;\nCREATE TABLE promotions (code text);",
			"DROP TABLE promotions;", false, `the rollback fails: table "promotions" does not exist`},
		{"a deferred constraint", "CREATE TABLE promotions (code text);",
			"DROP TABLE promotions;\nDELETE FROM parent;", false, "the rollback fails: update or delete on table \"parent\" violates foreign key constraint"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			changes := loadMap(t, map[string]string{"0100_change.sql": c.up, "0100_change.rollback.sql": c.down})
			conn := connect(t)
			m, err := migrate.New(conn, slices.Concat(base, changes))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := m.Up(ctx, 1); err != nil {
				t.Fatal(err)
			}
			r := &reviewer{conn: conn, m: m, ledgerSchema: m.LedgerSchema()}
			p := changePlan{mig: changes[0], text: c.up, stmts: sqlscan.Split(c.up), downText: c.down, downStmts: sqlscan.Split(c.down)}
			ok, only, err := r.restores(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.restores || only == nil {
				t.Fatalf("restores = %v (relations %v), want %v", ok, only, c.restores)
			}
			var tables, ledger int
			if err := conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM pg_tables WHERE tablename = 'promotions'), (SELECT count(*) FROM poststack.schema_migrations)").
				Scan(&tables, &ledger); err != nil || tables != 0 || ledger != 1 || conn.PgConn().TxStatus() != 'I' {
				t.Fatalf("after the check: %d promotions tables, %d ledger rows, transaction status %c (%v); want 0, 1, I",
					tables, ledger, conn.PgConn().TxStatus(), err)
			}

			rep := review(t, connect(t), base, changes, Options{})
			var found []string
			for _, f := range rep.Findings {
				if f.Rule == RuleRollbackNotRestored {
					found = append(found, f.Message)
				}
			}
			switch {
			case c.finding == "" && len(found) > 0:
				t.Errorf("reported as not restoring: %q", found)
			case c.finding != "" && (len(found) != 1 || !strings.Contains(found[0], c.finding)):
				t.Errorf("findings %q, want one saying %q", found, c.finding)
			}
			if len(rep.Reviewed) != 1 {
				t.Errorf("reviewed %d changes, want 1", len(rep.Reviewed))
			}
		})
	}
}
