package subst

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"unicode/utf8"
)

// flushAt is how much output is gathered before it is written.
const flushAt = 64 << 10

// rawProblem is a problem before its position is known: off is an offset
// into the current segment.
type rawProblem struct {
	off  int
	kind Kind
	name string
	msg  string
}

// engine substitutes (or lists references in) a text handed to it in
// segments: runs of whole lines, or the decidable start of a long line.
type engine struct {
	lookup Lookup
	opt    Options
	refs   bool // list references instead of substituting
	w      io.Writer
	werr   error

	out      []byte
	names    map[string]string // interned variable names, to save allocations
	pending  []rawProblem
	problems Problems
	refList  []Reference

	// Position bookkeeping, relative to the current segment: line is the
	// line number at offset cur; the line starts at ls, with colBase runes
	// of it before ls (from earlier segments or the caller's Position).
	file         string
	line         int
	cur, ls      int
	colBase      int
	colOff, col0 int // a cached column: offset colOff (>= ls) is column col0

	// Caches for lex, so that long lines full of "${NAME:-" without a
	// closing brace stay linear: the first newline at or after nlFrom is at
	// nlPos (or nlEnd, the end of the text, if none); the last "}" in
	// t[lbLow:lbEnd] is at lbPos (-1 if none).
	nlFrom, nlPos, nlEnd int
	lbLow, lbEnd, lbPos  int
}

func newEngine(lookup Lookup, opt Options, w io.Writer, pos Position) *engine {
	if pos.Line < 1 {
		pos.Line = 1
	}
	if pos.Col < 1 {
		pos.Col = 1
	}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	return &engine{lookup: lookup, opt: opt, w: w, names: map[string]string{},
		file: pos.File, line: pos.Line, colBase: pos.Col - 1, colOff: -1}
}

// Bounds of the name cache, so that memory stays bounded on any input.
const (
	maxNames   = 4096
	maxNameLen = 128
)

// name returns b as a string, allocating once per distinct name.
func (e *engine) name(b []byte) string {
	if s, ok := e.names[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(b) <= maxNameLen && len(e.names) < maxNames {
		e.names[s] = s
	}
	return s
}

// segment processes t, in which offsets now count from 0. When final is
// false t ends inside a line and processing stops before the first "$"
// whose meaning depends on what follows; the return value is where it
// stopped (len(t) otherwise). Positions are carried over to the next segment.
func (e *engine) segment(t []byte, final bool) int {
	e.cur, e.ls, e.colOff = 0, 0, -1
	e.nlEnd, e.lbEnd = -1, -1
	stop := e.top(t, final)
	// Carry the line count and the column to the next segment.
	if nl := bytes.Count(t[e.cur:stop], []byte{'\n'}); nl > 0 {
		e.line += nl
		e.ls = e.cur + bytes.LastIndexByte(t[e.cur:stop], '\n') + 1
		e.colBase = 0
	}
	e.colBase += utf8.RuneCount(t[e.ls:stop])
	return stop
}

// top scans t at the outermost level, writing output as it goes.
func (e *engine) top(t []byte, final bool) int {
	i, b := 0, len(t)
	for i < b && e.werr == nil {
		k := bytes.IndexByte(t[i:b], '$')
		if k < 0 {
			if !e.refs {
				e.out = append(e.out, t[i:b]...)
			}
			i = b
			break
		}
		d := i + k
		if !e.refs {
			e.out = append(e.out, t[i:d]...)
		}
		tk := e.lex(t, d, b, final, true)
		if tk.kind == tokMore {
			e.flush()
			return d
		}
		if e.refs {
			e.reference(t, d, tk)
		} else {
			e.out, _ = e.apply(e.out, t, d, tk)
		}
		if len(e.pending) > 0 {
			e.resolve(t)
		}
		i = tk.next
		if len(e.out) >= flushAt {
			e.flush()
		}
	}
	e.flush()
	return i
}

// expand appends the expansion of t[a:b], a part of one line, to dst, and
// reports whether compose-go would fail on it.
func (e *engine) expand(dst, t []byte, a, b int) ([]byte, bool) {
	failed := false
	i := a
	for i < b {
		k := bytes.IndexByte(t[i:b], '$')
		if k < 0 {
			dst = append(dst, t[i:b]...)
			break
		}
		d := i + k
		dst = append(dst, t[i:d]...)
		tk := e.lex(t, d, b, true, false)
		var f bool
		dst, f = e.apply(dst, t, d, tk)
		failed = failed || f
		i = tk.next
	}
	return dst, failed
}

// apply appends the replacement of the token at t[d] to dst, following
// compose-go's DefaultReplacementAppliedFunc, and reports failure.
func (e *engine) apply(dst, t []byte, d int, tk tok) ([]byte, bool) {
	switch tk.kind {
	case tokDollar, tokEscaped:
		return append(dst, '$'), false
	case tokInvalid:
		e.report(d, Invalid, "", tk.why)
		return dst, true
	case tokNamed, tokBraced:
		name := e.name(t[tk.nameAt:tk.nameEnd])
		v, ok := e.lookup(name)
		if !ok && !e.opt.AllowUndefined {
			e.report(d, Undefined, name, "")
		}
		return append(dst, v...), false
	}

	// The rest after the first balanced "}" is expanded and appended, and
	// a failure anywhere empties the whole match. An expression with an
	// operator in the rest reaches to the same end, so the rest is a tail
	// call, done here as a loop to keep the stack flat on long lines.
	// After a failure compose-go skips the rest; it is still checked here,
	// for its problems only.
	mark := len(dst)
	failed := false
	for {
		var f bool
		dst, f = e.operate(dst, t, d, tk)
		failed = failed || f
		i, end := tk.defEnd+1, tk.next
		tk.kind = tokDollar
		for i < end {
			k := bytes.IndexByte(t[i:end], '$')
			if k < 0 {
				dst = append(dst, t[i:end]...)
				break
			}
			d = i + k
			dst = append(dst, t[i:d]...)
			tk = e.lex(t, d, end, true, false)
			if tk.kind == tokOp {
				break
			}
			dst, f = e.apply(dst, t, d, tk)
			failed = failed || f
			i = tk.next
		}
		if tk.kind != tokOp {
			break
		}
	}
	if failed {
		return dst[:mark], true
	}
	return dst, false
}

// operate appends the value of the operator expression at t[d], without its
// rest, and reports failure.
func (e *engine) operate(dst, t []byte, d int, tk tok) ([]byte, bool) {
	name := e.name(t[tk.nameAt:tk.nameEnd])
	v, ok := e.lookup(name)
	switch tk.op {
	case ":-", "-":
		if !ok || tk.op == ":-" && v == "" {
			return e.expand(dst, t, tk.defAt, tk.defEnd)
		}
	case ":+", "+":
		if ok && (tk.op == "+" || v != "") {
			return e.expand(dst, t, tk.defAt, tk.defEnd)
		}
	default: // ":?", "?"
		if !ok || tk.op == ":?" && v == "" {
			at := len(dst)
			dst, _ = e.expand(dst, t, tk.defAt, tk.defEnd)
			e.report(d, Required, name, string(dst[at:]))
			return dst[:at], true
		}
	}
	return append(dst, v...), false
}

// reference lists the reference the token at t[d] makes, then the ones in
// its default and its rest: every one that could be evaluated, whatever the
// values. As in apply, an operator expression in a rest is a tail call.
func (e *engine) reference(t []byte, d int, tk tok) {
	for {
		switch tk.kind {
		case tokDollar, tokEscaped:
			return
		case tokInvalid:
			e.report(d, Invalid, "", tk.why)
			return
		}
		r := Reference{Name: e.name(t[tk.nameAt:tk.nameEnd]), Pos: e.posAt(t, d)}
		if tk.kind != tokOp {
			e.refList = append(e.refList, r)
			return
		}
		r.Op = tk.op
		r.Default = string(t[tk.defAt:tk.defEnd])
		e.refList = append(e.refList, r)
		e.referencesIn(t, tk.defAt, tk.defEnd)

		i, end := tk.defEnd+1, tk.next
		tk.kind = tokDollar
		for i < end {
			k := bytes.IndexByte(t[i:end], '$')
			if k < 0 {
				break
			}
			d = i + k
			tk = e.lex(t, d, end, true, false)
			if tk.kind == tokOp {
				break
			}
			e.reference(t, d, tk)
			i = tk.next
		}
		if tk.kind != tokOp {
			return
		}
	}
}

// referencesIn lists the references in t[a:b], a part of one line.
func (e *engine) referencesIn(t []byte, a, b int) {
	for i := a; i < b; {
		k := bytes.IndexByte(t[i:b], '$')
		if k < 0 {
			return
		}
		d := i + k
		tk := e.lex(t, d, b, true, false)
		e.reference(t, d, tk)
		i = tk.next
	}
}

func (e *engine) report(off int, k Kind, name, msg string) {
	e.pending = append(e.pending, rawProblem{off: off, kind: k, name: name, msg: msg})
}

// resolve gives the pending problems their positions, in input order.
func (e *engine) resolve(t []byte) {
	sort.SliceStable(e.pending, func(i, j int) bool { return e.pending[i].off < e.pending[j].off })
	for _, p := range e.pending {
		e.problems = append(e.problems, &Problem{Pos: e.posAt(t, p.off), Kind: p.kind, Name: p.name, Msg: p.msg})
	}
	e.pending = e.pending[:0]
}

// posAt returns the position of t[off]. Offsets must not go back past the
// start of the line of the previous call.
func (e *engine) posAt(t []byte, off int) Position {
	if off > e.cur {
		seg := t[e.cur:off]
		if nl := bytes.Count(seg, []byte{'\n'}); nl > 0 {
			e.line += nl
			e.ls = e.cur + bytes.LastIndexByte(seg, '\n') + 1
			e.colBase = 0
			e.colOff = -1
		}
		e.cur = off
	}
	if e.colOff < e.ls || off < e.colOff {
		e.colOff, e.col0 = e.ls, e.colBase+1
	}
	col := e.col0 + utf8.RuneCount(t[e.colOff:off])
	e.colOff, e.col0 = off, col
	return Position{File: e.file, Line: e.line, Col: col}
}

func (e *engine) flush() {
	if e.w == nil || len(e.out) == 0 || e.werr != nil {
		return
	}
	if _, err := e.w.Write(e.out); err != nil {
		e.werr = fmt.Errorf("writing output: %w", err)
	}
	e.out = e.out[:0]
}
