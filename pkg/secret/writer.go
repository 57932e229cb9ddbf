package secret

import (
	"bytes"
	"io"
	"sync"
)

// MaxHeldLine is the most a LineWriter holds of a line still waiting for
// its newline. A longer line is masked and written in pieces of this size,
// so that a stream without newlines cannot grow memory; a secret that
// straddles the end of a piece is masked in neither piece, and so reaches
// the writer unmasked.
const MaxHeldLine = 64 << 10

// LineWriter masks a stream line by line before it reaches the writer
// beneath: a secret split across two Writes is still masked, since nothing
// of a line is written until its newline (or Close, or MaxHeldLine). It is
// safe for concurrent use; Writes are masked in the order they arrive.
type LineWriter struct {
	mu   sync.Mutex
	w    io.Writer
	mask func(string) string
	held []byte
	err  error // the first error of w, returned by every later call
}

// NewLineWriter returns a LineWriter that writes mask(line) to w for each
// line written to it.
func NewLineWriter(w io.Writer, mask func(string) string) *LineWriter {
	return &LineWriter{w: w, mask: mask}
}

// Writer returns a LineWriter that masks what is written to it with m
// before it reaches w. Secrets added to m later are masked from the next
// line on.
func (m *Masker) Writer(w io.Writer) *LineWriter {
	return NewLineWriter(w, m.Mask)
}

// Write takes p whole: the complete lines it ends are masked and written
// at once, the rest is held until its newline. It returns len(p), or the
// error of the writer beneath (then, and from then on, nothing is written).
func (l *LineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return 0, l.err
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			take := min(len(p), MaxHeldLine-len(l.held))
			l.held = append(l.held, p[:take]...)
			p = p[take:]
			if len(l.held) == MaxHeldLine {
				l.flush(false)
			}
			continue
		}
		if len(l.held)+i > MaxHeldLine {
			// The line is too long to hold whole: fill the piece.
			take := MaxHeldLine - len(l.held)
			l.held = append(l.held, p[:take]...)
			p = p[take:]
			l.flush(false)
			continue
		}
		l.held = append(l.held, p[:i]...)
		p = p[i+1:]
		l.flush(true)
	}
	if l.err != nil {
		return 0, l.err
	}
	return n, nil
}

// flush writes the held bytes masked, with a newline when they end a line.
func (l *LineWriter) flush(newline bool) {
	if l.err != nil {
		return
	}
	out := l.mask(string(l.held))
	if newline {
		out += "\n"
	}
	l.held = l.held[:0]
	if out != "" {
		_, l.err = io.WriteString(l.w, out)
	}
}

// Close writes the held last line, masked, without adding a newline, and
// returns the first error of the writer beneath. It does not close that
// writer.
func (l *LineWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.held) > 0 {
		l.flush(false)
	}
	return l.err
}
