package migrate

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestMigrationErrorIsOneLine: Error is FILE:LINE:COL and the message on
// one line, whatever the server sent; DETAIL, HINT, CONTEXT, the caret and
// the NOTEs are Detail's, in that order.
func TestMigrationErrorIsOneLine(t *testing.T) {
	tests := []struct {
		name       string
		err        *MigrationError
		msg        string
		wantDetail string
	}{
		{
			name: "position, detail, hint, context and caret",
			err: &MigrationError{File: "migrations/0002_dup.sql", Line: 2, Col: 2, Source: "\tINSERT INTO a VALUES (1);",
				Err: &pgconn.PgError{Severity: "ERROR", Code: "23505", Message: `duplicate key value violates unique constraint "a_pkey"`,
					Detail: "Key (id)=(1) already exists.", Hint: "the hint", Where: "line one\nline two"}},
			msg: `migrations/0002_dup.sql:2:2: ERROR: duplicate key value violates unique constraint "a_pkey" (SQLSTATE 23505)`,
			wantDetail: "DETAIL: Key (id)=(1) already exists.\nHINT: the hint\nCONTEXT: line one\n  line two\n" +
				" 2 | \tINSERT INTO a VALUES (1);\n   | \t^",
		},
		{
			name: "no position: no caret",
			err:  &MigrationError{File: "migrations/1_x.sql", Err: &pgconn.PgError{Code: "23503", Message: "violates foreign key"}},
			msg:  "migrations/1_x.sql: ERROR: violates foreign key (SQLSTATE 23503)",
		},
		{
			name: "a raised message with line breaks stays one line",
			err: &MigrationError{File: "migrations/1_x.sql", Line: 1, Col: 1, Source: "DO $$ … $$;",
				Err: &pgconn.PgError{Severity: "ERROR", Code: "P0001", Message: "first\nsecond\r\nthird"}},
			msg:        "migrations/1_x.sql:1:1: ERROR: first second third (SQLSTATE P0001)",
			wantDetail: " 1 | DO $$ … $$;\n   | ^",
		},
		{
			name: "cannot run in a transaction",
			err: &MigrationError{File: "migrations/2_i.sql", Line: 1, Col: 1, Source: "CREATE INDEX CONCURRENTLY i ON a (id);",
				Err: &pgconn.PgError{Severity: "ERROR", Code: "25001", Message: "CREATE INDEX CONCURRENTLY cannot run inside a transaction block"}},
			msg: "migrations/2_i.sql:1:1: ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block (SQLSTATE 25001)",
			wantDetail: " 1 | CREATE INDEX CONCURRENTLY i ON a (id);\n   | ^\n" +
				`NOTE: this statement cannot run in a transaction; put it in its own file that starts with "-- poststack:no-transaction"`,
		},
		{
			name: "without a transaction",
			err: &MigrationError{File: "migrations/2_nt.sql", Line: 3, Col: 23, NoTransaction: true,
				Err: &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type integer: "x"`}},
			msg:        `migrations/2_nt.sql:3:23: ERROR: invalid input syntax for type integer: "x" (SQLSTATE 22P02)`,
			wantDetail: "NOTE: the file runs without a transaction: statements before the failing one have taken effect and were not undone; it is not recorded as applied",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.msg {
				t.Errorf("Error() = %q, want %q", got, tt.msg)
			}
			if got := tt.err.Detail(); got != tt.wantDetail {
				t.Errorf("Detail() =\n%s\nwant\n%s", got, tt.wantDetail)
			}
			// Through the PartialError a run returns, Error is still the one line.
			pe := &PartialError{Err: tt.err}
			if got := pe.Error(); strings.ContainsAny(got, "\n^") && !strings.Contains(tt.msg, "^") {
				t.Errorf("PartialError.Error() carries more than the line: %q", got)
			}
		})
	}
}
