package logging

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBoard(t *testing.T) {
	var out syncBuffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	b := NewBoard(&out, []string{"base-debian", "api"}, now)
	b.Start("base-debian", "building")
	advance(1500 * time.Millisecond)
	b.End("base-debian", "built")
	b.Start("api", "building")
	advance(65 * time.Second)
	b.End("api", "failed")
	b.Close()
	b.Close() // twice is fine

	s := out.String()
	// The last frame: cursor up over the two rows, then both rows final.
	last := s[strings.LastIndex(s, "\x1b[2A"):]
	for _, want := range []string{"base-debian  built      1.5s\n", "api          failed     1m05s\n"} {
		if !strings.Contains(last, want) {
			t.Errorf("last frame %q lacks %q", last, want)
		}
	}
	if !strings.HasPrefix(s, "\r\x1b[2K  base-debian  waiting") {
		t.Errorf("first frame %q", s[:min(len(s), 60)])
	}
	if n := strings.Count(last, "\n"); n != 2 {
		t.Errorf("last frame has %d lines, want 2", n)
	}
}

// TestBoardState: State changes a running row's state and keeps its clock;
// an ended row keeps its end state.
func TestBoardState(t *testing.T) {
	var out syncBuffer
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }

	b := NewBoard(&out, []string{"db", "api"}, now)
	b.Start("db", "migrating")
	advance(2 * time.Second)
	b.State("db", "locked")
	advance(time.Second)
	b.End("api", "skipped")
	b.State("api", "running")
	b.Close()

	s := out.String()
	last := s[strings.LastIndex(s, "\x1b[2A"):]
	for _, want := range []string{"db   locked     3.0s\n", "api  skipped    \n"} {
		if !strings.Contains(last, want) {
			t.Errorf("last frame %q lacks %q", last, want)
		}
	}
}
