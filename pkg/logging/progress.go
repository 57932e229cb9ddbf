package logging

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Progress receives the milestones of a slow operation (starting a
// container, waiting for Postgres, applying migrations). Operations call
// it instead of printing; the CLI picks the implementation for the output.
// Start and Done are paired by name; Step reports within the current one.
type Progress interface {
	Start(name string)
	Step(msg string)
	Done(name string, err error)
}

// ErrFailed, passed to Done, shows that a step failed without saying why:
// the caller reports the error itself, once, with its details.
var ErrFailed = errors.New("failed")

// outcome is how a renderer ends a failed step's line: ": failed" or
// ": failed: why".
func outcome(err error) string {
	if errors.Is(err, ErrFailed) {
		return "failed"
	}
	return fmt.Sprintf("failed: %v", err)
}

// NopProgress discards everything; use it for --quiet and in tests.
type NopProgress struct{}

// Start implements Progress.
func (NopProgress) Start(string) {}

// Step implements Progress.
func (NopProgress) Step(string) {}

// Done implements Progress.
func (NopProgress) Done(string, error) {}

// PlainProgress writes one line per event, for pipes and log files.
type PlainProgress struct {
	mu sync.Mutex
	w  io.Writer
}

// NewPlainProgress returns a Progress writing plain lines to w.
func NewPlainProgress(w io.Writer) *PlainProgress { return &PlainProgress{w: w} }

// Start implements Progress.
func (p *PlainProgress) Start(name string) { p.line("%s ...", name) }

// Step implements Progress.
func (p *PlainProgress) Step(msg string) { p.line("  %s", msg) }

// Done implements Progress.
func (p *PlainProgress) Done(name string, err error) {
	if err != nil {
		p.line("%s: %s", name, outcome(err))
		return
	}
	p.line("%s: done", name)
}

func (p *PlainProgress) line(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// TTYProgress keeps one status line that each event overwrites, and leaves
// a final line per finished operation.
type TTYProgress struct {
	mu      sync.Mutex
	w       io.Writer
	current string
}

// NewTTYProgress returns a Progress for an interactive terminal w.
func NewTTYProgress(w io.Writer) *TTYProgress { return &TTYProgress{w: w} }

const clearLine = "\r\x1b[K"

// Start implements Progress.
func (p *TTYProgress) Start(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = name
	fmt.Fprintf(p.w, "%s… %s", clearLine, name)
}

// Step implements Progress.
func (p *TTYProgress) Step(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s… %s: %s", clearLine, p.current, firstLine(msg))
}

// Done implements Progress.
func (p *TTYProgress) Done(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current = ""
	if err != nil {
		if errors.Is(err, ErrFailed) {
			fmt.Fprintf(p.w, "%s✗ %s\n", clearLine, name)
			return
		}
		fmt.Fprintf(p.w, "%s✗ %s: %v\n", clearLine, name, err)
		return
	}
	fmt.Fprintf(p.w, "%s✓ %s\n", clearLine, name)
}

// Grouper opens and closes collapsible log groups; *ghactions.Actions
// implements it.
type Grouper interface {
	Group(title string)
	EndGroup()
}

// GroupProgress wraps each operation in a collapsible group (GitHub
// Actions' ::group::/::endgroup::) and writes steps as plain lines inside.
type GroupProgress struct {
	mu    sync.Mutex
	g     Grouper
	w     io.Writer
	depth int
}

// NewGroupProgress returns a Progress opening groups through g and writing
// step lines to w. Groups do not nest on the runner, so only the outermost
// Start opens one.
func NewGroupProgress(g Grouper, w io.Writer) *GroupProgress {
	return &GroupProgress{g: g, w: w}
}

// Start implements Progress.
func (p *GroupProgress) Start(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.depth == 0 {
		p.g.Group(name)
	} else {
		fmt.Fprintf(p.w, "%s ...\n", name)
	}
	p.depth++
}

// Step implements Progress.
func (p *GroupProgress) Step(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintln(p.w, msg)
}

// Done implements Progress.
func (p *GroupProgress) Done(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		fmt.Fprintf(p.w, "%s: %s\n", name, outcome(err))
	}
	if p.depth > 0 {
		p.depth--
		if p.depth == 0 {
			p.g.EndGroup()
		}
	}
}

// MaskProgress returns a Progress that passes names, messages and errors
// through mask before p sees them.
func MaskProgress(p Progress, mask func(string) string) Progress {
	return maskedProgress{p: p, mask: mask}
}

type maskedProgress struct {
	p    Progress
	mask func(string) string
}

func (m maskedProgress) Start(name string) { m.p.Start(m.mask(name)) }
func (m maskedProgress) Step(msg string)   { m.p.Step(m.mask(msg)) }
func (m maskedProgress) Done(name string, err error) {
	if err != nil && !errors.Is(err, ErrFailed) {
		err = maskedError{msg: m.mask(err.Error()), err: err}
	}
	m.p.Done(m.mask(name), err)
}

// maskedError keeps the chain for errors.Is while showing the masked text.
type maskedError struct {
	msg string
	err error
}

func (e maskedError) Error() string { return e.msg }
func (e maskedError) Unwrap() error { return e.err }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
