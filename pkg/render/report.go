package render

import (
	"errors"
	"slices"
	"unicode/utf8"

	"github.com/poststack/poststack/pkg/subst"
	"github.com/poststack/poststack/pkg/yamlsubst"
)

// Variable is everything the templates say about one variable: the
// answer to `ps-subst --list`.
type Variable struct {
	Name string `json:"name"`
	// Required is true when some reference needs a value: $V, ${V},
	// ${V:?msg} or ${V?msg}.
	Required bool `json:"required"`
	// Default is the first default given by a ${V:-d} or ${V-d} reference.
	Default    string `json:"default,omitempty"`
	HasDefault bool   `json:"has_default"`
	// Locations are the positions of every reference, in input order.
	Locations []subst.Position `json:"-"`
	Where     []string         `json:"locations"`
}

// References lists every variable reference in inputs, in order. Invalid
// templates are reported together as subst.Problems after all inputs were read.
func References(inputs []Input, yaml bool) ([]subst.Reference, error) {
	var refs []subst.Reference
	var problems subst.Problems
	for _, in := range inputs {
		r, err := in.Open()
		if err != nil {
			return nil, err
		}
		var got []subst.Reference
		if yaml {
			got, err = yamlsubst.References(r, in.Name)
		} else {
			got, err = subst.References(r, in.Name)
		}
		r.Close()
		var ps subst.Problems
		switch {
		case errors.As(err, &ps):
			problems = append(problems, ps...)
		case err != nil:
			return nil, err
		}
		refs = append(refs, got...)
	}
	if len(problems) > 0 {
		return refs, problems
	}
	return refs, nil
}

// List groups references by variable, in order of first appearance.
func List(refs []subst.Reference) []Variable {
	var vars []Variable
	index := map[string]int{}
	for _, r := range refs {
		i, ok := index[r.Name]
		if !ok {
			i = len(vars)
			index[r.Name] = i
			vars = append(vars, Variable{Name: r.Name})
		}
		v := &vars[i]
		if r.Required() {
			v.Required = true
		}
		if (r.Op == ":-" || r.Op == "-") && !v.HasDefault {
			v.Default, v.HasDefault = r.Default, true
		}
		v.Locations = append(v.Locations, r.Pos)
		v.Where = append(v.Where, r.Pos.String())
	}
	return vars
}

// Status is how a referenced variable resolves.
type Status string

// The statuses Check reports.
const (
	Set       Status = "set"       // it has a value
	Defaulted Status = "default"   // unset, but every reference has a default or handles unset
	Undefined Status = "UNDEFINED" // unset and some reference needs a value
)

// Resolved is one line of `ps-subst --check`.
type Resolved struct {
	Variable
	Status Status `json:"status"`
	Value  string `json:"value,omitempty"`
	Source string `json:"source,omitempty"`
	Secret bool   `json:"secret"`
}

// Var is what Check needs to know of a variable's value.
type Var struct {
	Value, Source string
	Secret        bool
}

// Check resolves every listed variable with lookup. It reports the value
// and its source as they are; masking secrets is the renderer's business.
func Check(vars []Variable, lookup func(name string) (Var, bool)) []Resolved {
	out := make([]Resolved, 0, len(vars))
	for _, v := range vars {
		r := Resolved{Variable: v}
		val, ok := lookup(v.Name)
		switch {
		case ok:
			r.Status, r.Value, r.Source, r.Secret = Set, val.Value, val.Source, val.Secret
		case v.Required:
			r.Status = Undefined
		default:
			r.Status = Defaulted
		}
		out = append(out, r)
	}
	return out
}

// UndefinedNames returns the names of the variables Check found undefined.
func UndefinedNames(rs []Resolved) []string {
	var names []string
	for _, r := range rs {
		if r.Status == Undefined {
			names = append(names, r.Name)
		}
	}
	return slices.Clip(names)
}

// MaxDefault is how much of a default a report shows: defaults nest, and a template of
// nested defaults would otherwise print the text of each level again, quadratic in the
// template's size.
const MaxDefault = 256

// Excerpt cuts s to MaxDefault bytes, at a character boundary, marking the cut.
func Excerpt(s string) string {
	if len(s) <= MaxDefault {
		return s
	}
	n := MaxDefault
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
