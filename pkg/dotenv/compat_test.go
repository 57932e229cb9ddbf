package dotenv

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	compose "github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/sirupsen/logrus"

	"github.com/poststack/poststack/pkg/subst"
)

func TestMain(m *testing.M) {
	// compose-go's template warns through logrus about every unset variable.
	logrus.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// fixedLookup is the process environment of the differential tests.
func fixedLookup(k string) (string, bool) {
	switch k {
	case "SET", "OPTION_A":
		return "from-lookup", true
	case "EMPTY":
		return "", true
	case "VAR_TO_BE_LOADED_FROM_OS_ENV":
		return "SOME_RANDOM_VALUE", true
	}
	return "", false
}

// both parses input with compose-go and with this package and fails the
// test unless the maps and the success or failure agree. It returns ours.
func both(t *testing.T, input string, lookup LookupFn) (map[string]string, error) {
	t.Helper()
	want, wantErr := compose.ParseWithLookup(strings.NewReader(input), compose.LookupFn(lookup))
	got, err := ParseWithLookup(strings.NewReader(input), lookup)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("input %q: error %v, compose-go %v", input, err, wantErr)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("input %q:\n got %q\nwant %q", input, got, want)
	}
	return got, err
}

func TestFixtures(t *testing.T) {
	tests := []struct {
		file    string
		want    map[string]string // checked when not nil, with a nil lookup
		wantErr string
	}{
		{"plain.env", map[string]string{"OPTION_A": "1", "OPTION_B": "2", "OPTION_C": "3", "OPTION_D": "4", "OPTION_E": "5",
			"456": "ABC", "OPTION_F": "", "OPTION_G": "", "OPTION_H": "my string"}, ""},
		{"utf8-bom.env", map[string]string{"OPTION_A": "1", "OPTION_B": "2", "OPTION_C": "3", "OPTION_D": "4", "OPTION_E": "5",
			"456": "ABC", "OPTION_F": "", "OPTION_G": "", "OPTION_H": "my string"}, ""},
		{"exported.env", map[string]string{"OPTION_A": "2", "OPTION_B": `\n`}, ""},
		{"equals.env", map[string]string{"OPTION_A": "postgres://localhost:5432/database?sslmode=disable"}, ""},
		{"quoted.env", map[string]string{"OPTION_A": "1", "OPTION_B": "2", "OPTION_C": "", "OPTION_D": `\n`,
			"OPTION_E": "1", "OPTION_F": "2", "OPTION_G": "", "OPTION_H": "\n", "OPTION_I": "echo 'asd'",
			"OPTION_J": "first line\nsecond line\nthird line\nand so on", "OPTION_K": "Let's go!", "OPTION_Z": "last value"}, ""},
		{"unquoted.env", map[string]string{"OPTION_A": "some quoted phrase", "OPTION_B": "first one with an unquoted phrase",
			"OPTION_C": "then another one with an unquoted phrase",
			"OPTION_D": "then another one with an unquoted phrase special è char",
			"OPTION_E": "then another one quoted phrase"}, ""},
		{"substitutions.env", map[string]string{"OPTION_A": "1", "OPTION_B": "1", "OPTION_C": "1", "OPTION_D": "1_1", "OPTION_E": ""}, ""},
		{"substitutions-default.env", map[string]string{"OPTION_A": "1", "OPTION_B": "1", "OPTION_C": "1", "OPTION_D": "1_1", "OPTION_E": ""}, ""},
		{"special.env", map[string]string{"VAR-WITH-DASHES": "dashes", "VAR.WITH.DOTS": "dots", "VAR_WITH_UNDERSCORES": "underscores"}, ""},
		{"inherited-multi-var.env", map[string]string{"foo": "bar", "bar": "baz"}, ""},
		{"inherited-single-var.env", map[string]string{}, ""},
		{"inherited-not-found.env", map[string]string{}, ""},
		{"invalid1.env", nil, "line 7: key cannot contain a space"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := both(t, string(b), nil)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != nil && !maps.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			both(t, string(b), fixedLookup)
		})
	}
}

// TestReadWithLookup ports compose-go's Read tests: keys starting with a
// digit are dropped, inherited keys come from the lookup, the lookup wins
// over earlier keys in substitutions.
func TestReadWithLookup(t *testing.T) {
	lookupA := func(k string) (string, bool) {
		if k == "OPTION_A" {
			return "5", true
		}
		return fixedLookup(k)
	}
	tests := []struct {
		file   string
		lookup LookupFn
		want   map[string]string
	}{
		{"plain.env", nil, map[string]string{"OPTION_A": "1", "OPTION_B": "2", "OPTION_C": "3", "OPTION_D": "4", "OPTION_E": "5",
			"OPTION_F": "", "OPTION_G": "", "OPTION_H": "my string"}},
		{"inherited-multi-var.env", fixedLookup, map[string]string{"VAR_TO_BE_LOADED_FROM_OS_ENV": "SOME_RANDOM_VALUE", "foo": "bar", "bar": "baz"}},
		{"inherited-single-var.env", fixedLookup, map[string]string{"VAR_TO_BE_LOADED_FROM_OS_ENV": "SOME_RANDOM_VALUE"}},
		{"inherited-not-found.env", fixedLookup, map[string]string{}},
		{"substitutions.env", lookupA, map[string]string{"OPTION_A": "1", "OPTION_B": "5", "OPTION_C": "5", "OPTION_D": "5_5", "OPTION_E": ""}},
		{"substitutions-default.env", lookupA, map[string]string{"OPTION_A": "5", "OPTION_B": "5", "OPTION_C": "5", "OPTION_D": "5_5", "OPTION_E": ""}},
		{"substitutions-default.env", nil, map[string]string{"OPTION_A": "1", "OPTION_B": "1", "OPTION_C": "1", "OPTION_D": "1_1", "OPTION_E": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := ReadWithLookup(os.DirFS("testdata"), tt.lookup, tt.file)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
			want, err := compose.ReadWithLookup(compose.LookupFn(tt.lookup), filepath.Join("testdata", tt.file))
			if err != nil || !maps.Equal(got, want) {
				t.Errorf("compose-go: %q, %v", want, err)
			}
		})
	}

	if _, err := ReadWithLookup(os.DirFS("testdata"), nil, "missing.env"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
	if _, err := ReadWithLookup(os.DirFS("testdata"), nil, "plain.env", "invalid1.env"); err == nil ||
		err.Error() != "invalid1.env: line 7: key cannot contain a space" {
		t.Errorf("invalid file: %v", err)
	}
	if _, err := ReadWithLookup(os.DirFS("testdata"), nil); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), ".env") {
		t.Errorf("no names must read .env: %v", err)
	}
}

// TestParsing ports compose-go's TestParsing, TestExpanding, TestParse,
// TestParseBytes and its variable expansion tests.
func TestParsing(t *testing.T) {
	const presets = "TEST_VAR=Test Value\nEMPTY_VAR=\n"
	tests := []struct {
		input, key, value string
	}{
		{"FOO=bar", "FOO", "bar"},
		{"FOO =bar", "FOO", "bar"},
		{"FOO= bar", "FOO", "bar"},
		{`FOO="bar"`, "FOO", "bar"},
		{"FOO='bar'", "FOO", "bar"},
		{`FOO="escaped\"bar"`, "FOO", `escaped"bar`},
		{`FOO="\"quoted\""`, "FOO", `"quoted"`},
		{`FOO="'d'"`, "FOO", `'d'`},
		{"OPTION_A: 1", "OPTION_A", "1"},
		{"OPTION_A: Foo=bar", "OPTION_A", "Foo=bar"},
		{"OPTION_A=1:B", "OPTION_A", "1:B"},
		{"export OPTION_A=2", "OPTION_A", "2"},
		{`export OPTION_B='\n'`, "OPTION_B", "\\n"},
		{"export exportFoo=2", "exportFoo", "2"},
		{"exportFOO=2", "exportFOO", "2"},
		{"export_FOO =2", "export_FOO", "2"},
		{"export.FOO= 2", "export.FOO", "2"},
		{"export\tOPTION_A=2", "OPTION_A", "2"},
		{"  export OPTION_A=2", "OPTION_A", "2"},
		{"\texport OPTION_A=2", "OPTION_A", "2"},
		{`export OPTION_A="export A"`, "OPTION_A", "export A"},
		{"export\vA=2", "export\vA", "2"}, // \s in compose-go's export regexp lacks \v
		{`FOO="bar\nbaz"`, "FOO", "bar\nbaz"},
		{`FOO=a\tb`, "FOO", `a\tb`},
		{`FOO="a\tb"`, "FOO", "a\tb"},
		{`KEY="Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\Z\0123Z"`, "KEY", "Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\ZSZ"},
		{"FOO.BAR=foobar", "FOO.BAR", "foobar"},
		{"FOO=foobar=", "FOO", "foobar="},
		{"FOO=bar ", "FOO", "bar"},
		{"FOO=bar # this is foo", "FOO", "bar"},
		{"FOO=bar #this is foo", "FOO", "bar"},
		{"FOO=bar #", "FOO", "bar"},
		{"FOO=123#not-an-inline-comment", "FOO", "123#not-an-inline-comment"},
		{`FOO="bar#baz"`, "FOO", "bar#baz"},
		{`FOO="bar#baz"#`, "FOO", "bar#baz"},
		{`FOO="bar#baz" # comment`, "FOO", "bar#baz"},
		{"FOO='bar#baz' # comment", "FOO", "bar#baz"},
		{`FOO="bar#baz#bang" # comment`, "FOO", "bar#baz#bang"},
		{`FOO="ba#r"`, "FOO", "ba#r"},
		{"FOO='ba#r'", "FOO", "ba#r"},
		{`FOO="bar\n\ b\az"`, "FOO", "bar\n\\ b\az"},
		{`FOO="bar\\\n\ b\az"`, "FOO", "bar\\\n\\ b\az"},
		{`FOO="bar\\r\ b\az"`, "FOO", "bar\\r\\ b\az"},
		{`FOO="bar\nbaz\\"`, "FOO", "bar\nbaz\\"},
		{`="value"`, "", "value"},
		{" KEY =value", "KEY", "value"},
		{"   KEY=value", "KEY", "value"},
		{"\tKEY=value", "KEY", "value"},
		{`KEY="\0123"`, "KEY", "S"},
		{`KEY="\0377"`, "KEY", "\u00ff"},
		{`KEY="\0400"`, "KEY", `\400`},
		{`KEY="\012"`, "KEY", `\12`},
		{`KEY="\0"`, "KEY", `\`},
		{`KEY="\0128"`, "KEY", `\128`},
		{`KEY="\01234"`, "KEY", "S4"},
		{`KEY="\x07"`, "KEY", `\x07`},
		{`KEY="\u12e4"`, "KEY", `\u12e4`},
		{`KEY="\U00101234"`, "KEY", `\U00101234`},
		{`KEY='a\'b\\c'`, "KEY", `a'b\\c`},
		{"LAST", "", "LAST"}, // compose-go: a last line without = is the empty key's value
		{"ONE=1\nTWO='2'\nTHREE = \"3\"", "THREE", "3"},
		{"a[1]=c", "a[1]", "c"},
		{"árvíztűrő-TÜKÖRFÚRÓGÉP=ÁRVÍZTŰRŐ-tükörfúrógép", "árvíztűrő-TÜKÖRFÚRÓGÉP", "ÁRVÍZTŰRŐ-tükörfúrógép"},
		{"TEST_URLS=\"stratum+tcp://a:3333\nstratum+tcp://b:443\"", "TEST_URLS", "stratum+tcp://a:3333\nstratum+tcp://b:443"},
		// expansion
		{"FOO=test\nBAR=$FOO", "BAR", "test"},
		{"FOO=test\nBAR=${FOO}bar", "BAR", "testbar"},
		{"BAR=$FOO", "BAR", ""},
		{"FOO=test\nBAR=\"quote $FOO\"", "BAR", "quote test"},
		{"BAR='quote $FOO'", "BAR", "quote $FOO"},
		{`FOO="foo\$BAR"`, "FOO", "foo$BAR"},
		{`FOO="foo\${BAR}"`, "FOO", "foo${BAR}"},
		{"FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"", "BAR", "foo${FOO} test"},
		{"SET=file\nA=$SET", "A", "from-lookup"}, // the lookup wins over the file
		{"A=${SET:+alt}", "A", "alt"},
		{presets + "RESULT=${UNSET_VAR:-Default Value}", "RESULT", "Default Value"},
		{presets + "RESULT=${EMPTY_VAR:-Default Value}", "RESULT", "Default Value"},
		{presets + "RESULT=${TEST_VAR:-Default Value}", "RESULT", "Test Value"},
		{presets + "RESULT=${UNSET_VAR-Default Value}", "RESULT", "Default Value"},
		{presets + "RESULT=${EMPTY_VAR-Default Value}", "RESULT", ""},
		{presets + "RESULT=${TEST_VAR-Default Value}", "RESULT", "Test Value"},
		{presets + "RESULT=${TEST_VAR:?Default Value}", "RESULT", "Test Value"},
		{presets + "RESULT=${EMPTY_VAR?Test error}", "RESULT", ""},
		{presets + "RESULT=${TEST_VAR?Default Value}", "RESULT", "Test Value"},
		{"A=\"x\" B=2", "B", "2"},
		{"A: 'x'\n  B : y", "B", "y"},
		{"SET\n", "SET", "from-lookup"},
	}
	for _, tt := range tests {
		got, err := both(t, tt.input, fixedLookup)
		if err != nil {
			t.Errorf("%q: %v", tt.input, err)
			continue
		}
		if v, ok := got[tt.key]; !ok || v != tt.value {
			t.Errorf("%q: %q = %q (set %v), want %q", tt.input, tt.key, v, ok, tt.value)
		}
	}
}

// TestErrors checks that errors happen where compose-go's do, and that
// their line numbers are right (compose-go's are not always: it gives the
// last line of the file for an unterminated quote, and none for
// substitution errors).
func TestErrors(t *testing.T) {
	tests := []struct {
		input, want string
		kind        subst.Kind // for substitution errors
	}{
		{`KEY="`, `line 1: unterminated quoted value "`, -1},
		{`KEY="value`, `line 1: unterminated quoted value "value`, -1},
		{`KEY="value\"`, `line 1: unterminated quoted value "value\"`, -1},
		{`KEY="value'`, `line 1: unterminated quoted value "value'`, -1},
		{`KEY='`, `line 1: unterminated quoted value '`, -1},
		{`KEY='value`, `line 1: unterminated quoted value 'value`, -1},
		{`KEY='value\'`, `line 1: unterminated quoted value 'value\'`, -1},
		{`KEY='value"`, `line 1: unterminated quoted value 'value"`, -1},
		{"A=1\n\nKEY='value\nB=2\nC=3\n", `line 3: unterminated quoted value 'value`, -1},
		{"lol$wut", `line 1: unexpected character "$" in variable name "lol$wut"`, -1},
		{"%!(EXTRA string)=foo", `line 1: unexpected character "%" in variable name "%!(EXTRA string)=foo"`, -1},
		{"# c\nA='x\ny'\n  BAD KEY=1", "line 4: key cannot contain a space", -1},
		{"A=1\nexport ", "line 2: zero length string", -1},
		{"A=1\nB=${X?no X here}", "line 2: required variable X is missing a value: no X here", subst.Required},
		{"A=1\nB=\"x\ny ${EMPTY:?}\"", "line 2: required variable EMPTY is missing a value", subst.Required},
		{"A=1\n\nB=${", `line 3: invalid template: `, subst.Invalid},
	}
	for _, tt := range tests {
		_, err := both(t, tt.input, fixedLookup)
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.input, err, tt.want)
			continue
		}
		var de *Error
		if !errors.As(err, &de) {
			t.Errorf("%q: %T is not a *Error", tt.input, err)
		}
		var p *subst.Problem
		if errors.As(err, &p) != (tt.kind >= 0) || (p != nil && p.Kind != tt.kind) {
			t.Errorf("%q: problem %v, want kind %v", tt.input, p, tt.kind)
		}
	}
}

func TestPartialResultOnError(t *testing.T) {
	got, err := both(t, "A=1\nB=${X?}\nC=3", nil)
	if err == nil || !maps.Equal(got, map[string]string{"A": "1"}) {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestStatementStart(t *testing.T) {
	tests := map[string]string{
		"\n":                      "",
		"\r\n":                    "",
		"\t\t ":                   "",
		"# Comment":               "",
		"\t # comment":            "",
		"# a\n#b\n  X=1":          "X=1",
		`export OPTION_B='\n'`:    `export OPTION_B='\n'`,
		"\u2003\u0085#c\n\u00a0Y": "Y",
	}
	for in, want := range tests {
		if got := statementStart(in); got != want {
			t.Errorf("statementStart(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestStartsWithDigit(t *testing.T) {
	tests := map[string]bool{"1A": true, " \t9": true, "A1": false, "": false, "\v1": false, "٣": false}
	for in, want := range tests {
		if got := startsWithDigit(in); got != want {
			t.Errorf("startsWithDigit(%q) = %v", in, got)
		}
	}
}

func FuzzCompatible(f *testing.F) {
	for _, s := range []string{"A=1", "A=\"${SET}\\n\\0101\"", "export A: 'x'\nB", "A=${UNSET?}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		want, wantErr := compose.UnmarshalWithLookup(src, fixedLookup)
		got, err := UnmarshalWithLookup(src, fixedLookup)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("input %q: error %v, compose-go %v", src, err, wantErr)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("input %q:\n got %q\nwant %q", src, got, want)
		}
	})
}

// TestManyLines ports compose-go's TestMemoryExplosion: a long file parses
// whole, in one pass.
func TestManyLines(t *testing.T) {
	var b strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&b, "KEY%d=VALUE%d\n", i, i)
	}
	got, err := both(t, b.String(), nil)
	if err != nil || len(got) != 1000 || got["KEY999"] != "VALUE999" {
		t.Errorf("got %d keys, KEY999=%q, %v", len(got), got["KEY999"], err)
	}
	allocs := testing.AllocsPerRun(10, func() { _, _ = UnmarshalWithLookup(b.String(), nil) })
	if allocs > 5000 {
		t.Errorf("%v allocations for 1000 lines", allocs)
	}
}
