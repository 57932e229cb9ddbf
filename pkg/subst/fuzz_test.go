package subst

import (
	"errors"
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

// FuzzCompatible compares Expand and Stream with compose-go on random
// templates, and checks that References does not panic and agrees with
// Expand on where the plain references are.
func FuzzCompatible(f *testing.F) {
	for _, s := range []string{
		"${A:-${B:-x}}}", "${A-}x}", "${U:?${V:?m}} ${W}", "$ſ ${K}",
		"a: ${FOO}\nb: ${U:-{x}}\n", "${A:-{}}", "${A:-{{}}}} $U",
	} {
		f.Add(s, "U", "")
	}
	f.Fuzz(func(t *testing.T, tmpl, name, value string) {
		lookup := fuzzMapping(name, value)
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
	})
}

func hasProblemAt(ps Problems, k Kind, line, col int) bool {
	for _, p := range ps {
		if p.Kind == k && p.Pos.Line == line && p.Pos.Col == col {
			return true
		}
	}
	return false
}
