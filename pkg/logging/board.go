package logging

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Board shows one line per task on a terminal — its name, state and
// elapsed time — redrawn in place while tasks run concurrently (ps-build's
// images). Use it only on a TTY; pipes get plain lines instead.
type Board struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	rows    []*boardRow
	byName  map[string]*boardRow
	width   int
	drawn   int // lines on screen from the last draw
	stop    chan struct{}
	stopped chan struct{}
}

type boardRow struct {
	name    string
	state   string
	started time.Time
	elapsed time.Duration // frozen once the task ended
	ended   bool
}

// NewBoard draws a board of the named tasks, all "waiting", on w and keeps
// the running ones' times ticking until Close. now may be nil.
func NewBoard(w io.Writer, names []string, now func() time.Time) *Board {
	if now == nil {
		now = time.Now
	}
	b := &Board{w: w, now: now, byName: map[string]*boardRow{}, stop: make(chan struct{}), stopped: make(chan struct{})}
	for _, n := range names {
		r := &boardRow{name: n, state: "waiting"}
		b.rows = append(b.rows, r)
		b.byName[n] = r
		b.width = max(b.width, len(n))
	}
	b.draw()
	go b.tick()
	return b
}

// Start marks name as running with state (e.g. "building").
func (b *Board) Start(name, state string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.byName[name]; r != nil {
		r.state, r.started = state, b.now()
	}
	b.drawLocked()
}

// State shows state for name without restarting its clock (e.g. a
// running task that waits for a lock).
func (b *Board) State(name, state string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.byName[name]; r != nil && !r.ended {
		r.state = state
	}
	b.drawLocked()
}

// End marks name as ended with state (e.g. "built", "failed").
func (b *Board) End(name, state string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.byName[name]; r != nil {
		r.state, r.ended = state, true
		if !r.started.IsZero() {
			r.elapsed = b.now().Sub(r.started)
		}
	}
	b.drawLocked()
}

// Close stops the ticking and leaves the final board on screen.
func (b *Board) Close() {
	select {
	case <-b.stop:
		return
	default:
	}
	close(b.stop)
	<-b.stopped
	b.draw()
}

func (b *Board) tick() {
	defer close(b.stopped)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.draw()
		}
	}
}

func (b *Board) draw() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.drawLocked()
}

func (b *Board) drawLocked() {
	var s strings.Builder
	if b.drawn > 0 {
		fmt.Fprintf(&s, "\x1b[%dA", b.drawn) // back to the board's first line
	}
	for _, r := range b.rows {
		el := ""
		switch {
		case r.ended && !r.started.IsZero():
			el = formatElapsed(r.elapsed)
		case !r.started.IsZero():
			el = formatElapsed(b.now().Sub(r.started))
		}
		fmt.Fprintf(&s, "\r\x1b[2K  %-*s  %-10s %s\n", b.width, r.name, r.state, el)
	}
	b.drawn = len(b.rows)
	io.WriteString(b.w, s.String())
}

func formatElapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
