package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/adopt"
	"github.com/poststack/poststack/pkg/convert"
	"github.com/poststack/poststack/pkg/lint"
	"github.com/poststack/poststack/pkg/migrate"
)

// TestRenderers renders every result type as text and as JSON, without a
// database: what a command prints is its result's renderer alone.
func TestRenderers(t *testing.T) {
	users := &migrate.Migration{Version: 1, Name: "users", Up: migrate.Script{File: "migrations/0001_users.sql"},
		Down: &migrate.Script{File: "migrations/0001_users.rollback.sql"}}
	conc := &migrate.Migration{Version: 2, Name: "idx", Up: migrate.Script{File: "migrations/0002_idx.sql", NoTransaction: true}}
	applied := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	sqlErr := &migrate.MigrationError{File: "migrations/0002_idx.sql", Line: 1, Col: 8, Source: "SELECT nosuch(1);",
		Err: &pgconn.PgError{Severity: "ERROR", Code: "42883", Message: "function nosuch(integer) does not exist", Hint: "No function matches."}}
	mask := func(s string) string { return strings.ReplaceAll(s, "nosuch", "****") }

	tests := []struct {
		name       string
		r          cli.Renderer
		text, json string
	}{
		{
			name: "run: applied",
			r: runReport{Verb: "applied", Results: []migrate.Result{
				{Version: 1, Name: "users", Direction: migrate.DirectionUp, Duration: 3499 * time.Microsecond, Migration: users},
				{Version: 7, Name: "gone", Direction: migrate.DirectionDown, Duration: 1500 * time.Millisecond}}},
			text: "applied 0001_users (3ms)\napplied 7_gone (1.5s)\n",
			json: `{"error":null,"results":[{"version":1,"name":"users","direction":"up","duration_ms":3},{"version":7,"name":"gone","direction":"down","duration_ms":1500}]}`,
		},
		{
			name: "run: nothing",
			r:    runReport{Verb: "applied"},
			text: "nothing to do\n",
			json: `{"error":null,"results":[]}`,
		},
		{
			// The failing migration's caret and HINT stay out of the JSON.
			name: "run: failed after one",
			r: newRunReport("applied", nil, &migrate.PartialError{
				Applied: []migrate.Result{{Version: 1, Name: "users", Direction: migrate.DirectionUp, Duration: time.Millisecond, Migration: users}},
				Err:     sqlErr}, mask),
			text: "applied 0001_users (1ms)\n",
			json: `{"error":"migrations/0002_idx.sql:1:8: ERROR: function ****(integer) does not exist (SQLSTATE 42883)","results":[{"version":1,"name":"users","direction":"up","duration_ms":1}]}`,
		},
		{
			name: "run: failed first",
			r:    newRunReport("rolled back", nil, errors.New("timed out"), mask),
			text: "",
			json: `{"error":"timed out","results":[]}`,
		},
		{
			name: "up plan",
			r:    upPlan{[]*migrate.Migration{users, conc}},
			text: "would apply migrations/0001_users.sql\nwould apply migrations/0002_idx.sql\n",
			json: `{"plan":[{"file":"migrations/0001_users.sql","name":"users","no_transaction":false,"version":1},{"file":"migrations/0002_idx.sql","name":"idx","no_transaction":true,"version":2}]}`,
		},
		{
			name: "up plan: nothing",
			r:    upPlan{},
			text: "nothing to do\n",
			json: `{"plan":[]}`,
		},
		{
			name: "down plan",
			r: downPlan{[]migrate.Step{
				{Version: 3, Name: "gone", Script: migrate.Script{File: "ledger copy of 3_gone.rollback.sql"}, FromLedger: true},
				{Version: 1, Name: "users", Migration: users, Script: *users.Down}}},
			text: "would roll back 3_gone\nwould roll back 0001_users\n",
			json: `{"plan":[{"file":"ledger copy of 3_gone.rollback.sql","name":"gone","no_transaction":false,"version":3,"from_ledger":true},` +
				`{"file":"migrations/0001_users.rollback.sql","name":"users","no_transaction":false,"version":1,"from_ledger":false}]}`,
		},
		{
			name: "down plan: nothing",
			r:    downPlan{},
			text: "nothing to do\n",
			json: `{"plan":[]}`,
		},
		{
			name: "status",
			r: statusReport{[]migrate.State{
				// An applied migration can take less than a millisecond: duration_ms 0 is kept.
				{Version: 1, Name: "users", Status: migrate.StatusApplied, File: "migrations/0001_users.sql", AppliedAt: applied, Duration: 400 * time.Microsecond, AppliedBy: "ci@host"},
				{Version: 2, Name: "idx", Status: migrate.StatusPending, File: "migrations/0002_idx.sql", Description: "an index"}}},
			text: "VERSION  NAME   STATUS   APPLIED AT           DURATION\n" +
				"1        users  applied  " + applied.Local().Format(time.DateTime) + "  0s\n" +
				"2        idx    pending  -                    -\n" +
				"1 applied, 1 pending, 0 changed, 0 missing-file\n",
			json: `[{"version":1,"name":"users","status":"applied","file":"migrations/0001_users.sql","applied_at":"2025-03-04T05:06:07Z","duration_ms":0,"applied_by":"ci@host"},` +
				`{"version":2,"name":"idx","status":"pending","file":"migrations/0002_idx.sql","description":"an index"}]`,
		},
		{
			name: "status: no migrations",
			r:    statusReport{},
			text: "VERSION  NAME  STATUS  APPLIED AT  DURATION\n0 applied, 0 pending, 0 changed, 0 missing-file\n",
			json: `[]`,
		},
		{
			name: "verify: drift",
			r: driftReport{[]migrate.Drift{{Version: 2, File: "migrations/0002_idx.sql", AppliedName: "index", Name: "idx",
				AppliedChecksum: "aa", Checksum: "aa"}}},
			text: "migrations/0002_idx.sql: version 2: applied as \"index\"\n",
			json: `{"drifts":[{"version":2,"file":"migrations/0002_idx.sql","applied_name":"index","name":"idx","applied_checksum":"aa","checksum":"aa"}]}`,
		},
		{
			name: "verify: clean",
			r:    driftReport{},
			text: "every applied migration matches its file\n",
			json: `{"drifts":[]}`,
		},
		{
			name: "verify --rollback: a problem",
			r:    rollbackReport{Checked: 2, Problems: []migrate.RollbackProblem{{Version: 2, Name: "more", Stage: "rollback", Diffs: []string{"index public.t_v exists only after"}}}},
			text: "2_more: its rollback does not restore the schema (\"before\": before it was applied, \"after\": after its rollback):\n  index public.t_v exists only after\n",
			json: `{"checked":2,"problems":[{"version":2,"name":"more","stage":"rollback","differences":["index public.t_v exists only after"]}]}`,
		},
		{
			name: "verify --rollback: clean",
			r:    rollbackReport{Checked: 3},
			text: "3 migrations applied, rolled back and applied again: every rollback restores the schema\n",
			json: `{"checked":3,"problems":[]}`,
		},
		{
			name: "new",
			r:    createdReport{Files: []string{"migrations/0003_x.sql", "migrations/0003_x.rollback.sql"}, Sum: "migrations/poststack.sum"},
			text: "migrations/0003_x.sql\nmigrations/0003_x.rollback.sql\nmigrations/poststack.sum\n",
			json: `{"files":["migrations/0003_x.sql","migrations/0003_x.rollback.sql"],"sum":"migrations/poststack.sum"}`,
		},
		{
			name: "new --no-sum",
			r:    createdReport{Files: []string{"migrations/0003_x.sql", "migrations/0003_x.rollback.sql"}},
			text: "migrations/0003_x.sql\nmigrations/0003_x.rollback.sql\n",
			json: `{"files":["migrations/0003_x.sql","migrations/0003_x.rollback.sql"],"sum":null}`,
		},
		{
			name: "hash",
			r:    sumReport{File: "migrations/poststack.sum", Migrations: 3, Files: 5},
			text: "migrations/poststack.sum: 3 migrations, 5 files\n",
			json: `{"file":"migrations/poststack.sum","migrations":3,"files":5}`,
		},
		{
			name: "hash: one",
			r:    sumReport{File: "db/poststack.sum", Migrations: 1, Files: 1},
			text: "db/poststack.sum: 1 migration, 1 file\n",
			json: `{"file":"db/poststack.sum","migrations":1,"files":1}`,
		},
		{
			name: "create-schema",
			r:    ledgerReport{Schema: "audit", Table: `odd"name`},
			text: "ledger \"audit\".\"odd\"\"name\" ready\n",
			json: `{"schema":"audit","table":"odd\"name"}`,
		},
		{
			name: "wait",
			r:    readyReport{User: "app", Host: "db", Port: 5433, Database: "app", Waited: 1234567 * time.Microsecond},
			text: "app@db:5433/app is ready (1.235s)\n",
			json: `{"user":"app","host":"db","port":5433,"database":"app","duration_ms":1234}`,
		},
		{
			name: "test-connection",
			r:    connectionReport{Database: "app", ServerVersion: "16.4", User: "app"},
			text: "connected: PostgreSQL 16.4, user app, database app\n",
			json: `{"database":"app","server_version":"16.4","user":"app"}`,
		},
		{
			name: "backup",
			r:    backupReport{File: "db.dump"},
			text: "db.dump\nrestore: pg_restore --no-owner --dbname \"$DATABASE_URL\" db.dump\n",
			json: `{"file":"db.dump","restore":"pg_restore --no-owner --dbname \"$DATABASE_URL\" db.dump"}`,
		},
		{
			name: "adopt: golang-migrate written",
			r: adoptReport{Ledger: `"poststack"."schema_migrations"`, Status: adoptWritten, Written: 1, Plan: &adopt.Plan{
				Tool: adopt.GolangMigrate, Table: "public.schema_migrations", NoTimes: true,
				Rows: []adopt.Row{{File: "migrations/0001_users.sql", RollbackFrom: "migrations/0001_users.rollback.sql",
					Adopted: migrate.Adopted{Version: 1, Name: "users", Checksum: "abc", AppliedBy: "adopt:golang-migrate"}}}}},
			text: "golang-migrate ledger public.schema_migrations: 1 version applied\n" +
				"VERSION  FILE                       APPLIED AT  APPLIED BY            ROLLBACK\n" +
				"1        migrations/0001_users.sql  now         adopt:golang-migrate  migrations/0001_users.rollback.sql\n" +
				"golang-migrate records no times: applied_at is the time of adoption\n" +
				"wrote 1 row to \"poststack\".\"schema_migrations\"\n",
			json: `{"tool":"golang-migrate","table":"public.schema_migrations","ledger":"\"poststack\".\"schema_migrations\"","dry_run":false,"status":"written","written":1,` +
				`"rows":[{"version":1,"name":"users","file":"migrations/0001_users.sql","checksum":"abc","applied_by":"adopt:golang-migrate","rollback":"migrations/0001_users.rollback.sql"}],` +
				`"unmatched":[],"drifts":[],"skipped":[],"applied_at_is_now":true}`,
		},
		{
			name: "adopt: goose refused",
			r: adoptReport{Ledger: `"poststack"."schema_migrations"`, Status: adoptRefused, Plan: &adopt.Plan{
				Tool: adopt.Goose, Table: "public.goose_db_version",
				Rows: []adopt.Row{{File: "migrations/0002_b.sql", Adopted: migrate.Adopted{Version: 2, Name: "b", Checksum: "def",
					AppliedAt: applied, AppliedBy: "adopt:goose", Duration: 1500 * time.Millisecond}}},
				Unmatched: []adopt.Applied{{Version: 7, Label: "7"}}, Skipped: []string{"migrations/0001_a.sql"}}},
			text: "goose ledger public.goose_db_version: 2 versions applied\n" +
				"VERSION  FILE                   APPLIED AT           APPLIED BY   ROLLBACK\n" +
				"2        migrations/0002_b.sql  " + applied.Local().Format(time.DateTime) + "  adopt:goose  -\n" +
				"version 7 applied by goose: no file in the migrations directory\n" +
				"migrations/0001_a.sql was not applied by goose although newer ones were: up applies it only with --allow-out-of-order\n" +
				"nothing written to \"poststack\".\"schema_migrations\"\n",
			json: `{"tool":"goose","table":"public.goose_db_version","ledger":"\"poststack\".\"schema_migrations\"","dry_run":false,"status":"refused","written":0,` +
				`"rows":[{"version":2,"name":"b","file":"migrations/0002_b.sql","checksum":"def","applied_at":"2025-03-04T05:06:07Z","applied_by":"adopt:goose","duration_ms":1500,"rollback":null}],` +
				`"unmatched":["7"],"drifts":[],"skipped":["migrations/0001_a.sql"],"applied_at_is_now":false}`,
		},
		{
			name: "convert: written",
			r: convertReport{Src: "db", Dest: "migrations", Files: []string{"migrations/1_a.sql", "migrations/1_a.rollback.sql"}, Sum: "migrations/poststack.sum",
				Result: &convert.Result{Tool: convert.Goose, Migrations: []convert.Migration{{Version: 1, Name: "a", From: []string{"db/1_a.sql"},
					Up: convert.File{Name: "1_a.sql"}, Down: &convert.File{Name: "1_a.rollback.sql"}, NoTransaction: true, Notes: []string{"a note"}}}}},
			text: "1_a.sql + 1_a.rollback.sql <- db/1_a.sql\n  note: a note\nwrote 2 files to migrations\nwrote migrations/poststack.sum\n",
			json: `{"from":"goose","dir":"db","migrations_path":"migrations","dry_run":false,"written":true,` +
				`"migrations":[{"version":1,"name":"a","from":["db/1_a.sql"],"file":"1_a.sql","rollback":"1_a.rollback.sql","no_transaction":true,"notes":["a note"]}],` +
				`"invalid":[],"unconvertible":[],"files":["migrations/1_a.sql","migrations/1_a.rollback.sql"],"sum_file":"migrations/poststack.sum"}`,
		},
		{
			// The error lists the files; the text says nothing more.
			name: "convert: refused",
			r: convertReport{Src: "db", Dest: "migrations", Refused: true, Result: &convert.Result{Tool: convert.Goose,
				Unconvertible: []convert.Problem{{File: "db/2_seed.go", Msg: "a Go migration"}}}},
			text: "",
			json: `{"from":"goose","dir":"db","migrations_path":"migrations","dry_run":false,"written":false,"migrations":[],"invalid":[],` +
				`"unconvertible":[{"file":"db/2_seed.go","message":"a Go migration"}],"files":[]}`,
		},
		{
			name: "lint: findings",
			r: lintReport{Base: lintBase{Ref: "main", Commit: "0123456789abcdef0123", Count: 1},
				Report: &lint.Report{
					Reviewed: []lint.Reviewed{{Version: 2, Name: "idx", File: "migrations/0002_idx.sql", Statements: 1, DurationMS: 4}},
					Findings: []lint.Finding{{Rule: "blocking-index-build", Level: lint.Error, File: "migrations/0002_idx.sql", Line: 2, Col: 1, Version: 2,
						Message: "built index i | on t", Statement: "CREATE INDEX i ON t (n)"}},
					Ignored: []lint.Finding{{Rule: "table-rewrite", Level: lint.Error, File: "migrations/0002_idx.sql", Line: 3, Col: 1, Version: 2,
						Message: "rewrote t", Reason: "small"}},
					Incomplete: "stopped",
				},
				Problems: []lint.Finding{{Rule: "edited-migration", Level: lint.Error, File: "migrations/0001_t.sql", Line: 1, Col: 1, Version: 1, Message: "changed"}},
			},
			text: "migrations/0001_t.sql:1:1: error edited-migration: changed\n" +
				"migrations/0002_idx.sql:2:1: error blocking-index-build: built index i | on t\n" +
				"review stopped early: stopped\n" +
				"1 migration reviewed against main (0123456789ab, 1 migration): 2 errors, 0 warnings, 1 ignored\n",
			json: `{"base":{"ref":"main","commit":"0123456789abcdef0123","migrations":1},` +
				`"reviewed":[{"version":2,"name":"idx","file":"migrations/0002_idx.sql","statements":1,"duration_ms":4}],"errors":2,"incomplete":"stopped",` +
				`"findings":[{"rule":"edited-migration","level":"error","file":"migrations/0001_t.sql","line":1,"col":1,"version":1,"message":"changed","statement":""},` +
				`{"rule":"blocking-index-build","level":"error","file":"migrations/0002_idx.sql","line":2,"col":1,"version":2,"message":"built index i | on t","statement":"CREATE INDEX i ON t (n)"}],` +
				`"ignored":[{"rule":"table-rewrite","level":"error","file":"migrations/0002_idx.sql","line":3,"col":1,"version":2,"message":"rewrote t","statement":"","reason":"small"}],` +
				`"schema_changes":[],"schema_diff":[]}`,
		},
		{
			name: "lint: nothing new",
			r:    lintReport{Base: lintBase{Version: 7, Count: 7}, Report: &lint.Report{}},
			text: "0 migrations reviewed against version 7 (7 migrations): 0 errors, 0 warnings\n",
			json: `{"base":{"version":7,"migrations":7},"reviewed":[],"errors":0,"findings":[],"ignored":[],"schema_changes":[],"schema_diff":[]}`,
		},
		{
			name: "lint --rules",
			r:    rulesReport{Rules: []lint.Rule{{Name: "r", Level: lint.Warning, Summary: "s", Explain: "e"}}},
			text: "r (warning): s\n    e\n\n",
			json: `{"rules":[{"name":"r","level":"warning","summary":"s","explain":"e"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var text, js bytes.Buffer
			if err := tt.r.RenderText(&text); err != nil || text.String() != tt.text {
				t.Errorf("text: %v\n%q\nwant\n%q", err, text.String(), tt.text)
			}
			if err := tt.r.RenderJSON(&js); err != nil {
				t.Fatalf("json: %v", err)
			}
			// Indented, one value, a trailing newline.
			var compact bytes.Buffer
			if err := json.Compact(&compact, js.Bytes()); err != nil || !strings.HasSuffix(js.String(), "\n") || compact.String() != tt.json {
				t.Errorf("json: %v\n%s\nwant (compacted)\n%s", err, js.String(), tt.json)
			}
		})
	}
}
