package cli

import (
	"fmt"
	"strings"
	"testing"
)

// detailed is an error with lines for a person, as migrate.MigrationError.
type detailed struct{ msg, detail string }

func (e *detailed) Error() string  { return e.msg }
func (e *detailed) Detail() string { return e.detail }

// TestReportPrintsDetail: the error line, then the Detail of an error
// anywhere in the chain, masked like the line.
func TestReportPrintsDetail(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"detail", fmt.Errorf("up: %w", &detailed{"f.sql:3:7: ERROR: bad (SQLSTATE 42601)", " 3 | SELEC s3cret;\n   | ^"}),
			"ps-test: up: f.sql:3:7: ERROR: bad (SQLSTATE 42601)\n 3 | SELEC ****;\n   | ^\n"},
		{"no detail", &detailed{"f.sql: ERROR: bad (SQLSTATE 23503)", ""}, "ps-test: f.sql: ERROR: bad (SQLSTATE 23503)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runApp(t, t.TempDir(), nil, tt.err, "--database-url", "postgres://u:s3cret@h/db", "up")
			got := strings.TrimPrefix(r.stderr, "info: up running url=postgres://u:****@h/db\n")
			if r.code != 1 || got != tt.want {
				t.Errorf("exit %d, stderr\n%q\nwant\n%q", r.code, got, tt.want)
			}
		})
	}
}
