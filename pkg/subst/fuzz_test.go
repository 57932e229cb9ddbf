package subst

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// fuzzMapping has set, empty-set and unset names (anything else is unset),
// plus one name and value taken from the fuzz input.
func fuzzMapping(name, value string) Lookup {
	m := map[string]string{
		"FOO":  "first",
		"A":    "a",
		"BAR":  "",
		"E":    "",
		"JSON": `{"json":2}`,
		"D":    "$FOO ${BAR}",
		"ſ":    "long s",
	}
	if name != "" {
		m[name] = value
	}
	return mapLookup(m)
}

// templateNames finds what compose-go could take for a name anywhere in a
// template (its pattern is case-insensitive, so 'ſ' and the Kelvin sign count).
var templateNames = regexp.MustCompile(`(?i)[_a-z][_a-z0-9]*`)

// fuzzMappings are the variable sets each input runs with: the fixed mixed
// set, then every name of the template unset, set to the empty string, and
// set to a value. An operator's branch is taken or skipped by whether its
// name is unset, empty or set, so each of the three must be tried for every
// name: the mixed set alone never had the name of a nested alternate empty.
func fuzzMappings(tmpl, name, value string) []Lookup {
	if value == "" {
		value = "v"
	}
	empty, set := map[string]string{}, map[string]string{}
	for _, n := range templateNames.FindAllString(tmpl, -1) {
		empty[n], set[n] = "", value
	}
	return []Lookup{fuzzMapping(name, value), mapLookup(nil), mapLookup(empty), mapLookup(set)}
}

// FuzzCompatible compares Expand and Stream with compose-go on random
// templates, and checks that References does not panic and agrees with
// Expand on where the plain references are.
func FuzzCompatible(f *testing.F) {
	for _, s := range []string{
		"${A:-${B:-x}}}", "${A-}x}", "${U:?${V:?m}} ${W}", "$ſ ${K}",
		"a: ${FOO}\nb: ${U:-{x}}\n", "${A:-{}}", "${A:-{{}}}} $U",
		// Nested alternates, unterminated or not, whose outer name is unset, empty or set.
		"x${EMPTY:+${FOO}", "x${E:+${FOO}}", "${E+${U:-${FOO}}", "${A:+${B:+${C}}}",
		"${A:+a${B:-${C:+c}x}y}z", "${U:-${E:+${FOO}}${A+$A}",
	} {
		f.Add(s, "U", "")
		f.Add(s, "EMPTY", "")
	}
	f.Fuzz(func(t *testing.T, tmpl, name, value string) {
		for _, lookup := range fuzzMappings(tmpl, name, value) {
			checkCompatible(t, tmpl, lookup)
		}
	})
}

// checkCompatible compares one template and mapping with compose-go and
// checks References against Expand.
func checkCompatible(t *testing.T, tmpl string, lookup Lookup) {
	t.Helper()
	ps := compareWithCompose(t, tmpl, lookup)

	refs, rerr := References(strings.NewReader(tmpl), "f")
	var rps Problems
	if rerr != nil && !errors.As(rerr, &rps) {
		t.Fatalf("References(%q) error %T %v", tmpl, rerr, rerr)
	}
	// Every evaluated plain reference is also a static one.
	at := map[Position]Reference{}
	for _, r := range refs {
		at[Position{Line: r.Pos.Line, Col: r.Pos.Col}] = r
	}
	for _, p := range ps {
		switch p.Kind {
		case Undefined:
			r, ok := at[Position{Line: p.Pos.Line, Col: p.Pos.Col}]
			if !ok || r.Name != p.Name || r.Op != "" {
				t.Fatalf("template %q: undefined %v has no reference (refs %+v)", tmpl, p, refs)
			}
		case Invalid:
			if !hasProblemAt(rps, Invalid, p.Pos.Line, p.Pos.Col) {
				t.Fatalf("template %q: invalid %v not found by References (%v)", tmpl, p, rps)
			}
		}
	}
}

func hasProblemAt(ps Problems, k Kind, line, col int) bool {
	for _, p := range ps {
		if p.Kind == k && p.Pos.Line == line && p.Pos.Col == col {
			return true
		}
	}
	return false
}
