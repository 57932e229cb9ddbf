package subst

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/compose-spec/compose-go/v2/template"

	"github.com/poststack/poststack/pkg/exitcode"
)

func TestPositions(t *testing.T) {
	cases := []struct {
		name  string
		text  string
		pos   Position
		allow bool
		want  []string // Problem.Error() of each problem, in order
	}{
		{name: "line 1", text: "${U}", want: []string{"<stdin>:1:1: undefined variable U"}},
		{name: "later line", text: "a: 1\nbb ${U}\n", want: []string{"<stdin>:2:4: undefined variable U"}},
		{name: "multibyte", text: "é€ ${U} $V", want: []string{
			"<stdin>:1:4: undefined variable U", "<stdin>:1:9: undefined variable V"}},
		{name: "nested default", text: "x ${U:-${V}}", want: []string{"<stdin>:1:8: undefined variable V"}},
		{name: "nested message", text: "x ${U:?no $V here}", want: []string{
			"<stdin>:1:3: required variable U is missing a value: no  here",
			"<stdin>:1:11: undefined variable V"}},
		{name: "several on one line", text: "$U $V ${W:?m} ${ x", want: []string{
			"<stdin>:1:1: undefined variable U",
			"<stdin>:1:4: undefined variable V",
			"<stdin>:1:7: required variable W is missing a value: m",
			"<stdin>:1:15: invalid template: ${ is not followed by a variable name"}},
		{name: "start position", text: "ab $U\n$V", pos: Position{File: "f.yaml", Line: 10, Col: 5}, want: []string{
			"f.yaml:10:8: undefined variable U", "f.yaml:11:1: undefined variable V"}},
		{name: "invalid utf-8", text: "\xff\xfe$U", want: []string{"<stdin>:1:3: undefined variable U"}},
		{name: "allow undefined", text: "$U\n${U:?m} ${U:-$V}", allow: true, want: []string{
			"<stdin>:2:1: required variable U is missing a value: m"}},
		{name: "unused default", text: "${FOO:-$U} ${FOO:?$V} ${U:+$W} ${FOO-${ }", want: nil},
		{name: "no closing brace", text: "\n  ${FOO:-x", want: []string{
			"<stdin>:2:3: invalid template: ${FOO:- has no closing } on its line"}},
		{name: "bad operator", text: "${FOO!}", want: []string{
			"<stdin>:1:1: invalid template: ${FOO is followed by '!'; expected }, or :-, -, :?, ?, :+, + and a closing }"}},
		{name: "message fails too", text: "${U:?${V:?w}}", want: []string{
			"<stdin>:1:1: required variable U is missing a value",
			"<stdin>:1:6: required variable V is missing a value: w"}},
	}
	lookup := mapLookup(map[string]string{"FOO": "first"})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Expand(c.text, lookup, Options{AllowUndefined: c.allow}, c.pos)
			var got []string
			var ps Problems
			if err != nil {
				if !errors.As(err, &ps) {
					t.Fatalf("error %T is not Problems: %v", err, err)
				}
				for _, p := range ps {
					got = append(got, p.Error())
				}
			}
			if strings.Join(got, "\n") != strings.Join(c.want, "\n") {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(c.want, "\n"))
			}
			if err != nil && err.Error() != strings.Join(c.want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
			if c.pos.Line > 1 {
				return // Stream always starts at 1:1.
			}
			// Stream, cut into tiny reads and buffers, must agree.
			for _, size := range []int{1, 4, 7, readSize} {
				e := newEngine(lookup, Options{AllowUndefined: c.allow}, io.Discard, Position{})
				if err := run(e, iotest.OneByteReader(strings.NewReader(c.text)), size); err != nil {
					t.Fatal(err)
				}
				if !sameProblems(e.problems, ps) {
					t.Errorf("size %d: Stream problems %v, want %v", size, e.problems, ps)
				}
			}
		})
	}
}

func TestLongLinePositions(t *testing.T) {
	text := strings.Repeat("é", 1000) + "$U ${FOO:-" + strings.Repeat("€", 500) + "} $V\n$W"
	for _, size := range []int{5, 64, 1 << 10} {
		var out bytes.Buffer
		e := newEngine(mapLookup(map[string]string{"FOO": "x"}), Options{}, &out, Position{File: "long"})
		if err := run(e, strings.NewReader(text), size); err != nil {
			t.Fatal(err)
		}
		want := "long:1:1001: undefined variable U\nlong:1:1513: undefined variable V\nlong:2:1: undefined variable W"
		if e.problems.Error() != want {
			t.Errorf("size %d: %s\nwant %s", size, e.problems.Error(), want)
		}
		if wantOut := strings.Repeat("é", 1000) + " x \n"; out.String() != wantOut {
			t.Errorf("size %d: output %q", size, out.String())
		}
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		text string
		want int
	}{
		{"$U", exitcode.Check},
		{"${U:?}", exitcode.Check},
		{"$U ${", exitcode.Usage},
		{"${FOO}", exitcode.OK},
	}
	for _, c := range cases {
		_, err := Expand(c.text, mapLookup(map[string]string{"FOO": "x"}), Options{}, Position{})
		if got := exitcode.Of(fmt.Errorf("rendering: %w", err)); err != nil && got != c.want || err == nil && c.want != 0 {
			t.Errorf("%q: exit code %d (err %v), want %d", c.text, got, err, c.want)
		}
	}
}

func TestStreamOutputAndErrors(t *testing.T) {
	in := "a: ${A}\nb: $B\nc: ${C:-dflt}\n$$x\n"
	var out bytes.Buffer
	err := Stream(&out, strings.NewReader(in), "pod.yaml", mapLookup(map[string]string{"A": "1"}), Options{})
	if out.String() != "a: 1\nb: \nc: dflt\n$x\n" {
		t.Errorf("output %q", out.String())
	}
	if err == nil || err.Error() != "pod.yaml:2:4: undefined variable B" {
		t.Errorf("error %v", err)
	}

	rerr := errors.New("disk on fire")
	err = Stream(io.Discard, iotest.ErrReader(rerr), "x", mapLookup(nil), Options{})
	if !errors.Is(err, rerr) {
		t.Errorf("read error = %v", err)
	}
	werr := errors.New("pipe closed")
	err = Stream(errWriter{werr}, strings.NewReader("abc\n"), "x", mapLookup(nil), Options{})
	if !errors.Is(err, werr) {
		t.Errorf("write error = %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestReferences(t *testing.T) {
	in := "a: $A ${B} ${C:-x${D}} ${E?msg} ${F:+y} $$G\n  ${H-} ${I:-{}}\n"
	want := []Reference{
		{Name: "A", Pos: Position{"f", 1, 4}},
		{Name: "B", Pos: Position{"f", 1, 7}},
		{Name: "C", Pos: Position{"f", 1, 12}, Op: ":-", Default: "x${D}"},
		{Name: "D", Pos: Position{"f", 1, 18}},
		{Name: "E", Pos: Position{"f", 1, 24}, Op: "?", Default: "msg"},
		{Name: "F", Pos: Position{"f", 1, 33}, Op: ":+", Default: "y"},
		{Name: "H", Pos: Position{"f", 2, 3}, Op: "-"},
		{Name: "I", Pos: Position{"f", 2, 9}, Op: ":-", Default: "{}"},
	}
	required := map[string]bool{"A": true, "B": true, "D": true, "E": true}
	for _, size := range []int{3, readSize} {
		e := newEngine(nil, Options{}, nil, Position{File: "f"})
		e.refs = true
		if err := run(e, strings.NewReader(in), size); err != nil || len(e.problems) > 0 {
			t.Fatalf("run: %v %v", err, e.problems)
		}
		if fmt.Sprint(e.refList) != fmt.Sprint(want) {
			t.Errorf("size %d:\n got %+v\nwant %+v", size, e.refList, want)
		}
	}
	refs, err := References(strings.NewReader(in), "f")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range refs {
		if r.Required() != required[r.Name] {
			t.Errorf("%s: Required() = %v", r.Name, r.Required())
		}
	}

	refs, err = References(strings.NewReader("$A ${B:-${ }} ${C"), "f")
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Pos.Col != 9 || ps[1].Pos.Col != 15 || ps.ExitCode() != exitcode.Usage {
		t.Errorf("invalid: %v", err)
	}
	if len(refs) != 2 || refs[0].Name != "A" || refs[1].Name != "B" {
		t.Errorf("refs with invalid: %+v", refs)
	}
}

func TestSpool(t *testing.T) {
	dir := t.TempDir()
	s := NewSpool(dir, 10)
	var want bytes.Buffer
	write := func(p string) {
		t.Helper()
		want.WriteString(p)
		if n, err := s.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write: %d %v", n, err)
		}
	}
	check := func() {
		t.Helper()
		var got bytes.Buffer
		n, err := s.WriteTo(&got)
		if err != nil || n != int64(want.Len()) || got.String() != want.String() {
			t.Fatalf("WriteTo = %d %v %q, want %q", n, err, got.String(), want.String())
		}
	}
	files := func() []os.DirEntry {
		t.Helper()
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}

	write("hello")
	write("12345")
	check()
	if fs := files(); len(fs) != 0 {
		t.Fatalf("spilled at the limit: %v", fs)
	}
	write("!")
	write(strings.Repeat("x", 100000))
	check()
	check()
	fs := files()
	if len(fs) != 1 {
		t.Fatalf("files after spill: %v", fs)
	}
	info, err := os.Stat(filepath.Join(dir, fs[0].Name()))
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != int64(want.Len()) {
		t.Fatalf("spool file: %v %v", info.Mode(), err)
	}
	write("tail")
	check()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fs := files(); len(fs) != 0 {
		t.Fatalf("left after Close: %v", fs)
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}

	m := NewSpool(dir, 1<<20)
	m.Write([]byte("in memory"))
	var got bytes.Buffer
	if _, err := m.WriteTo(&got); err != nil || got.String() != "in memory" {
		t.Errorf("memory spool: %q %v", got.String(), err)
	}
	if err := m.Close(); err != nil || len(files()) != 0 {
		t.Errorf("memory spool Close: %v", err)
	}
}

// genReader yields n bytes of a YAML-ish template, over and over.
type genReader struct {
	chunk []byte
	off   int
	left  int64
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.left > 0 {
		k := copy(p[n:], g.chunk[g.off:])
		if int64(k) > g.left {
			k = int(g.left)
		}
		n += k
		g.left -= int64(k)
		g.off = (g.off + k) % len(g.chunk)
	}
	return n, nil
}

func TestStreamMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MB")
	}
	data, lookup := benchData(1 << 20)
	const size = 256 << 20
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := Stream(io.Discard, &genReader{chunk: data, left: size}, "big", lookup, Options{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("streamed %d MB with %d KB allocated, heap in use %d KB", size>>20, alloc>>10, after.HeapInuse>>10)
	if alloc > 8<<20 {
		t.Errorf("allocated %d bytes for %d bytes of input", alloc, size)
	}
}

// benchData makes about n bytes of a YAML-ish file with a reference every
// 80 bytes or so, some with defaults, and the lookup that defines them.
func benchData(n int) ([]byte, Lookup) {
	vars := map[string]string{}
	for i := range 50 {
		vars[fmt.Sprintf("VAR_%d", i)] = fmt.Sprintf("value-%d", i)
	}
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		v := fmt.Sprintf("VAR_%d", i%50)
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "      - name: container-%d-settings\n        image: registry/app:${%s}\n", i, v)
		case 1:
			fmt.Fprintf(&b, "        env: [{name: LOG_LEVEL, value: \"$%s\"}]  # comment text\n", v)
		case 2:
			fmt.Fprintf(&b, "        command: [\"/bin/app\", \"--port\", \"${UNSET_%d:-8080}\", \"--x\"]\n", i%7)
		default:
			fmt.Fprintf(&b, "        labels: {tier: backend, owner: team-%d, cost: \"$$5\", v: ${%s:?set it}}\n", i, v)
		}
	}
	return b.Bytes(), mapLookup(vars)
}

// TestLongLinesStayLinear guards against quadratic scans: each of these
// 1 MB lines took tens of seconds before the lexer's caches and the loop
// over rests.
func TestLongLinesStayLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("1 MB lines")
	}
	for _, unit := range []string{"${U:-x} ", "${U:-", "${U:-{", "${U?", "${", "$U:-}"} {
		s := strings.Repeat(unit, (1<<20)/len(unit))
		start := time.Now()
		want, _ := Expand(s, nil, Options{AllowUndefined: true}, Position{})
		var out bytes.Buffer
		_ = Stream(&out, strings.NewReader(s), "", nil, Options{AllowUndefined: true})
		if _, err := References(strings.NewReader(s), ""); err != nil && !errors.As(err, new(Problems)) {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Errorf("%q: Stream and Expand differ", unit)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%q: took %v", unit, d)
		}
	}
}

// TestManyNames streams a template naming more variables than the engine
// remembers (its slots, its map, names past its length bound), each many
// times, set, empty and unset: the output is compose-go's, and Lookup is
// asked about each remembered name once.
func TestManyNames(t *testing.T) {
	long := strings.Repeat("L", maxNameLen+1)
	vars := map[string]string{long: "long-value"}
	var b strings.Builder
	for round := range 3 {
		for i := range maxNames + 100 {
			name := fmt.Sprintf("N%d", i)
			switch i % 3 {
			case 0:
				vars[name] = "v" + name
			case 1:
				vars[name] = ""
			}
			fmt.Fprintf(&b, "%d $%s ${%s:-d} ${%s:+a} ${%s-e}\n", round, name, name, name, name)
		}
		fmt.Fprintf(&b, "$%s ${%s:-x}\n", long, long)
	}
	tmpl := b.String()
	asked := map[string]int{}
	lookup := func(name string) (string, bool) {
		asked[name]++
		v, ok := vars[name]
		return v, ok
	}
	want, err := template.SubstituteWithOptions(tmpl, template.Mapping(mapLookup(vars)), template.WithoutLogging)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Stream(&out, strings.NewReader(tmpl), "f", lookup, Options{AllowUndefined: true}); err != nil {
		t.Fatal(err)
	}
	if out.String() != want {
		t.Fatalf("Stream differs from compose-go (%d and %d bytes)", out.Len(), len(want))
	}
	for i := range maxNames {
		if name := fmt.Sprintf("N%d", i); asked[name] != 1 {
			t.Fatalf("Lookup asked about %s %d times, want once", name, asked[name])
		}
	}
	if asked[long] < 2 {
		t.Errorf("Lookup asked about a name past the length bound %d times; it is not remembered", asked[long])
	}
}
