package pgschema

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// object is one catalog object flattened for comparison: its properties in a fixed order.
type object struct {
	rank   int    // kinds sort in this order
	kind   string // "table", "column", …
	name   string // qualified, e.g. "public.users.email"
	parent string // key of the owning object; its absence on one side hides this one
	props  []prop
}

type prop struct{ name, value string }

func (o object) key() string { return o.kind + " " + o.name }

// Kind ranks: the order in which Diff reports.
const (
	rankSchema = iota
	rankExtension
	rankType
	rankSequence
	rankTable
	rankColumn
	rankConstraint
	rankIndex
	rankTrigger
	rankView
	rankFunction
)

func flatten(s *Schema) map[string]object {
	out := map[string]object{}
	add := func(o object) { out[o.key()] = o }
	for _, n := range s.Schemas {
		add(object{rank: rankSchema, kind: "schema", name: n})
	}
	for _, e := range s.Extensions {
		add(object{rank: rankExtension, kind: "extension", name: e.Name, props: []prop{
			{"schema", e.Schema}, {"version", e.Version}}})
	}
	for _, t := range s.Types {
		name := t.Schema + "." + t.Name
		props := []prop{{"kind", t.Kind}}
		switch t.Kind {
		case "enum":
			props = append(props, prop{"labels", strings.Join(t.Labels, ", ")})
		case "domain":
			cons := make([]string, 0, len(t.Constraints))
			for _, c := range t.Constraints {
				cons = append(cons, c.Name+" "+c.Definition)
			}
			props = append(props, prop{"base type", t.BaseType}, prop{"nullability", nullability(t.NotNull)},
				prop{"default", t.Default}, prop{"constraints", strings.Join(cons, "; ")})
		case "composite":
			attrs := make([]string, 0, len(t.Attributes))
			for _, a := range t.Attributes {
				attrs = append(attrs, a.Name+" "+a.Type)
			}
			props = append(props, prop{"attributes", strings.Join(attrs, ", ")})
		}
		add(object{rank: rankType, kind: "type", name: name, props: props})
	}
	for _, q := range s.Sequences {
		add(object{rank: rankSequence, kind: "sequence", name: q.Schema + "." + q.Name,
			props: []prop{
				{"type", q.Type}, {"start", itoa(q.Start)}, {"increment", itoa(q.Increment)},
				{"minimum", itoa(q.Min)}, {"maximum", itoa(q.Max)}, {"cache", itoa(q.Cache)},
				{"cycle", strconv.FormatBool(q.Cycle)}, {"owned by", q.OwnedBy},
			}})
	}
	for _, t := range s.Tables {
		tname := t.Schema + "." + t.Name
		tkey := "table " + tname
		add(object{rank: rankTable, kind: "table", name: tname,
			props: []prop{{"kind", t.Kind}}})
		for _, c := range t.Columns {
			add(object{rank: rankColumn, kind: "column", name: tname + "." + c.Name, parent: tkey, props: []prop{
				{"type", c.Type}, {"nullability", nullability(c.NotNull)}, {"default", c.Default},
				{"identity", c.Identity}, {"generated", c.Generated}, {"collation", c.Collation},
			}})
		}
		for _, c := range t.Constraints {
			add(object{rank: rankConstraint, kind: "constraint", name: tname + "." + c.Name, parent: tkey,
				props: []prop{{"type", c.Type}, {"definition", c.Definition}}})
		}
		for _, ix := range t.Indexes {
			add(object{rank: rankIndex, kind: "index", name: t.Schema + "." + ix.Name, parent: tkey,
				props: []prop{{"definition", ix.Definition}}})
		}
		for _, tr := range t.Triggers {
			add(object{rank: rankTrigger, kind: "trigger", name: tname + "." + tr.Name, parent: tkey,
				props: []prop{{"definition", tr.Definition}}})
		}
	}
	for _, v := range s.Views {
		kind := "view"
		if v.Materialized {
			kind = "materialized view"
		}
		vname := v.Schema + "." + v.Name
		add(object{rank: rankView, kind: kind, name: vname,
			props: []prop{{"definition", v.Definition}}})
		for _, ix := range v.Indexes {
			add(object{rank: rankIndex, kind: "index", name: v.Schema + "." + ix.Name, parent: kind + " " + vname,
				props: []prop{{"definition", ix.Definition}}})
		}
	}
	for _, f := range s.Functions {
		add(object{rank: rankFunction, kind: f.Kind, name: f.Schema + "." + f.Signature(),
			props: []prop{{"result", f.Result}, {"definition", f.Definition}}})
	}
	return out
}

func nullability(notNull bool) string {
	if notNull {
		return "not null"
	}
	return "nullable"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Diff lists the differences between two snapshots as sentences a person understands, in a
// deterministic order (by kind: schemas, extensions, types, sequences, tables, columns,
// constraints, indexes, triggers, views, functions; then by name), for example
// "index public.users_email_idx exists only after" or
// "column public.t.c: type integer → bigint". Objects inside one that exists on one side only
// are not listed separately. Long or multi-line values (view and function bodies) are reported
// as "changed" without being printed. Identical snapshots give no sentences.
func Diff(before, after *Schema) []string {
	var out []string
	for _, c := range Changes(before, after) {
		k := c.Kind + " " + c.Name
		switch c.Action {
		case Dropped:
			out = append(out, k+" exists only before")
		case Added:
			out = append(out, k+" exists only after")
		default:
			for _, d := range c.Details {
				out = append(out, k+": "+d)
			}
		}
	}
	return out
}

// Action is what happened to an object between two snapshots.
type Action string

// The actions of a Change.
const (
	Added   Action = "added"
	Dropped Action = "dropped"
	Changed Action = "changed"
)

// Change is one object that differs between two snapshots.
type Change struct {
	Kind   string `json:"kind"` // "table", "column", "index", …
	Name   string `json:"name"` // qualified: "public.users", "public.users.email"
	Action Action `json:"action"`
	// Details say what changed, for a changed object: "type integer → bigint".
	Details []string `json:"details,omitempty"`
}

// Changes lists the objects that differ, in Diff's order; an object inside one that was added
// or dropped is not listed separately.
func Changes(before, after *Schema) []Change {
	if before == nil {
		before = &Schema{}
	}
	if after == nil {
		after = &Schema{}
	}
	b, a := flatten(before), flatten(after)
	var objs []object
	seen := map[string]bool{}
	for _, m := range []map[string]object{b, a} {
		for k, o := range m {
			if !seen[k] {
				seen[k] = true
				objs = append(objs, o)
			}
		}
	}
	slices.SortFunc(objs, func(x, y object) int {
		return cmp.Or(cmp.Compare(x.rank, y.rank), strings.Compare(x.name, y.name), strings.Compare(x.kind, y.kind))
	})
	var out []Change
	for _, o := range objs {
		k := o.key()
		bo, inB := b[k]
		ao, inA := a[k]
		switch {
		case inB && !inA:
			if _, ok := a[o.parent]; o.parent == "" || ok {
				out = append(out, Change{Kind: o.kind, Name: o.name, Action: Dropped})
			}
		case inA && !inB:
			if _, ok := b[o.parent]; o.parent == "" || ok {
				out = append(out, Change{Kind: o.kind, Name: o.name, Action: Added})
			}
		default:
			details := propChanges(bo.props, ao.props)
			if o.kind == "table" {
				details = append(details, columnOrder(before, after, o.name)...)
			}
			if len(details) > 0 {
				out = append(out, Change{Kind: o.kind, Name: o.name, Action: Changed, Details: details})
			}
		}
	}
	return out
}

// propChanges compares properties by name, in before's order then after's new ones, because a
// type that changed kind (enum to domain) has different properties on each side.
func propChanges(before, after []prop) []string {
	var out []string
	value := func(ps []prop, name string) string {
		for _, p := range ps {
			if p.name == name {
				return p.value
			}
		}
		return ""
	}
	for _, p := range before {
		if av := value(after, p.name); p.value != av {
			out = append(out, change(p.name, p.value, av))
		}
	}
	for _, p := range after {
		if !slices.ContainsFunc(before, func(q prop) bool { return q.name == p.name }) && p.value != "" {
			out = append(out, change(p.name, "", p.value))
		}
	}
	return out
}

// change renders one property change.
func change(name, before, after string) string {
	if long(before) || long(after) {
		return name + " changed"
	}
	return fmt.Sprintf("%s %s → %s", name, shown(before), shown(after))
}

func long(s string) bool {
	return strings.ContainsAny(s, "\n\r") || utf8.RuneCountInString(s) > 100
}

func shown(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// columnOrder reports a table whose columns present on both sides come in a different order,
// which changes what SELECT * and INSERT without a column list do.
func columnOrder(before, after *Schema, name string) []string {
	find := func(s *Schema) []string {
		for _, t := range s.Tables {
			if t.Schema+"."+t.Name == name {
				names := make([]string, 0, len(t.Columns))
				for _, c := range t.Columns {
					names = append(names, c.Name)
				}
				return names
			}
		}
		return nil
	}
	bc, ac := find(before), find(after)
	common := func(cols, other []string) []string {
		var out []string
		for _, c := range cols {
			if slices.Contains(other, c) {
				out = append(out, c)
			}
		}
		return out
	}
	bo, ao := common(bc, ac), common(ac, bc)
	if slices.Equal(bo, ao) {
		return nil
	}
	return []string{fmt.Sprintf("column order %s → %s", strings.Join(bo, ", "), strings.Join(ao, ", "))}
}
