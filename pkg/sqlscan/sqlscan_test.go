package sqlscan

import (
	"reflect"
	"strings"
	"testing"
)

func sqls(stmts []Statement) []string {
	out := make([]string, 0, len(stmts))
	for _, s := range stmts {
		out = append(out, s.SQL)
	}
	return out
}

func TestSplit(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{"empty", "", []string{}},
		{"only whitespace and comments", " \n-- c;\n/* x; */ ;; ", []string{}},
		{"two statements", "select 1; select 2;", []string{"select 1", "select 2"}},
		{"final without semicolon", "select 1;\nselect 2\n", []string{"select 1", "select 2"}},
		{"leading and trailing comments dropped", "-- head\n/* b */ select 1 -- tail\n;", []string{"select 1"}},
		{"inner comments kept", "select 1 -- one;\n, 2 /* ; */;", []string{"select 1 -- one;\n, 2"}},
		{"comment between tokens kept", "select /* ; */ 1 -- x\n + 2;", []string{"select /* ; */ 1 -- x\n + 2"}},
		{"string with semicolon", "select 'a;b';select 2", []string{"select 'a;b'", "select 2"}},
		{"doubled quote", "select 'it''s; fine'; x", []string{"select 'it''s; fine'", "x"}},
		{"standard string keeps backslash literal", `select 'a\'; select 2`, []string{`select 'a\'`, "select 2"}},
		{"E string backslash escape", `select E'a\'; b'; x`, []string{`select E'a\'; b'`, "x"}},
		{"lower e string", `select e'\\'; x`, []string{`select e'\\'`, "x"}},
		{"e string doubled quote", `select E'a'';b'; x`, []string{`select E'a'';b'`, "x"}},
		{"identifier ending in e is not E string", `select name'a\'; x`, []string{`select name'a\'`, "x"}},
		{"quoted identifier", `select 1 as "a;""b"; x`, []string{`select 1 as "a;""b"`, "x"}},
		{"dollar quote empty tag", "do $$ begin; end $$; x", []string{"do $$ begin; end $$", "x"}},
		{"dollar quote tag", "select $fn$ a; $$ ; $fn$; x", []string{"select $fn$ a; $$ ; $fn$", "x"}},
		{"dollar tag case sensitive", "select $a$ ; $A$ ; $a$; x", []string{"select $a$ ; $A$ ; $a$", "x"}},
		{"parameter is not a tag", "select $1; select $2", []string{"select $1", "select $2"}},
		{"dollar inside identifier", "select a$b$; x$; y", []string{"select a$b$", "x$", "y"}},
		{"lone dollar", "select $ ; x", []string{"select $", "x"}},
		{"dollar tag without close", "select $abc ; x", []string{"select $abc", "x"}},
		{"nested block comment", "select /* a /* b; */ c; */ 1; x", []string{"select /* a /* b; */ c; */ 1", "x"}},
		{"line comment hides quote", "select 1 -- it's\n; x", []string{"select 1", "x"}},
		{"line comment CR", "select 1 -- c\r; x", []string{"select 1", "x"}},
		{"parentheses hide semicolon", "select (1;2); x", []string{"select (1;2)", "x"}},
		{"unbalanced close paren", "select 1); x", []string{"select 1)", "x"}},
		{"begin atomic", "create function f() returns int language sql begin atomic select 1; select 2; end; select 3",
			[]string{"create function f() returns int language sql begin atomic select 1; select 2; end", "select 3"}},
		{"begin atomic with case", "CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END; x",
			[]string{"CREATE OR REPLACE PROCEDURE p() BEGIN ATOMIC SELECT CASE WHEN true THEN 1 END; SELECT 2; END", "x"}},
		{"begin in parens ignored", "create function f(begin int) returns int return 1; x",
			[]string{"create function f(begin int) returns int return 1", "x"}},
		{"transaction begin is not atomic", "begin; create table t(); commit;", []string{"begin", "create table t()", "commit"}},
		{"create trigger with function is not tracked", "create trigger t after insert on x for each row execute function f(); begin; x",
			[]string{"create trigger t after insert on x for each row execute function f()", "begin", "x"}},
		{"case outside function", "select case when true then 1 end; x", []string{"select case when true then 1 end", "x"}},
		{"unterminated string runs to end", "select 1; select 'abc; def", []string{"select 1", "select 'abc; def"}},
		{"unterminated comment", "select 1; /* abc; def", []string{"select 1"}},
		{"unterminated dollar", "select 1; do $x$ abc; def", []string{"select 1", "do $x$ abc; def"}},
		{"multibyte", "select 'é;ü'; select ñ;", []string{"select 'é;ü'", "select ñ"}},
		{"division then comment", "select 4/2/*c;*/; x", []string{"select 4/2", "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Split(tc.text)
			if g := sqls(got); !reflect.DeepEqual(g, tc.want) {
				t.Fatalf("Split(%q)\n got %q\nwant %q", tc.text, g, tc.want)
			}
			for _, s := range got {
				if tc.text[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
					t.Errorf("Offset %d does not point at %q", s.Offset, s.SQL)
				}
				if l, c := LineCol(tc.text, s.Offset); l != s.Line || c != s.Col {
					t.Errorf("%q at %d:%d, LineCol says %d:%d", s.SQL, s.Line, s.Col, l, c)
				}
			}
		})
	}
}

func TestSplitPositions(t *testing.T) {
	text := "-- header\nselect 1;  select 2;\n\n  /* ü */ select 'é\nx';ñ; select 3"
	want := []Statement{
		{SQL: "select 1", Offset: 10, Line: 2, Col: 1},
		{SQL: "select 2", Offset: 21, Line: 2, Col: 12},
		{SQL: "select 'é\nx'", Offset: 43, Line: 4, Col: 11},
		{SQL: "ñ", Offset: 57, Line: 5, Col: 4},
		{SQL: "select 3", Offset: 61, Line: 5, Col: 7},
	}
	if got := Split(text); !reflect.DeepEqual(got, want) {
		t.Errorf("Split:\n got %+v\nwant %+v", got, want)
	}
}

func TestCharPosition(t *testing.T) {
	tests := []struct {
		text      string
		pos       int
		line, col int
	}{
		{"select 1", 1, 1, 1},
		{"select 1", 8, 1, 8},
		{"select 1", 9, 1, 9},   // just past the end
		{"select 1", 100, 1, 9}, // clamped
		{"select 1", 0, 1, 1},
		{"a\nb", 3, 2, 1},
		{"a\nb", 2, 1, 2}, // the newline itself
		{"éé\nüx", 5, 2, 2},
		{"日本\n語 x", 6, 2, 3},
		{"a\r\nb", 4, 2, 1},
	}
	for _, tc := range tests {
		if l, c := CharPosition(tc.text, tc.pos); l != tc.line || c != tc.col {
			t.Errorf("CharPosition(%q, %d) = %d:%d, want %d:%d", tc.text, tc.pos, l, c, tc.line, tc.col)
		}
	}
}

func TestLineCol(t *testing.T) {
	tests := []struct {
		text      string
		off       int
		line, col int
	}{
		{"abc", 0, 1, 1},
		{"abc", 2, 1, 3},
		{"abc", 3, 1, 4},
		{"abc", 99, 1, 4},
		{"abc", -1, 1, 1},
		{"a\nbc", 3, 2, 2},
		{"é\nüx", 5, 2, 2}, // é=2 bytes, \n, ü=2 bytes
		{"éx", 2, 1, 2},
	}
	for _, tc := range tests {
		if l, c := LineCol(tc.text, tc.off); l != tc.line || c != tc.col {
			t.Errorf("LineCol(%q, %d) = %d:%d, want %d:%d", tc.text, tc.off, l, c, tc.line, tc.col)
		}
	}
}

func TestStatementPosition(t *testing.T) {
	text := "select 1;\n  select 'é',\n  bogus x;"
	stmts := Split(text)
	if len(stmts) != 2 {
		t.Fatalf("got %d statements", len(stmts))
	}
	st := stmts[1]
	// Position of "select" (1) and "bogus" (15th char: "select 'é',\n  " is 14 chars).
	tests := []struct{ pos, line, col int }{
		{1, 2, 3},
		{3, 2, 5},
		{15, 3, 3},
	}
	for _, tc := range tests {
		if l, c := st.Position(tc.pos); l != tc.line || c != tc.col {
			t.Errorf("Position(%d) = %d:%d, want %d:%d", tc.pos, l, c, tc.line, tc.col)
		}
	}
}

func TestHasTransactionControl(t *testing.T) {
	tests := []struct {
		text string
		want string // the reported statement, "" for none
	}{
		{"create table t(); insert into t default values", ""},
		{"create table t(); commit", "commit"},
		{"BEGIN; create table t()", "BEGIN"},
		{"begin transaction isolation level serializable", "begin transaction isolation level serializable"},
		{"start transaction; x", "start transaction"},
		{"start something", ""},
		{"END", "END"},
		{"abort", "abort"},
		{"rollback", "rollback"},
		{"rollback to savepoint s", ""},
		{"ROLLBACK TO s", ""},
		{"rollback prepared 'x'", ""},
		{"commit prepared 'x'", ""},
		{"commit and chain", "commit and chain"},
		{"prepare transaction 'x'", "prepare transaction 'x'"},
		{"prepare q as select 1", ""},
		{"/* c */ commit", "commit"},
		{"commit /* c */ prepared 'x'", ""},
		{"savepoint s; release s", ""},
		{"do $$ begin commit; end $$", ""},
		{"create function f() returns int language sql begin atomic select 1; end", ""},
		{"create procedure p() language plpgsql as $$ begin commit; end $$", ""},
		{"select 'commit'; \"begin\"", ""},
	}
	for _, tc := range tests {
		st, ok := HasTransactionControl(Split(tc.text))
		if ok != (tc.want != "") || st.SQL != tc.want {
			t.Errorf("HasTransactionControl(%q) = %q, %v; want %q", tc.text, st.SQL, ok, tc.want)
		}
	}
}

func BenchmarkSplit(b *testing.B) {
	unit := "-- a migration\nCREATE TABLE t_x (id bigint PRIMARY KEY, name text NOT NULL DEFAULT 'it''s; here');\n" +
		"CREATE INDEX ON t_x (name); /* comment; */\n" +
		"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $fn$ BEGIN NEW.name := E'\\n;'; RETURN NEW; END $fn$;\n" +
		"INSERT INTO t_x VALUES (1, 'héllo wörld'), (2, \"x\");\n"
	text := strings.Repeat(unit, 10<<20/len(unit))
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		if len(Split(text)) == 0 {
			b.Fatal("no statements")
		}
	}
}
