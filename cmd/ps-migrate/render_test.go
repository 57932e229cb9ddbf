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
			r:    createdReport{[]string{"migrations/0003_x.sql", "migrations/0003_x.rollback.sql"}},
			text: "migrations/0003_x.sql\nmigrations/0003_x.rollback.sql\n",
			json: `{"files":["migrations/0003_x.sql","migrations/0003_x.rollback.sql"]}`,
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
