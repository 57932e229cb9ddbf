package lint

import (
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// FuzzParseIgnores: any migration text gives lint-ignores that name a known rule with a
// reason and point at a statement, or one usage error (exit 2) naming the file; never a panic.
func FuzzParseIgnores(f *testing.F) {
	for _, s := range []string{
		"CREATE INDEX i ON t (n); -- poststack:lint-ignore blocking-index-build t is tiny\n",
		"-- poststack:lint-ignore table-rewrite reviewed by hand\nALTER TABLE t ALTER COLUMN n TYPE bigint;\n",
		"-- poststack:lint-ignore\nSELECT 1;\n",
		"-- poststack:lint-ignore no-such-rule because\nSELECT 1;\n",
		"SELECT 1;\n-- poststack:lint-ignore table-rewrite dangling\n",
		"SELECT '-- poststack:lint-ignore table-rewrite in a string';\n",
		"/* -- poststack:lint-ignore table-rewrite in a block */ SELECT 1;\n",
		"-- POSTSTACK:LINT-IGNORE TABLE-REWRITE upper case\nSELECT 1;\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		ig, err := parseIgnores("m.sql", text, sqlscan.Split(text))
		if err != nil {
			if exitcode.Of(err) != exitcode.Usage || !strings.HasPrefix(err.Error(), "m.sql:") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line naming m.sql, exit 2 (got %d)", err, exitcode.Of(err))
			}
			return
		}
		for _, list := range ig {
			for _, x := range list {
				if _, known := ruleLevel(x.rule); !known || strings.TrimSpace(x.reason) == "" || x.line < 1 {
					t.Fatalf("accepted %+v", x)
				}
			}
		}
	})
}
