package sqlscan

import (
	"reflect"
	"strings"
	"testing"
)

func FuzzSplit(f *testing.F) {
	for _, s := range []string{
		"select 1; select 2",
		"select 'a;b' ; E'\\';' ; \"x;\"\"y\"",
		"do $$ ; $$; $x$ $$ ; $x$; $1; a$b$",
		"/* /* ; */ */ -- ;\nselect (;);",
		"create function f() begin atomic select case when 1 then 2 end; end; x",
		"select 'unterminated",
		"é;ü;\r\n日本",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		stmts := Split(text)
		prevEnd := -1
		for _, s := range stmts {
			if s.SQL == "" {
				t.Fatalf("empty statement in %q", text)
			}
			if s.Offset <= prevEnd || s.Offset+len(s.SQL) > len(text) {
				t.Fatalf("statement %q at %d overlaps or overruns (previous end %d, len %d)", s.SQL, s.Offset, prevEnd, len(text))
			}
			if text[s.Offset:s.Offset+len(s.SQL)] != s.SQL {
				t.Fatalf("Offset %d does not locate %q", s.Offset, s.SQL)
			}
			if l, c := LineCol(text, s.Offset); l != s.Line || c != s.Col {
				t.Fatalf("%q at %d:%d, LineCol says %d:%d", s.SQL, s.Line, s.Col, l, c)
			}
			if again := Split(s.SQL); len(again) != 1 || again[0].SQL != s.SQL {
				t.Fatalf("Split(%q) alone gives %q", s.SQL, sqls(again))
			}
			prevEnd = s.Offset + len(s.SQL)
		}
		want := sqls(stmts)
		if got := sqls(Split(strings.Join(want, ";\n"))); !reflect.DeepEqual(got, want) {
			t.Fatalf("re-split of joined statements differs:\n got %q\nwant %q", got, want)
		}
		if len(text) > 0 {
			// Any position inside the text maps to a line that exists.
			l, _ := CharPosition(text, len([]rune(text)))
			if l > strings.Count(text, "\n")+1 {
				t.Fatalf("CharPosition past last line: %d", l)
			}
		}
		HasTransactionControl(stmts)
	})
}
