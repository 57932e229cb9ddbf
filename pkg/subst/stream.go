package subst

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// readSize is the initial read buffer; it grows only for a line that holds
// an undecided "${NAME:-" and is longer than the buffer.
const readSize = 256 << 10

// Stream substitutes r into w as it reads (bounded memory); name is the file
// name for positions. It reports every problem (Problems), continuing past
// them; the output written for a line with problems is whatever compose-go
// would give. Holding output back in strict mode is the caller's job (see
// Spool). Read and write errors end the run and are returned instead.
func Stream(w io.Writer, r io.Reader, name string, lookup Lookup, opt Options) error {
	e := newEngine(lookup, opt, w, Position{File: name})
	if err := run(e, r, readSize); err != nil {
		return err
	}
	if len(e.problems) > 0 {
		return e.problems
	}
	return nil
}

// References lists every reference in r, in order, with the references in
// defaults, messages and alternate values too (whether or not they would be
// used). Invalid templates anywhere, even in a default, are reported as
// Problems, returned with the references found.
func References(r io.Reader, name string) ([]Reference, error) {
	e := newEngine(nil, Options{}, nil, Position{File: name})
	e.refs = true
	if err := run(e, r, readSize); err != nil {
		return e.refList, err
	}
	if len(e.problems) > 0 {
		return e.refList, e.problems
	}
	return e.refList, nil
}

// run feeds r to e in segments of whole lines, and feeds the start of a line
// longer than the buffer as far as it can be decided.
func run(e *engine, r io.Reader, size int) error {
	e.hot = new([hotSize]binding)
	buf := make([]byte, size)
	start, end := 0, 0
	for {
		n, err := r.Read(buf[end:])
		end += n
		eof := errors.Is(err, io.EOF)
		if err != nil && !eof {
			e.flush()
			return fmt.Errorf("reading %s: %w", e.fileName(), err)
		}
		// buf[start:end-n] holds no newline (it would have been passed
		// on), so only the new bytes are searched: a long line read in
		// small pieces stays linear.
		if nl := bytes.LastIndexByte(buf[end-n:end], '\n'); nl >= 0 {
			nl += end - n
			e.segment(buf[start:nl+1], true)
			start = nl + 1
		}
		if eof {
			e.segment(buf[start:end], true)
			return e.werr
		}
		if e.werr != nil {
			return e.werr
		}
		if end < len(buf) {
			continue
		}
		if start == 0 {
			// One line fills the buffer: pass on what can be decided.
			start = e.segment(buf[:utf8Cut(buf)], false)
			if start == 0 {
				buf = append(buf, make([]byte, len(buf))...)
				buf = buf[:cap(buf)]
				continue
			}
		}
		end = copy(buf, buf[start:end])
		start = 0
	}
}

// utf8Cut returns a length n <= len(b) such that b[n:] does not start with
// a UTF-8 continuation byte, so that column counts add up across segments.
func utf8Cut(b []byte) int {
	n := len(b)
	for k := n - 1; k >= 0 && k >= n-4; k-- {
		c := b[k]
		if c < 0x80 {
			return n
		}
		if c >= 0xC0 {
			return k
		}
	}
	return n
}

func (e *engine) fileName() string {
	if e.file == "" {
		return "<stdin>"
	}
	return e.file
}
