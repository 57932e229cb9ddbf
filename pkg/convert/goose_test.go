package convert

import (
	"errors"
	"strings"
	"testing"
)

func TestParseGoose(t *testing.T) {
	tests := []struct {
		name             string
		text             string
		header, up, down string
		noTx             bool
		envsub           int
	}{
		{
			name: "up and down",
			text: "-- +goose Up\nCREATE TABLE t (id int);\n\n-- +goose Down\nDROP TABLE t;\n",
			up:   "CREATE TABLE t (id int);\n\n", down: "DROP TABLE t;\n",
		},
		{
			name:   "comments before Up are the header, blank lines before them dropped",
			text:   "\n\n-- users table\n-- owner: team a\n\n-- +goose Up\nCREATE TABLE u (id int);\n",
			header: "-- users table\n-- owner: team a\n\n", up: "CREATE TABLE u (id int);\n",
		},
		{
			name: "statement block markers dropped, SQL kept",
			text: "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n" +
				"-- +goose Down\n-- +goose StatementBegin\nDROP FUNCTION f();\n-- +goose StatementEnd\n",
			up:   "CREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n",
			down: "DROP FUNCTION f();\n",
		},
		{
			name: "annotations are case-insensitive, need no space after --, and may sit anywhere",
			text: "--+goose up\nSELECT 1;\n--   +goose no Transaction\n-- +GOOSE Down is not one: the marker is case-sensitive\n-- +goose DOWN\nSELECT 2;\n",
			up:   "SELECT 1;\n-- +GOOSE Down is not one: the marker is case-sensitive\n", down: "SELECT 2;\n", noTx: true,
		},
		{
			name: "NO TRANSACTION before Up",
			text: "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (x);\n",
			up:   "CREATE INDEX CONCURRENTLY i ON t (x);\n", noTx: true,
		},
		{
			name: "no Down section",
			text: "-- +goose Up\nSELECT 1;",
			up:   "SELECT 1;\n",
		},
		{
			name: "empty Down section",
			text: "-- +goose Up\nSELECT 1;\n-- +goose Down\n-- nothing to undo\n",
			up:   "SELECT 1;\n", down: "-- nothing to undo\n",
		},
		{
			name: "ENVSUB is reported with its line",
			text: "-- +goose Up\n-- +goose ENVSUB ON\nCREATE ROLE ${ROLE};\n-- +goose ENVSUB OFF\n",
			up:   "CREATE ROLE ${ROLE};\n", envsub: 2,
		},
		{
			name: "ENVSUB OFF alone is harmless",
			text: "-- +goose Up\n-- +goose ENVSUB OFF\nSELECT 1;\n",
			up:   "SELECT 1;\n",
		},
		{
			name: "CRLF and a byte order mark",
			text: "\ufeff-- +goose Up\r\nSELECT 1;\r\n-- +goose Down\r\nSELECT 2;\r\n",
			up:   "SELECT 1;\n", down: "SELECT 2;\n",
		},
		{
			name: "a comment that mentions goose without the plus is SQL's",
			text: "-- +goose Up\n-- goose wrote this\nSELECT 1;\n",
			up:   "-- goose wrote this\nSELECT 1;\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := ParseGoose(tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if g.Header != tt.header || g.Up != tt.up || g.Down != tt.down || g.NoTransaction != tt.noTx || g.EnvsubLine != tt.envsub {
				t.Errorf("got header %q up %q down %q noTx %v envsub %d\nwant header %q up %q down %q noTx %v envsub %d",
					g.Header, g.Up, g.Down, g.NoTransaction, g.EnvsubLine, tt.header, tt.up, tt.down, tt.noTx, tt.envsub)
			}
		})
	}
}

func TestParseGooseRefusesWhatGooseRefuses(t *testing.T) {
	tests := []struct {
		name string
		text string
		line int
		msg  string
	}{
		{"no Up", "CREATE TABLE t (id int);\n", 1, `SQL before "-- +goose Up"`},
		{"only comments", "-- a comment\n", 1, `no "-- +goose Up" annotation`},
		{"empty file", "", 1, `no "-- +goose Up" annotation`},
		{"two Ups", "-- +goose Up\nSELECT 1;\n-- +goose Up\n", 3, `a second "-- +goose Up"`},
		{"Down first", "-- +goose Down\nSELECT 1;\n", 1, `"-- +goose Down" before "-- +goose Up"`},
		{"two Downs", "-- +goose Up\n-- +goose Down\n-- +goose Down\n", 3, `a second "-- +goose Down"`},
		{"Down inside a block", "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n", 4, `"-- +goose Down" inside the statement block of line 2`},
		{"unterminated block", "-- +goose Up\nSELECT 1;\n-- +goose StatementBegin\nSELECT 2;\n", 3, `"-- +goose StatementBegin" without "-- +goose StatementEnd"`},
		{"nested block", "-- +goose Up\n-- +goose StatementBegin\n-- +goose StatementBegin\n", 3, `"-- +goose StatementBegin" inside the statement block of line 2`},
		{"End without Begin", "-- +goose Up\n-- +goose StatementEnd\n", 2, `"-- +goose StatementEnd" without "-- +goose StatementBegin"`},
		{"Begin before Up", "-- +goose StatementBegin\n", 1, `"-- +goose StatementBegin" before "-- +goose Up"`},
		{"unknown annotation", "-- +goose Up\n-- +goose Sideways\n", 2, `unknown goose annotation "Sideways"`},
		{"indented annotation", "  -- +goose Up\n", 1, `annotation "  -- +goose Up" is indented; goose refuses it`},
		{"two annotations on a line", "-- +goose Up -- +goose Down\n", 1, "more than one +goose annotation"},
		{"empty annotation", "-- +goose\n", 1, "empty +goose annotation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseGoose(tt.text)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LineError", err)
			}
			if le.Line != tt.line || !strings.Contains(le.Msg, tt.msg) {
				t.Errorf("got line %d %q, want line %d containing %q", le.Line, le.Msg, tt.line, tt.msg)
			}
		})
	}
}

func TestGolangMigrateText(t *testing.T) {
	tests := []struct {
		name, text, want string
		noTx             bool
		notes            int
	}{
		{"plain", "CREATE TABLE t (id int);\n", "CREATE TABLE t (id int);\n", false, 0},
		{"wrapped in BEGIN/COMMIT", "BEGIN;\nCREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\nCOMMIT;\n",
			"CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n", false, 1},
		{"wrapped, lower case, with comments around", "-- first\nbegin transaction;\n\nSELECT 1;\n\ncommit;\n-- last\n",
			"-- first\nSELECT 1;\n-- last\n", false, 1},
		{"a COMMIT in the middle", "BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n",
			"-- poststack:no-transaction\nBEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n", true, 1},
		{"CREATE INDEX CONCURRENTLY", "CREATE INDEX CONCURRENTLY i ON t (x);\n",
			"-- poststack:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);\n", true, 1},
		{"a function body's BEGIN is not one", "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n",
			"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, noTx, notes := golangMigrateText(tt.text)
			if got != tt.want || noTx != tt.noTx || len(notes) != tt.notes {
				t.Errorf("got %q noTx %v notes %q\nwant %q noTx %v %d notes", got, noTx, notes, tt.want, tt.noTx, tt.notes)
			}
		})
	}
}

// FuzzParseGoose: whatever the text, the parser returns without panicking, and what it keeps
// of an accepted file is the file's lines minus the annotation lines, in order.
func FuzzParseGoose(f *testing.F) {
	for _, s := range []string{
		"-- +goose Up\nCREATE TABLE t (id int);\n-- +goose Down\nDROP TABLE t;\n",
		"-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;\n-- +goose StatementEnd\n",
		"-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (x);\n",
		"-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${X}';\n",
		"\ufeff-- +goose Up\r\nSELECT 1;\r\n",
		"  -- +goose Up\n",
		"-- +goose Up -- +goose Down\n",
		"-- +goose\n",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		g, err := ParseGoose(text)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) || le.Line < 1 {
				t.Fatalf("error %v is not a *LineError at a line", err)
			}
			return
		}
		norm := strings.TrimPrefix(strings.ReplaceAll(text, "\r\n", "\n"), "\ufeff")
		var kept []string
		for _, line := range strings.SplitAfter(norm, "\n") {
			trimmed := strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(trimmed, "--") && strings.Contains(line, "+goose") {
				continue
			}
			kept = append(kept, strings.TrimSuffix(line, "\n"))
		}
		got := strings.Split(strings.TrimSuffix(g.Header+g.Up+g.Down, "\n"), "\n")
		want := strings.Join(kept, "\n")
		if !strings.HasSuffix(want, strings.Join(got, "\n")) {
			t.Fatalf("sections %q lose lines of %q", got, kept)
		}
	})
}
