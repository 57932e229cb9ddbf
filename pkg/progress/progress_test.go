package progress_test

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/progress"
)

func TestLines(t *testing.T) {
	tests := []struct {
		e    progress.Event
		want string
	}{
		{progress.Event{Op: "migrate", Kind: progress.Start, Step: "up 0001_users"}, "migrate: up 0001_users ..."},
		{progress.Event{Op: "migrate", Kind: progress.Done, Step: "up 0001_users", Elapsed: 3400 * time.Microsecond,
			Attrs: []slog.Attr{slog.Int64("version", 1), slog.String("name", "users")}},
			"migrate: up 0001_users: done (3ms) version=1 name=users"},
		{progress.Event{Op: "migrate", Kind: progress.Failed, Step: "up 0002_bad", Elapsed: 1234 * time.Millisecond,
			Err: errors.New("0002_bad.sql:1:8: syntax error\n  caret")},
			"migrate: up 0002_bad: failed (1.23s): 0002_bad.sql:1:8: syntax error"},
		{progress.Event{Op: "migrate", Kind: progress.Wait, Message: "waiting for another run's migration lock"},
			"migrate: waiting for another run's migration lock"},
		{progress.Event{Op: "build", Kind: progress.Start, Step: "api", Message: "building (containers/api/Dockerfile)"},
			"build: api: building (containers/api/Dockerfile)"},
		{progress.Event{Op: "build", Kind: progress.Done, Step: "api", Message: "up-to-date", Elapsed: 125 * time.Second},
			"build: api: up-to-date (2m5s)"},
		{progress.Event{Op: "pgtest", Kind: progress.Info, Message: "built template pgtest_t_x (3 migrations)", Elapsed: 40 * time.Millisecond},
			"pgtest: built template pgtest_t_x (3 migrations) (40ms)"},
		{progress.Event{Op: "pgnative", Kind: progress.Warn, Message: "cannot store data directory in cache", Err: errors.New("disk full"),
			Attrs: []slog.Attr{slog.String("cache", "/c/k")}},
			"pgnative: warning: cannot store data directory in cache: disk full cache=/c/k"},
		{progress.Event{Op: "build", Kind: progress.Warn, Step: "after", Message: "skipped"}, "build: warning: after: skipped"},
	}
	for _, tt := range tests {
		var got []string
		progress.Lines(func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) })(tt.e)
		if len(got) != 1 || got[0] != tt.want {
			t.Errorf("Lines(%+v) wrote %q, want %q", tt.e, got, tt.want)
		}
	}
}

// TestSerialized: events sent from many goroutines reach the Func one at a
// time, and all of them do.
func TestSerialized(t *testing.T) {
	var inside, overlaps, n atomic.Int32
	f := progress.Func(func(progress.Event) {
		if inside.Add(1) > 1 {
			overlaps.Add(1)
		}
		time.Sleep(100 * time.Microsecond)
		n.Add(1)
		inside.Add(-1)
	}).Serialized()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { f.Emit(progress.Event{Kind: progress.Info}) })
	}
	wg.Wait()
	if overlaps.Load() != 0 || n.Load() != 50 {
		t.Errorf("%d of 50 events arrived, %d while another was being handled", n.Load(), overlaps.Load())
	}
	if progress.Func(nil).Serialized() != nil {
		t.Error("a nil Func serialised is not nil")
	}
	progress.Func(nil).Emit(progress.Event{}) // discarded, no panic
}

// TestReporter: events carry the Reporter's Op, steps their time and, when
// they failed, their error, and details become Attrs.
func TestReporter(t *testing.T) {
	var lines []string
	r := progress.NewReporter("pgnative", func(e progress.Event) {
		if e.Elapsed > 0 {
			e.Elapsed = time.Millisecond // the line's time is the test's, not the clock's
		}
		lines = append(lines, progress.Line(e))
	})
	end := r.Step("initdb", "dir", "/d")
	end(nil, "version", "16.4")
	r.Step("start postgres")(errors.New("port taken"))
	r.Info("data directory copied from the cache", 2*time.Millisecond, "cache", "/c")
	r.Warn("cannot store the data directory in the cache", errors.New("disk full"))
	want := []string{
		"pgnative: initdb ... dir=/d",
		"pgnative: initdb: done (1ms) version=16.4",
		"pgnative: start postgres ...",
		"pgnative: start postgres: failed (1ms): port taken",
		"pgnative: data directory copied from the cache (1ms) cache=/c",
		"pgnative: warning: cannot store the data directory in the cache: disk full",
	}
	if fmt.Sprint(lines) != fmt.Sprint(want) {
		t.Errorf("lines:\n%q\nwant:\n%q", lines, want)
	}
	var zero progress.Reporter
	zero.Step("nothing")(nil) // discarded, no panic
	zero.Info("nothing", 0)
}
