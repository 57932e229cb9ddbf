package subst

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/compose-spec/compose-go/v2/template"
	"github.com/sirupsen/logrus"
)

func TestMain(m *testing.M) {
	// compose-go warns through the global logrus logger for unset variables.
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// composeDefaults is the mapping of compose-go's template_test.go.
var composeDefaults = map[string]string{
	"FOO":  "first",
	"BAR":  "",
	"JSON": `{"json":2}`,
}

func mapLookup(m map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// compareWithCompose runs tmpl through compose-go and through Expand (and
// Stream) and fails on any difference. It returns Expand's strict problems.
func compareWithCompose(t *testing.T, tmpl string, lookup Lookup) Problems {
	t.Helper()
	want, werr := template.SubstituteWithOptions(tmpl, template.Mapping(lookup), template.WithoutLogging)
	got, gerr := Expand(tmpl, lookup, Options{AllowUndefined: true}, Position{})
	if got != want {
		t.Fatalf("template %q: Expand = %q, compose-go = %q", tmpl, got, want)
	}
	if (gerr == nil) != (werr == nil) {
		t.Fatalf("template %q: Expand error %v, compose-go error %v", tmpl, gerr, werr)
	}
	var lenient Problems
	if gerr != nil {
		if !errors.As(gerr, &lenient) {
			t.Fatalf("template %q: error %T is not Problems", tmpl, gerr)
		}
		for _, p := range lenient {
			if p.Kind == Undefined {
				t.Fatalf("template %q: undefined reported with AllowUndefined: %v", tmpl, p)
			}
		}
		var req *template.MissingRequiredError
		var inv *template.InvalidTemplateError
		switch {
		case errors.As(werr, &req):
			if !hasProblem(lenient, Required, req.Variable) {
				t.Fatalf("template %q: compose-go says %v, Expand says %v", tmpl, werr, gerr)
			}
		case errors.As(werr, &inv):
			if !hasProblem(lenient, Invalid, "") {
				t.Fatalf("template %q: compose-go says %v, Expand says %v", tmpl, werr, gerr)
			}
		default:
			t.Fatalf("template %q: unexpected compose-go error %T %v", tmpl, werr, werr)
		}
	}

	strict, serr := Expand(tmpl, lookup, Options{}, Position{})
	if strict != want {
		t.Fatalf("template %q: strict Expand = %q, compose-go = %q", tmpl, strict, want)
	}
	var ps Problems
	if serr != nil && !errors.As(serr, &ps) {
		t.Fatalf("template %q: strict error %T is not Problems", tmpl, serr)
	}
	var others Problems
	for _, p := range ps {
		if p.Kind != Undefined {
			others = append(others, p)
		}
	}
	if !sameProblems(others, lenient) {
		t.Fatalf("template %q: strict problems %v, lenient %v", tmpl, ps, lenient)
	}

	// Stream must agree with Expand however the input is cut.
	for _, size := range []int{1, 2, 3, 5, 16, readSize} {
		var out bytes.Buffer
		e := newEngine(lookup, Options{}, &out, Position{})
		if err := run(e, iotest.HalfReader(strings.NewReader(tmpl)), size); err != nil {
			t.Fatalf("template %q: run: %v", tmpl, err)
		}
		if out.String() != want {
			t.Fatalf("template %q, buffer %d: Stream = %q, compose-go = %q", tmpl, size, out.String(), want)
		}
		if !sameProblems(e.problems, ps) {
			t.Fatalf("template %q, buffer %d: Stream problems\n%v\nExpand problems\n%v", tmpl, size, e.problems, ps)
		}
	}
	return ps
}

func hasProblem(ps Problems, k Kind, name string) bool {
	for _, p := range ps {
		if p.Kind == k && (name == "" || p.Name == name) {
			return true
		}
	}
	return false
}

func sameProblems(a, b Problems) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if *a[i] != *b[i] {
			return false
		}
	}
	return true
}

// TestComposeGoCases ports every case of compose-go's template_test.go.
// Cases that exercise compose-go's custom substitution and replacement
// functions are kept with compose-go's default behaviour, which is the only
// one this package has.
func TestComposeGoCases(t *testing.T) {
	const (
		ok       = ""
		invalid  = "invalid"
		required = "required"
	)
	type tc struct {
		name     string
		template string
		want     string
		err      string   // ok, invalid or required
		variable string   // for required
		undef    []string // undefined variables, strict mode
		lookup   Lookup   // composeDefaults if nil
	}
	aIsValue := func(k string) (string, bool) {
		if k == "A" {
			return "value", true
		}
		return "", false
	}
	cases := []tc{
		{name: "Escaped", template: "$${foo}", want: "${foo}"},
		{name: "NoMatch", template: "foo", want: "foo"},
		{name: "Unescaped1", template: "a $ string", want: "a $ string"},
		{name: "Unescaped2", template: "^REGEX$", want: "^REGEX$"},
		{name: "Unescaped3", template: "$}", want: "$}"},
		{name: "Unescaped4", template: "$", want: "$"},
		{name: "Invalid1", template: "${", err: invalid},
		{name: "Invalid2", template: "${}", want: "}", err: invalid},
		{name: "Invalid3", template: "${ }", want: " }", err: invalid},
		{name: "Invalid4", template: "${ foo}", want: " foo}", err: invalid},
		{name: "Invalid5", template: "${foo }", want: "foo }", err: invalid},
		{name: "Invalid6", template: "${foo!}", want: "foo!}", err: invalid},
		{name: "NonBraced", template: "$FOO-bar", want: "first-bar"},
		{name: "NoValueNoDefault1", template: "This ${missing} var", want: "This  var", undef: []string{"missing"}},
		{name: "NoValueNoDefault2", template: "This ${BAR} var", want: "This  var"},
		{name: "ValueNoDefault1", template: "This $FOO var", want: "This first var"},
		{name: "ValueNoDefault2", template: "This ${FOO} var", want: "This first var"},
		{name: "NoValueWithDefault1", template: "ok ${missing:-def}", want: "ok def"},
		{name: "NoValueWithDefault2", template: "ok ${missing-def}", want: "ok def"},
		{name: "LazyDefaultDoesNotWarn", template: "${A:+${A},}B", want: "B"},
		{name: "LazyDefaultWarnsWhenUsed", template: "${A:-${B}}", want: "", undef: []string{"B"}},
		{name: "LazyRequiredMessageDoesNotWarn", template: "${A?${B}}", want: "value", lookup: aIsValue},
		{name: "EmptyValueWithSoftDefault", template: "ok ${BAR:-def}", want: "ok def"},
		{name: "ValueWithSoftDefault", template: "ok ${FOO:-def}", want: "ok first"},
		{name: "EmptyValueWithHardDefault", template: "ok ${BAR-def}", want: "ok "},
		{name: "PresentValueWithUnset", template: "ok ${UNSET_VAR:+presence_value}", want: "ok "},
		{name: "PresentValueWithUnset2", template: "ok ${UNSET_VAR+presence_value}", want: "ok "},
		{name: "PresentValueWithNonEmpty", template: "ok ${FOO:+presence_value}", want: "ok presence_value"},
		{name: "PresentValueAndNonEmptyWithNonEmpty", template: "ok ${FOO+presence_value}", want: "ok presence_value"},
		{name: "PresentValueWithSet", template: "ok ${BAR+presence_value}", want: "ok presence_value"},
		{name: "PresentValueAndNotEmptyWithSet", template: "ok ${BAR:+presence_value}", want: "ok "},
		{name: "NonAlphanumericDefault", template: "ok ${BAR:-/non:-alphanumeric}", want: "ok /non:-alphanumeric"},
		{name: "ExternalInterference0", template: "-ok ${BAR:-defaultValue}", want: "-ok defaultValue"},
		{name: "ExternalInterference1", template: "+ok ${UNSET:-${BAR-defaultValue}}", want: "+ok "},
		{name: "ExternalInterference2", template: "-ok ${FOO:-defaultValue}", want: "-ok first"},
		{name: "ExternalInterference3", template: ":-ok ${UNSET-defaultValue}", want: ":-ok defaultValue"},
		{name: "ExternalInterference4", template: ":-ok ${BAR-defaultValue}", want: ":-ok "},
		{name: "ExternalInterference5", template: ":?ok ${BAR-defaultValue}", want: ":?ok "},
		{name: "ExternalInterference6", template: ":?ok ${BAR:-defaultValue}", want: ":?ok defaultValue"},
		{name: "ExternalInterference7", template: ":+ok ${BAR:-defaultValue}", want: ":+ok defaultValue"},
		{name: "ExternalInterference8", template: "+ok ${BAR-defaultValue}", want: "+ok "},
		{name: "ExternalInterference9", template: "?ok ${BAR:-defaultValue}", want: "?ok defaultValue"},
		{name: "NestedExpansion0", template: "ok ${UNSET_VAR-$FOO}", want: "ok first"},
		{name: "NestedExpansion1", template: "ok ${UNSET_VAR-${FOO}}", want: "ok first"},
		{name: "NestedExpansion2", template: "ok ${UNSET_VAR-${FOO} ${FOO}}", want: "ok first first"},
		{name: "NestedExpansion3", template: "ok ${BAR:-$FOO}", want: "ok first"},
		{name: "NestedExpansion4", template: "ok ${BAR:-${FOO}}", want: "ok first"},
		{name: "NestedExpansion5", template: "ok ${BAR:-${FOO} ${FOO}}", want: "ok first first"},
		{name: "NestedExpansion6", template: "ok ${BAR+$FOO}", want: "ok first"},
		{name: "NestedExpansion7", template: "ok ${BAR+$FOO ${FOO:+second}}", want: "ok first second"},
		{name: "Mandatory0", template: "not ok ${UNSET_VAR:?Mandatory Variable Unset}", want: "not ok ", err: required, variable: "UNSET_VAR"},
		{name: "Mandatory1", template: "not ok ${BAR:?Mandatory Variable Empty}", want: "not ok ", err: required, variable: "BAR"},
		{name: "Mandatory2", template: "not ok ${UNSET_VAR:?}", want: "not ok ", err: required, variable: "UNSET_VAR"},
		{name: "Mandatory3", template: "not ok ${UNSET_VAR?Mandatory Variable Unset}", want: "not ok ", err: required, variable: "UNSET_VAR"},
		{name: "Mandatory4", template: "not ok ${UNSET_VAR?}", want: "not ok ", err: required, variable: "UNSET_VAR"},
		{name: "MandatoryNested0", template: "not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}", want: "not ok ", err: required, variable: "UNSET_VAR"},
		{name: "MandatoryNested1", template: "not ok ${UNSET_VAR?Mandatory Variable ${FOO}}", want: "not ok ", err: required, variable: "UNSET_VAR"},
		{name: "DefaultsForMandatory0", template: "ok ${FOO:?err}", want: "ok first"},
		{name: "DefaultsForMandatory1", template: "ok ${FOO?err}", want: "ok first"},
		{name: "DefaultsForMandatory2", template: "ok ${BAR?err}", want: "ok "},
		{name: "CustomFunc0", template: "ok ${FOO}", want: "ok first"},
		{name: "CustomFunc1", template: "ok ${BAR}", want: "ok "},
		{name: "CustomFunc2", template: "ok ${NOTHERE}", want: "ok ", undef: []string{"NOTHERE"}},
		{name: "ReplacementFunc0", template: "ok ${UNSET}", want: "ok ", undef: []string{"UNSET"}},
		{name: "ReplacementFunc1", template: "ok ${SUBDOMAIN:-redis}.${FOO:?}", want: "ok redis.first"},
		{name: "Precedence0", template: "${UNSET_VAR?bar-baz}", want: "", err: required, variable: "UNSET_VAR"},
		{name: "Precedence1", template: "${UNSET_VAR-myerror?msg}", want: "myerror?msg"},
		{name: "Precedence2", template: "${FOO?bar-baz}", want: "first"},
		{name: "Precedence3", template: "${BAR:-default_value_for_empty_var}", want: "default_value_for_empty_var"},
		{name: "Precedence4", template: "${UNSET_VAR-default_value_for_unset_var}", want: "default_value_for_unset_var"},
		{name: "NoValueWithCurlyBracesDefault0", template: `ok ${missing:-{"json":1}}`, want: `ok {"json":1}`},
		{name: "NoValueWithCurlyBracesDefault1", template: `ok ${missing-{"json":1}}`, want: `ok {"json":1}`},
		{name: "ValueWithCurlyBracesDefault0", template: `ok ${JSON:-{"json":1}}`, want: `ok {"json":2}`},
		{name: "ValueWithCurlyBracesDefault1", template: `ok ${JSON-{"json":1}}`, want: `ok {"json":2}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lookup := c.lookup
			if lookup == nil {
				lookup = mapLookup(composeDefaults)
			}
			ps := compareWithCompose(t, c.template, lookup)
			got, _ := Expand(c.template, lookup, Options{}, Position{})
			if got != c.want {
				t.Errorf("Expand(%q) = %q, want %q", c.template, got, c.want)
			}
			var undef []string
			for _, p := range ps {
				if p.Kind == Undefined {
					undef = append(undef, p.Name)
				}
			}
			if strings.Join(undef, ",") != strings.Join(c.undef, ",") {
				t.Errorf("undefined = %v, want %v", undef, c.undef)
			}
			switch c.err {
			case ok:
				if len(ps) != len(undef) {
					t.Errorf("unexpected problems: %v", ps)
				}
			case invalid:
				if !hasProblem(ps, Invalid, "") {
					t.Errorf("want an invalid template, got %v", ps)
				}
			case required:
				if !hasProblem(ps, Required, c.variable) {
					t.Errorf("want required %s, got %v", c.variable, ps)
				}
			}
		})
	}
}

// TestComposeGoMandatoryMessages checks the messages of compose-go's
// TestMandatoryVariableErrors* cases.
func TestComposeGoMandatoryMessages(t *testing.T) {
	cases := []struct{ template, want string }{
		{"not ok ${UNSET_VAR:?Mandatory Variable Unset}", "<stdin>:1:8: required variable UNSET_VAR is missing a value: Mandatory Variable Unset"},
		{"not ok ${BAR:?Mandatory Variable Empty}", "<stdin>:1:8: required variable BAR is missing a value: Mandatory Variable Empty"},
		{"not ok ${UNSET_VAR:?}", "<stdin>:1:8: required variable UNSET_VAR is missing a value"},
		{"not ok ${UNSET_VAR?Mandatory Variable Unset}", "<stdin>:1:8: required variable UNSET_VAR is missing a value: Mandatory Variable Unset"},
		{"not ok ${UNSET_VAR?}", "<stdin>:1:8: required variable UNSET_VAR is missing a value"},
		{"not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}", "<stdin>:1:8: required variable UNSET_VAR is missing a value: Mandatory Variable first"},
		{"not ok ${UNSET_VAR?Mandatory Variable ${FOO}}", "<stdin>:1:8: required variable UNSET_VAR is missing a value: Mandatory Variable first"},
	}
	for _, c := range cases {
		_, err := Expand(c.template, mapLookup(composeDefaults), Options{AllowUndefined: true}, Position{})
		if err == nil || err.Error() != c.want {
			t.Errorf("Expand(%q) error = %v, want %q", c.template, err, c.want)
		}
		if code := err.(Problems).ExitCode(); code != 3 {
			t.Errorf("Expand(%q) exit code = %d, want 3", c.template, code)
		}
	}
}

// TestComposeGoOperatorChoice ports TestSubstitutionFunctionChoice: the
// operator is the first one after the name.
func TestComposeGoOperatorChoice(t *testing.T) {
	cases := []struct{ input, op string }{
		{"VARNAME:?val?ue", ":?"},
		{"VARNAME?val:?ue", "?"},
		{"VARNAME?va-lu+e:?e", "?"},
		{"VARNAME?va+lu-e:?e", "?"},
		{"VARNAME:-value", ":-"},
		{"VARNAME-va:-lu:?e", "-"},
		{"VARNAME-va+lu?e", "-"},
		{"VARNAME-va?lu+e", "-"},
		{"VARNAME:+va:?lu:-e", ":+"},
		{"VARNAME+va:+lue", "+"},
		{"VARNAME+va?lu-e", "+"},
		{"VARNAME+va-lu?e", "+"},
	}
	for _, c := range cases {
		tmpl := "${" + c.input + "}"
		refs, err := References(strings.NewReader(tmpl), "x")
		if err != nil || len(refs) != 1 || refs[0].Op != c.op || refs[0].Name != "VARNAME" {
			t.Errorf("References(%q) = %+v, %v; want op %q", tmpl, refs, err, c.op)
		}
		for _, m := range []map[string]string{{}, {"VARNAME": ""}, {"VARNAME": "v"}} {
			compareWithCompose(t, tmpl, mapLookup(m))
		}
	}
}

// TestComposeGoNestedAlternates runs templates whose alternate or default
// holds a nested ${…}, closed or not, with the outer name unset, set to the
// empty string and set, and checks each against compose-go. An unterminated
// outer ${NAME:+…} is an error only when its branch is taken: compose-go
// (the reference, v2 as pinned in go.mod) substitutes the alternate only
// when NAME is non-empty, and so reports the unclosed brace only then.
func TestComposeGoNestedAlternates(t *testing.T) {
	cases := []struct {
		tmpl string
		// invalidAt is the column of the invalid-template problem, per mapping
		// (unset, empty, set); 0 for none.
		invalidAt [3]int
	}{
		{"x${EMPTY:+${FOO}", [3]int{0, 0, 11}},
		{"x${EMPTY+${FOO}", [3]int{0, 10, 10}},
		{"x${EMPTY:-${FOO}", [3]int{11, 11, 0}},
		{"x${EMPTY-${FOO}", [3]int{10, 0, 0}},
		{"x${EMPTY:+${FOO}}", [3]int{}},
		{"x${EMPTY:+a${FOO:+${FOO}}b}c", [3]int{}},
		{"x${EMPTY:+${FOO}y\nz", [3]int{0, 0, 11}},
	}
	mappings := []map[string]string{{"FOO": "f"}, {"EMPTY": "", "FOO": "f"}, {"EMPTY": "e", "FOO": "f"}}
	for _, c := range cases {
		for i, m := range mappings {
			ps := compareWithCompose(t, c.tmpl, mapLookup(m))
			col := 0
			for _, p := range ps {
				if p.Kind == Invalid {
					col = p.Pos.Col
				}
			}
			if col != c.invalidAt[i] {
				t.Errorf("%q with %v: invalid at column %d, want %d (problems %v)", c.tmpl, m, col, c.invalidAt[i], ps)
			}
		}
	}
}
