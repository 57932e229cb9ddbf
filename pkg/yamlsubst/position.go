package yamlsubst

import (
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/subst"
)

// source is the raw template split into lines the way the YAML scanner counts
// them (CR, LF, CRLF, NEL, LS and PS all end a line), so that yaml.v3's node
// line and column lead to the right rune.
type source struct {
	lines [][]rune
}

func newSource(b []byte) *source {
	rs := []rune(string(b))
	if len(rs) > 0 && rs[0] == '\uFEFF' {
		// The scanner consumes a byte-order mark before it starts counting.
		rs = rs[1:]
	}
	var lines [][]rune
	start := 0
	for i := 0; i < len(rs); i++ {
		switch rs[i] {
		case '\r', '\n', '\u0085', '\u2028', '\u2029':
			lines = append(lines, rs[start:i])
			if rs[i] == '\r' && i+1 < len(rs) && rs[i+1] == '\n' {
				i++
			}
			start = i + 1
		}
	}
	return &source{lines: append(lines, rs[start:])}
}

// mapper traces rune offsets in a scalar's parsed value back to the source.
// A parsed value differs from its source text by quotes, escapes, line folding
// and block indentation, none of which changes the order of its non-blank
// runes; so each non-blank value rune is matched with the next source rune
// that decodes to it. Alignment runs lazily, only as far as a position is asked
// for, because most scalars never need one.
type mapper struct {
	node   *yaml.Node
	value  []rune
	toks   tokenizer
	points []point // the source point of value[i], for i < len(points)
	failed bool
}

type point struct{ line, col int }

func (s *source) mapper(n *yaml.Node) *mapper {
	return &mapper{node: n, value: []rune(n.Value), toks: newTokenizer(s, n)}
}

// remap turns a position relative to the value (as subst reports it when told
// the value starts at 1:1) into a position in the file. When the value cannot
// be traced, the scalar's own position is the honest fallback.
func (m *mapper) remap(p subst.Position) subst.Position {
	pt, ok := m.at(valueOffset(m.value, p.Line, p.Col))
	if !ok {
		pt = point{m.node.Line, m.node.Column}
	}
	p.Line, p.Col = pt.line, pt.col
	return p
}

// valueOffset converts a 1-based line and rune column within value into a rune
// offset.
func valueOffset(value []rune, line, col int) int {
	i := 0
	for l := 1; l < line && i < len(value); i++ {
		if value[i] == '\n' {
			l++
		}
	}
	return i + max(col, 1) - 1
}

func (m *mapper) at(off int) (point, bool) {
	// Problems point at a '$'; should one point at a blank, the next
	// non-blank rune is where the reader should look.
	for off < len(m.value) && blank(m.value[off]) {
		off++
	}
	if off < 0 || off >= len(m.value) {
		return point{}, false
	}
	for !m.failed && len(m.points) <= off {
		r := m.value[len(m.points)]
		if blank(r) {
			m.points = append(m.points, point{})
			continue
		}
		pt, ok := m.toks.find(r)
		if !ok {
			m.failed = true
			break
		}
		m.points = append(m.points, pt)
	}
	if m.failed {
		return point{}, false
	}
	return m.points[off], true
}

// blank reports runes that folding, indentation or escaped line breaks may
// add to or drop from a value, and which are therefore not aligned.
func blank(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\u0085', '\u2028', '\u2029':
		return true
	}
	return false
}

// tokenizer yields the runes a scalar's source text decodes to, with where
// each was written.
type tokenizer struct {
	src       *source
	line, col int // 1-based cursor
	style     yaml.Style
	done      bool
}

func newTokenizer(s *source, n *yaml.Node) tokenizer {
	t := tokenizer{src: s, line: n.Line, col: n.Column, style: n.Style}
	// A node's position includes its anchor and tag, which come first.
	for {
		r, ok := t.peek()
		if !ok || (r != '&' && r != '!') {
			break
		}
		for ok && !blank(r) {
			t.advance()
			r, ok = t.peek()
		}
		t.skipBlanksAndComments()
	}
	switch {
	case n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		t.advance() // the opening quote
	case n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0:
		// The header line (indicators and an optional comment) holds no content.
		for r, ok := t.peek(); ok && r != '\n'; r, ok = t.peek() {
			t.advance()
		}
	}
	return t
}

func (t *tokenizer) peek() (rune, bool) {
	if t.line < 1 || t.line > len(t.src.lines) {
		return 0, false
	}
	l := t.src.lines[t.line-1]
	if t.col-1 < len(l) {
		return l[t.col-1], true
	}
	if t.line < len(t.src.lines) {
		return '\n', true
	}
	return 0, false
}

func (t *tokenizer) advance() {
	if t.line < 1 || t.line > len(t.src.lines) {
		return
	}
	if t.col-1 < len(t.src.lines[t.line-1]) {
		t.col++
		return
	}
	t.line++
	t.col = 1
}

func (t *tokenizer) skipBlanksAndComments() {
	for r, ok := t.peek(); ok; r, ok = t.peek() {
		switch {
		case blank(r):
			t.advance()
		case r == '#':
			for ; ok && r != '\n'; r, ok = t.peek() {
				t.advance()
			}
		default:
			return
		}
	}
}

// find advances to the next source rune that decodes to r.
func (t *tokenizer) find(r rune) (point, bool) {
	for {
		got, pt, ok := t.next()
		if !ok {
			return point{}, false
		}
		if got == r {
			return pt, true
		}
	}
}

// next decodes one rune of the scalar: a closing quote ends it, a doubled
// single quote stands for one, and backslash escapes are decoded in double
// quotes (an escaped line break decodes to a blank).
func (t *tokenizer) next() (rune, point, bool) {
	if t.done {
		return 0, point{}, false
	}
	r, ok := t.peek()
	if !ok {
		t.done = true
		return 0, point{}, false
	}
	pt := point{t.line, t.col}
	t.advance()
	switch {
	case t.style&yaml.SingleQuotedStyle != 0 && r == '\'':
		if q, _ := t.peek(); q == '\'' {
			t.advance()
			return '\'', pt, true
		}
		t.done = true
		return 0, point{}, false
	case t.style&yaml.DoubleQuotedStyle != 0 && r == '"':
		t.done = true
		return 0, point{}, false
	case t.style&yaml.DoubleQuotedStyle != 0 && r == '\\':
		return t.escape(), pt, true
	}
	return r, pt, true
}

// simpleEscape decodes the one-character escapes of YAML double quotes.
func simpleEscape(e rune) (rune, bool) {
	switch e {
	case '0':
		return 0, true
	case 'a':
		return '\a', true
	case 'b':
		return '\b', true
	case 't', '\t':
		return '\t', true
	case 'n':
		return '\n', true
	case 'v':
		return '\v', true
	case 'f':
		return '\f', true
	case 'r':
		return '\r', true
	case 'e':
		return 0x1b, true
	case ' ', '"', '/', '\\':
		return e, true
	case 'N':
		return '\u0085', true
	case '_':
		return '\u00a0', true
	case 'L':
		return '\u2028', true
	case 'P':
		return '\u2029', true
	}
	return 0, false
}

// escape decodes the rest of a double-quoted escape after its backslash.
func (t *tokenizer) escape() rune {
	e, ok := t.peek()
	if !ok {
		return '\\'
	}
	t.advance()
	if d, ok := simpleEscape(e); ok {
		return d
	}
	width := map[rune]int{'x': 2, 'u': 4, 'U': 8}[e]
	if width == 0 {
		// An escaped line break, or something the parser rejected already.
		return '\n'
	}
	hex := make([]rune, 0, width)
	for range width {
		h, ok := t.peek()
		if !ok {
			break
		}
		hex = append(hex, h)
		t.advance()
	}
	v, err := strconv.ParseUint(string(hex), 16, 32)
	if err != nil {
		return '\\'
	}
	return rune(v)
}
