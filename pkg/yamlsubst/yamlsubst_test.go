package yamlsubst

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/subst"
)

var podVars = map[string]string{
	"POSTSTACK_PROJECT":      "myapp",
	"POSTSTACK_ENVIRONMENT":  "dev",
	"APP_PORT":               "8080",
	"POSTSTACK_DATABASE_URL": "postgres://u:p%40ss@myapp-dev-postgres:5432/myapp?sslmode=disable",
	"LOG_LEVEL":              "debug",
	"FLAGS":                  "a: b # not a comment",
	"VERBOSE":                "yes",
	"GREETING":               `it's "ok"`,
	"ENABLED":                "true",
	"MOTD":                   "line one\nline two\n",
}

// TestRenderGolden renders a kube pod template and compares it byte for byte;
// set UPDATE_GOLDEN=1 to rewrite the golden file after checking the diff.
func TestRenderGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "pod.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Render(&out, bytes.NewReader(in), "pod.yaml", mapLookup(podVars), subst.Options{}); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "pod.golden.yaml")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("rendered pod differs from %s:\n--- got\n%s\n--- want\n%s", golden, out.String(), want)
	}

	// What Kubernetes and podman will see.
	var pod struct {
		Spec struct {
			Containers []struct {
				Ports []struct {
					ContainerPort any `yaml:"containerPort"`
				}
				Env []struct {
					Name  string
					Value any
				}
			}
		}
	}
	if err := yaml.NewDecoder(&out).Decode(&pod); err != nil {
		t.Fatal(err)
	}
	if got := pod.Spec.Containers[0].Ports[0].ContainerPort; got != 8080 {
		t.Errorf("containerPort = %#v, want the int 8080", got)
	}
	for _, e := range pod.Spec.Containers[0].Env {
		if _, ok := e.Value.(string); !ok {
			t.Errorf("env %s = %#v, want a string", e.Name, e.Value)
		}
	}
}

// TestRenderTyping pins the presentation rule: plain template scalars are
// re-typed from their result, quoted ones stay strings.
func TestRenderTyping(t *testing.T) {
	tests := []struct {
		tmpl, val string
		tag       string // of the rendered scalar when read back
		style     yaml.Style
	}{
		{"v: ${X}", "8080", "!!int", 0},
		{"v: ${X}", "-1.5e3", "!!float", 0},
		{"v: ${X}", "true", "!!bool", 0},
		{"v: ${X}", "null", "!!null", 0},
		{"v: ${X}", "", "!!null", 0},
		{"v: ${X}", "nginx:1.27", "!!str", 0},
		{"v: ${X}", "yes", "!!str", yaml.DoubleQuotedStyle},
		{"v: ${X}", "1:20", "!!str", yaml.DoubleQuotedStyle},
		{"v: ${X}", "a: b", "!!str", yaml.SingleQuotedStyle},
		{"v: ${X}", " padded ", "!!str", yaml.SingleQuotedStyle},
		{"v: ${X}", "two\nlines", "!!str", yaml.LiteralStyle},
		{"v: ${X}", "tab\there", "!!str", yaml.DoubleQuotedStyle},
		{"v: 1${X}", "0", "!!int", 0},
		{`v: "${X}"`, "8080", "!!str", yaml.DoubleQuotedStyle},
		{`v: '${X}'`, "true", "!!str", yaml.SingleQuotedStyle},
		{`v: '${X}'`, "it's", "!!str", yaml.SingleQuotedStyle},
		{"v: |\n  ${X}\n", "8080", "!!str", yaml.LiteralStyle},
		{"v: !!str ${X}", "8080", "!!str", yaml.TaggedStyle},
		{"v: [$X]", "8080", "!!int", 0},
		{"v: [$X]", "a, b", "!!str", yaml.SingleQuotedStyle},
	}
	for _, tt := range tests {
		t.Run(tt.tmpl+"="+tt.val, func(t *testing.T) {
			var out bytes.Buffer
			err := Render(&out, strings.NewReader(tt.tmpl), "t.yaml", mapLookup(map[string]string{"X": tt.val}), subst.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var doc yaml.Node
			if err := yaml.Unmarshal(out.Bytes(), &doc); err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			n := doc.Content[0].Content[1]
			if n.Kind == yaml.SequenceNode {
				n = n.Content[0]
			}
			want := strings.TrimPrefix(tt.tmpl[strings.Index(tt.tmpl, ":")+1:], " ")
			want = strings.NewReplacer("${X}", tt.val, "$X", tt.val, "!!str ", "", "|\n  ", "", "[", "", "]", "", `"`, "", "'", "").Replace(want)
			if n.Value != want || n.Tag != tt.tag || n.Style != tt.style {
				t.Errorf("rendered %q: value %q tag %s style %v, want %q %s %v", out.String(), n.Value, n.Tag, n.Style, want, tt.tag, tt.style)
			}
		})
	}
}

// errorsTemplate has problems in every kind of scalar, plus variables in a
// key and a comment that must not be looked at.
const errorsTemplate = `# ${IN_COMMENT} is not substituted
spec:
  containers:
  - name: web
    image: ${IMAGE}
    ${IN_KEY}: fine
    env:
    - name: A
      value: "x ${QUOTED}"
    - name: B
      value: 'it''s ${SINGLE}'
    - name: C
      value: "tab\there ${ESCAPED}"
    args:
    - |
      first
      second
      third ${BLOCK}
    - ${BAD
    - ok: ${FINE:?must be set}
    - folded
      plain ${FOLDED}
    - &anchor ${ANCHORED}
    - *anchor
---
next: ${NEXT_DOC}
`

func TestRenderProblemPositions(t *testing.T) {
	want := []struct {
		line, col int
		kind      subst.Kind
		name      string
	}{
		{5, 12, subst.Undefined, "IMAGE"},
		{9, 17, subst.Undefined, "QUOTED"},
		{11, 21, subst.Undefined, "SINGLE"},
		{13, 25, subst.Undefined, "ESCAPED"},
		{18, 13, subst.Undefined, "BLOCK"},
		{19, 7, subst.Invalid, ""},
		{20, 11, subst.Required, "FINE"},
		{22, 13, subst.Undefined, "FOLDED"},
		{23, 15, subst.Undefined, "ANCHORED"},
		{26, 7, subst.Undefined, "NEXT_DOC"},
	}
	var out bytes.Buffer
	err := Render(&out, strings.NewReader(errorsTemplate), "pod.yaml", mapLookup(nil), subst.Options{})
	if out.Len() != 0 {
		t.Errorf("Render wrote %q despite problems", out.String())
	}
	var ps subst.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("err = %v, want subst.Problems", err)
	}
	if exitcode.Of(err) != exitcode.Usage {
		t.Errorf("exit code %d, want %d (an invalid template is among the problems)", exitcode.Of(err), exitcode.Usage)
	}
	if len(ps) != len(want) {
		t.Errorf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i := range min(len(ps), len(want)) {
		p, w := ps[i], want[i]
		if p.Pos.File != "pod.yaml" || p.Pos.Line != w.line || p.Pos.Col != w.col || p.Kind != w.kind || (w.name != "" && p.Name != w.name) {
			t.Errorf("problem %d = %s:%d:%d kind %v name %q (%v), want %d:%d kind %v name %q",
				i, p.Pos.File, p.Pos.Line, p.Pos.Col, p.Kind, p.Name, p, w.line, w.col, w.kind, w.name)
		}
	}
	if !strings.HasPrefix(err.Error(), "pod.yaml:5:12: ") {
		t.Errorf("message %q does not start with the first position", err.Error())
	}
}

func TestRenderUndefinedIsCheck(t *testing.T) {
	err := Render(&bytes.Buffer{}, strings.NewReader("a: ${NOPE}\n"), "t.yaml", mapLookup(nil), subst.Options{})
	if exitcode.Of(err) != exitcode.Check {
		t.Errorf("exit code %d for %v, want %d", exitcode.Of(err), err, exitcode.Check)
	}
	var out bytes.Buffer
	err = Render(&out, strings.NewReader("a: x${NOPE}y\n"), "t.yaml", mapLookup(nil), subst.Options{AllowUndefined: true})
	if err != nil || out.String() != "a: xy\n" {
		t.Errorf("AllowUndefined: %q, %v; want \"a: xy\\n\", nil", out.String(), err)
	}
}

func TestRenderMalformed(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"mapping in plain", "a: b\nc: d: e\n", "bad.yaml:2: yaml: mapping values are not allowed in this context"},
		{"unclosed flow", "a: 1\nb: [ ${X}, 2 ]\n", "bad.yaml:2: yaml: did not find expected ',' or ']'"},
		{"bad indentation", "a:\n  b: 1\n c: 2\n", "bad.yaml:3: yaml: did not find expected key"},
		{"tab", "a:\n\tb: 1\n", "bad.yaml:2: yaml: found character that cannot start any token"},
		{"first line", "b: [ ${X}, 2 ]\n", "bad.yaml:1: yaml: did not find expected ',' or ']'"},
		{"unclosed quote", "a: 'x\n", "bad.yaml:2: yaml: found unexpected end of stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Render(&out, strings.NewReader(tt.in), "bad.yaml", mapLookup(map[string]string{"X": "1"}), subst.Options{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
			if exitcode.Of(err) != exitcode.Usage {
				t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("err is %T, want *SyntaxError in the chain", err)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %q", out.String())
			}
			if _, err := References(strings.NewReader(tt.in), "bad.yaml"); err == nil || err.Error() != tt.want {
				t.Errorf("References err = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestRenderKeepsUntouchedAndAliases(t *testing.T) {
	in := "# keep\nbase: &b ${X}   # anchored\nuse: *b\n\"${KEY}\": 'no $ here' # c\nlist: [1, two]\n---\nsecond: ${X}\n"
	want := "# keep\nbase: &b v1 # anchored\nuse: *b\n\"${KEY}\": 'no $ here' # c\nlist: [1, two]\n---\nsecond: v1\n"
	var out bytes.Buffer
	if err := Render(&out, strings.NewReader(in), "t.yaml", mapLookup(map[string]string{"X": "v1"}), subst.Options{}); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRenderRejectsInvalidUTF8(t *testing.T) {
	err := Render(&bytes.Buffer{}, strings.NewReader("a: b\nc: ${X}\n"), "t.yaml", mapLookup(map[string]string{"X": "\xff"}), subst.Options{})
	var ps subst.Problems
	if !errors.As(err, &ps) || len(ps) != 1 || ps[0].Kind != subst.Invalid || ps[0].Pos.Line != 2 || ps[0].Pos.Col != 4 {
		t.Errorf("err = %v, want one invalid problem at t.yaml:2:4", err)
	}
}

func TestReferences(t *testing.T) {
	in := "# ${C}\n${KEY}: ${A}\nb: \"x ${B:-${D}}\"\nc: |\n  one\n  two $E\nd: *x\n"
	in = strings.Replace(in, "d: *x\n", "d: &x ${F}\ne: *x\n", 1)
	refs, err := References(strings.NewReader(in), "r.yaml")
	if err != nil {
		t.Fatal(err)
	}
	type ref struct {
		name      string
		line, col int
	}
	want := []ref{{"A", 2, 9}, {"B", 3, 7}, {"D", 3, 12}, {"E", 6, 7}, {"F", 7, 7}}
	var got []ref
	for _, r := range refs {
		if r.Pos.File != "r.yaml" {
			t.Errorf("ref %s in file %q", r.Name, r.Pos.File)
		}
		got = append(got, ref{r.Name, r.Pos.Line, r.Pos.Col})
	}
	if len(got) != len(want) {
		t.Fatalf("refs = %v, want %v", got, want)
	}
	// subst may list a nested reference before or after its container.
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("missing %v in %v", w, got)
		}
	}
}

func TestReferencesCRLF(t *testing.T) {
	refs, err := References(strings.NewReader("a: 1\r\nb: |\r\n  x\r\n  y ${X}\r\n"), "w.yaml")
	if err != nil || len(refs) != 1 || refs[0].Pos.Line != 4 || refs[0].Pos.Col != 5 {
		t.Errorf("References = %+v, %v; want X at w.yaml:4:5", refs, err)
	}
}

func BenchmarkRender(b *testing.B) {
	in, err := os.ReadFile(filepath.Join("testdata", "pod.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	lookup := mapLookup(podVars)
	for b.Loop() {
		if err := Render(&bytes.Buffer{}, bytes.NewReader(in), "pod.yaml", lookup, subst.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
