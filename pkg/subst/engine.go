package subst

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
	"unicode/utf8"
)

// flushAt is how much output is gathered before it is written: each write
// is a system call when the output is held back in a spool file.
const flushAt = 256 << 10

// rawProblem is a problem before its position is known: off is an offset
// into the current segment.
type rawProblem struct {
	off  int
	kind Kind
	name string
	msg  string
}

// rawInsert is a value given to Options.Inserted once its position is known.
type rawInsert struct {
	off         int
	name, value string
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
	vars     map[string]binding // what each name looked up to, to save allocations and lookups
	hot      *[hotSize]binding  // in front of vars when streaming: the names met last
	pending  []rawProblem
	inserts  []rawInsert
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
	// nlPos (or nlEnd, the end of the text, if none); topLB is the last "}"
	// of the line at the outermost level.
	nlFrom, nlPos, nlEnd int
	topLB                braceCache

	// firstClose's record of balanced braces, and its cursor.
	memo    []opener
	memoAt  int
	memoEnd int
	opens   []openAt

	// Stacks of the expressions being evaluated or listed, kept between
	// calls to save allocations; they replace recursion, so that deeply
	// nested defaults cost no more than their text.
	frames []frame
	ranges []span
	// match is the outermost expression being listed, at offset matchAt.
	match   string
	matchAt int
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
	return &engine{lookup: lookup, opt: opt, w: w, vars: map[string]binding{},
		file: pos.File, line: pos.Line, colBase: pos.Col - 1, colOff: -1}
}

// Bounds of the name cache, so that memory stays bounded on any input.
const (
	maxNames   = 4096
	maxNameLen = 128
)

// binding is a variable's name and what Lookup said of it.
type binding struct {
	name, value string
	ok          bool
}

// hotSize is the number of names the engine of a stream holds in front
// of its map, each in the slot a hash of its bytes picks.
const hotSize = 256

// get returns the variable named b (never empty): its name as a string,
// allocated once per distinct name, and Lookup's answer, asked once per
// distinct name (past the bounds above, every time). A template names few
// variables many times: a slot of hot instead of two map accesses (and
// Lookup's own) saves a quarter of the time of a substitution.
func (e *engine) get(b []byte) binding {
	var slot *binding
	if e.hot != nil && len(b) <= maxNameLen {
		h := uint(0)
		for _, c := range b {
			h = h*31 + uint(c)
		}
		slot = &e.hot[h%hotSize]
		if slot.name == string(b) {
			return *slot
		}
	}
	v, ok := e.vars[string(b)]
	if !ok {
		v = binding{name: string(b)}
		v.value, v.ok = e.lookup(v.name)
		if len(b) <= maxNameLen && len(e.vars) < maxNames {
			e.vars[v.name] = v
		}
	}
	if slot != nil {
		*slot = v
	}
	return v
}

// name returns b as a string, allocating once per distinct name.
func (e *engine) name(b []byte) string { return e.get(b).name }

// segment processes t, in which offsets now count from 0. When final is
// false t ends inside a line and processing stops before the first "$"
// whose meaning depends on what follows; the return value is where it
// stopped (len(t) otherwise). Positions are carried over to the next segment.
func (e *engine) segment(t []byte, final bool) int {
	e.cur, e.ls, e.colOff = 0, 0, -1
	e.nlEnd, e.topLB = -1, newBraceCache()
	e.memo, e.memoAt, e.memoEnd = e.memo[:0], 0, 0
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
		tk := e.lex(t, d, b, final, true, &e.topLB)
		if tk.kind == tokMore {
			e.flush()
			return d
		}
		if e.refs {
			e.reference(t, d, tk)
		} else {
			e.out, _ = e.apply(e.out, t, d, tk)
		}
		if len(e.pending) > 0 || len(e.inserts) > 0 {
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

// apply appends the replacement of the token at t[d] to dst, following
// compose-go's DefaultReplacementAppliedFunc, and reports failure.
func (e *engine) apply(dst, t []byte, d int, tk tok) ([]byte, bool) {
	if tk.kind == tokOp {
		return e.applyOp(dst, t, d, tk)
	}
	return e.applySimple(dst, t, d, tk)
}

// applySimple is apply for a token without an operator.
func (e *engine) applySimple(dst, t []byte, d int, tk tok) ([]byte, bool) {
	switch tk.kind {
	case tokDollar, tokEscaped:
		return append(dst, '$'), false
	case tokInvalid:
		e.report(d, Invalid, "", tk.why)
		return dst, true
	}
	v := e.get(t[tk.nameAt:tk.nameEnd])
	if !v.ok && !e.opt.AllowUndefined {
		e.report(d, Undefined, v.name, "")
	}
	e.inserted(d, v.name, v.value)
	return append(dst, v.value...), false
}

// usesWord reports whether the operator op, for a variable with value v
// (set when ok), takes its word (default, alternate value or message)
// rather than the value, as compose-go's substitution functions decide.
func usesWord(op, v string, ok bool) bool {
	switch op {
	case ":-", "-":
		return !ok || op == ":-" && v == ""
	case ":+", "+":
		return ok && (op == "+" || v != "")
	default: // ":?", "?"
		return !ok || op == ":?" && v == ""
	}
}

// applyPlain is applyOp for the common expression whose word holds no "$"
// and that has no rest, such as ${NAME:-default}: no frames are needed.
func (e *engine) applyPlain(dst, t []byte, d int, tk tok) ([]byte, bool) {
	v := e.get(t[tk.nameAt:tk.nameEnd])
	if !usesWord(tk.op, v.value, v.ok) {
		e.inserted(d, v.name, v.value)
		return append(dst, v.value...), false
	}
	word := t[tk.defAt:tk.defEnd]
	if tk.op == ":?" || tk.op == "?" {
		e.report(d, Required, v.name, string(word))
		return dst, true
	}
	return append(dst, word...), false
}

// frame is one match of an expression with an operator being evaluated.
// It scans t[i:b]: first the default, alternate value or message that the
// variable's value calls for (empty when the value itself is used), then
// the rest, the text after the first balanced "}" that compose-go expands
// again and appends. A failure anywhere empties the whole match.
type frame struct {
	d      int // the "$" of the current expression, where its problems are
	name   string
	defEnd int // the first balanced "}" of the current expression
	next   int // the end of the match
	mark   int // len(dst) when the match began
	failed bool
	inRest bool
	i, b   int
	// sub is a failure inside the default; msgAt is where the expanded
	// message of a failed ${NAME:?msg} starts in dst, -1 otherwise.
	sub   bool
	msgAt int
	lb    braceCache
}

// applyOp is apply for an expression with an operator. Defaults nest
// without limit, so it keeps its own stack of frames rather than recursing.
// An operator expression in a rest reaches to the same end as the match
// (the last "}"), so it carries on in the same frame. After a failure
// compose-go skips the rest; it is still checked here, for its problems.
func (e *engine) applyOp(dst, t []byte, d int, tk tok) ([]byte, bool) {
	if tk.next == tk.defEnd+1 && bytes.IndexByte(t[tk.defAt:tk.defEnd], '$') < 0 {
		return e.applyPlain(dst, t, d, tk)
	}
	base := len(e.frames)
	e.frames = append(e.frames, frame{mark: len(dst)})
	dst = e.begin(&e.frames[base], dst, t, d, tk)
	for {
		f := &e.frames[len(e.frames)-1]
		k := bytes.IndexByte(t[f.i:f.b], '$')
		if k < 0 {
			dst = append(dst, t[f.i:f.b]...)
			if !f.inRest {
				if f.msgAt >= 0 {
					e.report(f.d, Required, f.name, string(dst[f.msgAt:]))
					dst = dst[:f.msgAt]
					f.failed = true
				}
				f.failed = f.failed || f.sub
				f.inRest, f.i, f.b, f.lb = true, f.defEnd+1, f.next, newBraceCache()
				continue
			}
			failed, next := f.failed, f.next
			if failed {
				dst = dst[:f.mark]
			}
			e.frames = e.frames[:len(e.frames)-1]
			if len(e.frames) == base {
				return dst, failed
			}
			parent := &e.frames[len(e.frames)-1]
			parent.sub = parent.sub || failed
			parent.i = next
			continue
		}
		at := f.i + k
		dst = append(dst, t[f.i:at]...)
		sub := e.lex(t, at, f.b, true, false, &f.lb)
		f.i = sub.next
		switch {
		case sub.kind != tokOp:
			var bad bool
			dst, bad = e.applySimple(dst, t, at, sub)
			if f.inRest {
				f.failed = f.failed || bad
			} else {
				f.sub = f.sub || bad
			}
		case f.inRest:
			dst = e.begin(f, dst, t, at, sub)
		default:
			e.frames = append(e.frames, frame{mark: len(dst)})
			dst = e.begin(&e.frames[len(e.frames)-1], dst, t, at, sub)
		}
	}
}

// begin starts f on the operator expression tk at t[d]: it looks the
// variable up and either appends its value or sets f to scan the default,
// alternate value or message, as compose-go's substitution functions do.
func (e *engine) begin(f *frame, dst, t []byte, d int, tk tok) []byte {
	v := e.get(t[tk.nameAt:tk.nameEnd])
	f.d, f.name, f.defEnd, f.next = d, v.name, tk.defEnd, tk.next
	f.inRest, f.sub, f.msgAt, f.lb = false, false, -1, newBraceCache()
	f.i, f.b = tk.defAt, tk.defEnd
	switch {
	case !usesWord(tk.op, v.value, v.ok):
		f.i = f.b
		e.inserted(d, v.name, v.value)
		dst = append(dst, v.value...)
	case tk.op == ":?" || tk.op == "?":
		f.msgAt = len(dst)
	}
	return dst
}

// span is a part of one line whose references are listed.
type span struct {
	i, b int
	lb   braceCache
}

// reference lists the reference the token at t[d] makes, then the ones in
// its default and its rest: every one that could be evaluated, whatever the
// values. As in applyOp, a stack of spans replaces recursion.
func (e *engine) reference(t []byte, d int, tk tok) {
	base := len(e.ranges)
	for {
		switch tk.kind {
		case tokDollar, tokEscaped:
		case tokInvalid:
			e.report(d, Invalid, "", tk.why)
		case tokNamed, tokBraced:
			e.refList = append(e.refList, Reference{Name: e.name(t[tk.nameAt:tk.nameEnd]), Pos: e.posAt(t, d)})
		default:
			if len(e.ranges) == base {
				// Every default below is a part of this match: one copy
				// serves them all, however deep they nest.
				e.match, e.matchAt = string(t[d:tk.next]), d
			}
			e.refList = append(e.refList, Reference{Name: e.name(t[tk.nameAt:tk.nameEnd]), Pos: e.posAt(t, d),
				Op: tk.op, Default: e.match[tk.defAt-e.matchAt : tk.defEnd-e.matchAt]})
			// The rest after the default, the default first.
			e.ranges = append(e.ranges,
				span{i: tk.defEnd + 1, b: tk.next, lb: newBraceCache()},
				span{i: tk.defAt, b: tk.defEnd, lb: newBraceCache()})
		}
		for {
			if len(e.ranges) == base {
				return
			}
			r := &e.ranges[len(e.ranges)-1]
			k := bytes.IndexByte(t[r.i:r.b], '$')
			if k < 0 {
				e.ranges = e.ranges[:len(e.ranges)-1]
				continue
			}
			d = r.i + k
			tk = e.lex(t, d, r.b, true, false, &r.lb)
			r.i = tk.next
			break
		}
	}
}

func (e *engine) report(off int, k Kind, name, msg string) {
	e.pending = append(e.pending, rawProblem{off: off, kind: k, name: name, msg: msg})
}

func (e *engine) inserted(off int, name, value string) {
	if e.opt.Inserted != nil && value != "" {
		e.inserts = append(e.inserts, rawInsert{off: off, name: name, value: value})
	}
}

// resolve gives the pending problems their positions, in input order, and
// passes the pending inserted values on.
func (e *engine) resolve(t []byte) {
	// Both are nearly always in order already.
	if !slices.IsSortedFunc(e.pending, byOff[rawProblem]) {
		slices.SortStableFunc(e.pending, byOff[rawProblem])
	}
	if !slices.IsSortedFunc(e.inserts, byOff[rawInsert]) {
		slices.SortStableFunc(e.inserts, byOff[rawInsert])
	}
	// posAt goes forward only: take both in offset order.
	i := 0
	for _, p := range e.pending {
		for ; i < len(e.inserts) && e.inserts[i].off <= p.off; i++ {
			e.opt.Inserted(e.inserts[i].name, e.inserts[i].value, e.posAt(t, e.inserts[i].off))
		}
		e.problems = append(e.problems, &Problem{Pos: e.posAt(t, p.off), Kind: p.kind, Name: p.name, Msg: p.msg})
	}
	for ; i < len(e.inserts); i++ {
		e.opt.Inserted(e.inserts[i].name, e.inserts[i].value, e.posAt(t, e.inserts[i].off))
	}
	e.pending, e.inserts = e.pending[:0], e.inserts[:0]
}

// byOff orders pending problems and inserted values by offset.
func byOff[T interface{ offset() int }](a, b T) int { return cmp.Compare(a.offset(), b.offset()) }

func (p rawProblem) offset() int { return p.off }
func (i rawInsert) offset() int  { return i.off }

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
