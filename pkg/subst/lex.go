package subst

import "bytes"

// tokKind is what a "$" starts.
type tokKind uint8

const (
	tokDollar  tokKind = iota // a "$" that starts nothing: copied as is
	tokEscaped                // "$$"
	tokNamed                  // $NAME
	tokBraced                 // ${NAME}
	tokOp                     // ${NAME<op>default}, possibly followed by a rest
	tokInvalid                // "${" that starts nothing valid
	tokMore                   // the answer depends on bytes not read yet
)

// tok is one match of compose-go's pattern, as offsets into the text.
type tok struct {
	kind tokKind
	// next is where scanning resumes.
	next int
	// name is t[nameAt:nameEnd].
	nameAt, nameEnd int
	op              string
	// def is t[defAt:defEnd]; rest is t[defEnd+1:next] (empty for most
	// expressions; see the package doc).
	defAt, defEnd int
	// why explains a tokInvalid.
	why string
}

const (
	nameStart = 1
	nameDigit = 2
)

// asciiName classifies ASCII bytes for variable names; it is never written.
var asciiName = func() (tab [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		tab[c] = nameStart
		tab[c-'a'+'A'] = nameStart
	}
	tab['_'] = nameStart
	for c := '0'; c <= '9'; c++ {
		tab[c] = nameDigit
	}
	return tab
}()

// nameRune returns the width of the name character at t[p] (p < b), 0 if
// there is none, or -1 when t[p:b] is a proper prefix of one. Besides ASCII,
// Go's (?i)[a-z] matches U+017F (ſ, folds to s) and U+212A (Kelvin sign,
// folds to k); compose-go's names therefore do too.
func nameRune(t []byte, p, b int, digits bool) int {
	c := t[p]
	if c < 0x80 {
		k := asciiName[c]
		if k == nameStart || digits && k == nameDigit {
			return 1
		}
		return 0
	}
	var seq string
	switch c {
	case 0xC5:
		seq = "\xC5\xBF"
	case 0xE2:
		seq = "\xE2\x84\xAA"
	default:
		return 0
	}
	for k := 1; k < len(seq); k++ {
		if p+k >= b {
			return -1
		}
		if t[p+k] != seq[k] {
			return 0
		}
	}
	return len(seq)
}

// scanName returns the end of the name whose first character ends at p.
// incomplete reports that the name may go on past b.
func scanName(t []byte, p, b int) (end int, incomplete bool) {
	for p < b {
		c := t[p]
		if c < 0x80 {
			if asciiName[c] == 0 {
				return p, false
			}
			p++
			continue
		}
		w := nameRune(t, p, b, true)
		if w < 0 {
			return p, true
		}
		if w == 0 {
			return p, false
		}
		p += w
	}
	return p, true
}

// isOpChar reports whether c can follow a name (after an optional ':') to
// start an operator.
func isOpChar(c byte) bool { return c == '-' || c == '+' || c == '?' }

// lex reads the match of compose-go's pattern that starts at the "$" t[d],
// within t[:b]. When final is false, b is not the end of the line, and lex
// returns tokMore rather than guess. multiLine says t[d:b] may hold
// newlines, which a match never crosses. lb caches the last "}" before b
// for every expression of the range that ends at b.
func (e *engine) lex(t []byte, d, b int, final, multiLine bool, lb *braceCache) tok {
	if d+1 >= b {
		if !final {
			return tok{kind: tokMore}
		}
		return tok{kind: tokDollar, next: d + 1}
	}
	c := t[d+1]
	if c == '$' {
		return tok{kind: tokEscaped, next: d + 2}
	}
	if c != '{' {
		w := nameRune(t, d+1, b, false)
		if w < 0 {
			if !final {
				return tok{kind: tokMore}
			}
			w = 0
		}
		if w == 0 {
			return tok{kind: tokDollar, next: d + 1}
		}
		end, inc := scanName(t, d+1+w, b)
		if inc && !final {
			return tok{kind: tokMore}
		}
		return tok{kind: tokNamed, next: end, nameAt: d + 1, nameEnd: end}
	}

	p := d + 2
	invalid := func(why string) tok { return tok{kind: tokInvalid, next: d + 2, why: why} }
	if p >= b {
		if !final {
			return tok{kind: tokMore}
		}
		return invalid("${ is not followed by a variable name")
	}
	w := nameRune(t, p, b, false)
	if w < 0 {
		if !final {
			return tok{kind: tokMore}
		}
		w = 0
	}
	if w == 0 {
		return invalid("${ is not followed by a variable name")
	}
	n, inc := scanName(t, p+w, b)
	if inc && !final {
		return tok{kind: tokMore}
	}
	if n >= b {
		return invalid("${" + string(t[p:n]) + " is not closed by }")
	}
	var op string
	switch c := t[n]; {
	case c == '}':
		return tok{kind: tokBraced, next: n + 1, nameAt: p, nameEnd: n}
	case c == ':':
		if n+1 >= b {
			if !final {
				return tok{kind: tokMore}
			}
			return invalid("${" + string(t[p:n]) + ": is not followed by -, +, or ?")
		}
		if !isOpChar(t[n+1]) {
			return invalid("${" + string(t[p:n]) + ": is not followed by -, +, or ?")
		}
		op = opString(t[n : n+2])
	case isOpChar(c):
		op = opString(t[n : n+1])
	default:
		return invalid("${" + string(t[p:n]) + " is followed by " + quoteByte(c) + "; expected }, or :-, -, :?, ?, :+, + and a closing }")
	}
	if !final {
		// The expression reaches to the last "}" of the line.
		return tok{kind: tokMore}
	}
	opEnd := n + len(op)
	le := b
	if multiLine {
		le = e.lineEnd(t, opEnd, b)
	}
	k := lb.last(t, opEnd, le)
	if k < 0 {
		return invalid("${" + string(t[p:n]) + op + " has no closing } on its line")
	}
	end := k + 1
	return tok{kind: tokOp, next: end, nameAt: p, nameEnd: n, op: op, defAt: opEnd, defEnd: e.firstClose(t, d, opEnd, end)}
}

// opString returns a constant for the operator, saving an allocation.
func opString(b []byte) string {
	switch string(b) {
	case ":-":
		return ":-"
	case "-":
		return "-"
	case ":+":
		return ":+"
	case "+":
		return "+"
	case ":?":
		return ":?"
	default:
		return "?"
	}
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(rune(c)) + "'"
	}
	return "a non-name character"
}

// lineEnd returns the offset of the first newline in t[x:b], or b.
func (e *engine) lineEnd(t []byte, x, b int) int {
	if b == e.nlEnd && e.nlFrom <= x && x <= e.nlPos {
		return e.nlPos
	}
	pos := b
	if k := bytes.IndexByte(t[x:b], '\n'); k >= 0 {
		pos = x + k
	}
	e.nlFrom, e.nlPos, e.nlEnd = x, pos, b
	return pos
}

// braceCache remembers the last "}" before one range end, so that the many
// expressions of a long line or a long default, which all reach to it, do
// not each search for it again.
type braceCache struct {
	// pos is the last "}" in t[low:end], -1 if none; end < 0 is empty.
	low, end, pos int
}

func newBraceCache() braceCache { return braceCache{end: -1} }

// last returns the offset of the last "}" in t[x:le], or -1.
func (c *braceCache) last(t []byte, x, le int) int {
	if c.end != le {
		c.low, c.end, c.pos = le, le, -1
	}
	if x < c.low {
		// Only the part not searched yet, and only while nothing was found.
		if c.pos < 0 {
			if k := bytes.LastIndexByte(t[x:c.low], '}'); k >= 0 {
				c.pos = x + k
			}
		}
		c.low = x
	}
	if c.pos >= x {
		return c.pos
	}
	return -1
}

// firstClose returns where compose-go cuts the match t[d:end] of an
// expression with an operator, whose word starts at w: at its first
// balanced "}", counted as getFirstBraceClosingIndex does (which skips the
// byte after every "{"), or at end-1 when there is none.
//
// Most words hold no braces, as in ${NAME:-default}: the first "}" after
// the word's start is the one, when no "{" comes before it (the name and
// the operator hold none). The search stops at the first brace, so no byte
// is searched for two expressions.
//
// Counting afresh from every "$" would make nested defaults quadratic, so
// one count from an outer expression records the closing "}" of every "${"
// inside it, and the expressions inside, which are always lexed after the
// outer one and in order, look theirs up. The counts agree: a "${" is
// preceded by "$", so no count skips its "{", and from there on every
// count sees the same bytes.
func (e *engine) firstClose(t []byte, d, w, end int) int {
	for i := w; i < end; i++ {
		if c := t[i]; c == '}' {
			return i
		} else if c == '{' {
			break
		}
	}
	for e.memoAt < len(e.memo) && e.memo[e.memoAt].at < d {
		e.memoAt++
	}
	if e.memoAt == len(e.memo) || e.memo[e.memoAt].at != d || e.memo[e.memoAt].close < 0 && end > e.memoEnd {
		e.countBraces(t, d, end)
	}
	c := e.memo[e.memoAt].close
	e.memoAt++
	if c < 0 || c >= end {
		return end - 1
	}
	return c
}

// openAt is a "${" whose "}" the count still looks for: e.memo[idx],
// opened at brace depth level.
type openAt struct{ idx, level int }

// opener is a "${" at offset at whose "{" is balanced by the "}" at close
// (-1: not before the end of the count).
type opener struct{ at, close int }

// countBraces counts braces from the "$" t[d] until the "${" there is
// balanced or end is reached, recording every "${" met in e.memo.
func (e *engine) countBraces(t []byte, d, end int) {
	e.memo, e.memoAt, e.memoEnd = e.memo[:0], 0, end
	stack := e.opens[:0]
	level := 0
	for i := d; i < end; i++ {
		switch t[i] {
		case '}':
			if n := len(stack) - 1; n >= 0 && stack[n].level == level {
				e.memo[stack[n].idx].close = i
				stack = stack[:n]
			}
			level--
			if level == 0 {
				e.opens = stack
				return
			}
		case '{':
			level++
			if i > d && t[i-1] == '$' {
				stack = append(stack, openAt{idx: len(e.memo), level: level})
				e.memo = append(e.memo, opener{at: i - 1, close: -1})
			}
			i++
		}
	}
	e.opens = stack
}
