package yamlsubst

import (
	"bytes"
	"math/rand"
	"strings"
	"testing"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/subst"
)

// roundTripTemplate puts variables in every position a scalar can take:
// plain, inside plain text, single- and double-quoted, literal and folded
// blocks, flow sequences and mappings, nested, anchored, defaulted, as a
// whole document, and (where they must not be substituted) in keys and
// comments. Inside flow collections ${A} must be quoted or written $A:
// braces are flow indicators there, so unquoted ${A} is not YAML.
const roundTripTemplate = `# head comment ${A}
plain: ${A}
mixed: pre ${B} post
single: '${A}'
double: "${B}\t${C}"
literal: |
  one ${A}
  two ${B}
folded: >
  ${C} folded
flowseq: [ $A, "${B}", '${C}' ]
flowmap: {k: $A, q: "${B}"}
list:
  - ${C}   # line comment ${B}
  - nested:
      deep: ${A}${B}
anchored: &anc ${B}
alias: *anc
key ${A}: untouched
defaulted: ${UNSET:-${A}}
tagged: !!str ${C}
# foot comment
---
${C}
`

// hostile holds pieces of values that break naive YAML substitution.
var hostile = []string{
	" ", "  ", "\t", "\n", "\n\n", "\r", "\r\n", "'", "''", `"`, `\`, `\n`, ":", ": ", " #", "#",
	"-", "- ", "---", "...", "*", "&", "!", "!!", "{", "}", "[", "]", ",", "%", "@", "`", "|",
	">", "?", "$", "$$", "${", "~", "a", "Z", "0", "7", "8080", "1.5", "1e3", ".inf", "0x1F",
	"true", "null", "yes", "off", "1:20", "é", "世界", "🙂", "\u0085", "\u2028", "\u2029",
	"\u00a0", "\ufeff", "\x00", "\x07", "\x1b", "\x7f", "<<", "=", "/", "%YAML",
}

func hostileValue(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.Intn(9) {
		b.WriteString(hostile[rng.Intn(len(hostile))])
	}
	return b.String()
}

// checkRoundTrip renders the template with vars and checks that every value
// scalar of the output reads back as subst.Expand of the template's value,
// and that keys, comments and the document shapes are unchanged.
func checkRoundTrip(t *testing.T, vars map[string]string) {
	t.Helper()
	lookup := mapLookup(vars)
	var out bytes.Buffer
	if err := Render(&out, strings.NewReader(roundTripTemplate), "t.yaml", lookup, subst.Options{}); err != nil {
		t.Fatalf("Render(%q): %v", vars, err)
	}
	want := decodeAll(t, []byte(roundTripTemplate))
	got := decodeAll(t, out.Bytes())
	if len(got) != len(want) {
		t.Fatalf("vars %q: %d documents, want %d\n%s", vars, len(got), len(want), out.String())
	}
	for i := range want {
		compareNodes(t, vars, lookup, want[i], got[i], false, out.String())
	}
}

func compareNodes(t *testing.T, vars map[string]string, lookup subst.Lookup, want, got *yaml.Node, key bool, out string) {
	t.Helper()
	if want.Kind != got.Kind || len(want.Content) != len(got.Content) {
		t.Fatalf("vars %q: line %d: node shape changed (kind %v → %v)\n%s", vars, want.Line, want.Kind, got.Kind, out)
	}
	if want.HeadComment != got.HeadComment || want.LineComment != got.LineComment || want.FootComment != got.FootComment {
		t.Errorf("vars %q: line %d: comments changed: %q %q %q → %q %q %q", vars, want.Line,
			want.HeadComment, want.LineComment, want.FootComment, got.HeadComment, got.LineComment, got.FootComment)
	}
	switch want.Kind {
	case yaml.ScalarNode:
		expected := want.Value
		if !key && strings.Contains(want.Value, "$") {
			var err error
			expected, err = subst.Expand(want.Value, lookup, subst.Options{}, subst.Position{File: "t.yaml", Line: 1, Col: 1})
			if err != nil {
				t.Fatalf("Expand(%q): %v", want.Value, err)
			}
		}
		if got.Value != expected {
			t.Errorf("vars %q: line %d: value %q, want %q\n%s", vars, want.Line, got.Value, expected, out)
		}
	case yaml.AliasNode:
		if got.Value != want.Value {
			t.Errorf("alias %q became %q", want.Value, got.Value)
		}
	case yaml.MappingNode:
		for i := range want.Content {
			compareNodes(t, vars, lookup, want.Content[i], got.Content[i], i%2 == 0, out)
		}
	default:
		for i := range want.Content {
			compareNodes(t, vars, lookup, want.Content[i], got.Content[i], false, out)
		}
	}
}

func decodeAll(t *testing.T, b []byte) []*yaml.Node {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if err.Error() == "EOF" {
				return docs
			}
			t.Fatalf("output is not YAML: %v\n%s", err, b)
		}
		docs = append(docs, &n)
	}
}

func mapLookup(vars map[string]string) subst.Lookup {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

func TestRoundTripHostileValues(t *testing.T) {
	rng := rand.New(rand.NewSource(20240611))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		checkRoundTrip(t, map[string]string{"A": hostileValue(rng), "B": hostileValue(rng), "C": hostileValue(rng)})
		if t.Failed() {
			return
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("8080", "a: b # c", "line\nline")
	f.Add(" lead", "trail ", "\ttab")
	f.Add("---", "*x &y !z", "{}[]%@`")
	f.Add("it's", `say "hi"`, "é世界🙂\u0085\u2028")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) || !utf8.ValidString(c) {
			t.Skip("YAML carries only UTF-8; Render reports this as a problem")
		}
		checkRoundTrip(t, map[string]string{"A": a, "B": b, "C": c})
	})
}
