package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/progress"
)

// TestRunReportsProgress: an engine that fails every build (/bin/false)
// yields, for a plan of app and an image built FROM it, app's Start and
// Failed (with its log and error) and the other image's Warn "skipped",
// each with the build.Event as its Data.
func TestRunReportsProgress(t *testing.T) {
	eng, err := engine.New(testenv.EnginePodman, engine.WithPath("/bin/false"))
	if err != nil {
		t.Fatal(err)
	}
	root := project(t, map[string]string{
		"containers/app/Dockerfile":   "FROM debian\n",
		"containers/after/Dockerfile": "FROM p/app:latest\n",
	})
	all, err := Discover(Project{Name: "p", Root: root, Containers: filepath.Join(root, "containers"), BaseImage: DefaultBaseImage})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := NewPlan("p", all, []string{"after"})
	if err != nil {
		t.Fatal(err)
	}
	var events []progress.Event
	logDir := filepath.Join(root, "logs", "containers")
	_, err = Run(context.Background(), eng, plan, Options{Jobs: 2, LogDir: logDir, Progress: func(e progress.Event) { events = append(events, e) }})
	var fe *FailedError
	if !errors.As(err, &fe) {
		t.Fatalf("Run: %v, want a *FailedError", err)
	}
	type seen struct {
		kind          progress.Kind
		step, message string
	}
	want := []seen{
		{progress.Start, "app", "building (containers/app/Dockerfile)"},
		{progress.Failed, "app", "failed"},
		{progress.Warn, "after", "skipped"},
	}
	if len(events) != len(want) {
		t.Fatalf("events %+v, want %v", events, want)
	}
	for i, e := range events {
		if got := (seen{e.Kind, e.Step, e.Message}); got != want[i] || e.Op != "build" {
			t.Errorf("event %d = %s %+v, want %+v", i, e.Op, got, want[i])
		}
		if be, ok := e.Data.(Event); !ok || be.Image.Name != e.Step {
			t.Errorf("event %d: Data %#v, want the build.Event of %s", i, e.Data, e.Step)
		}
	}
	failed := events[1]
	if failed.Err == nil || failed.Elapsed <= 0 || filepath.Dir(failed.Log) != logDir {
		t.Errorf("failed event: err %v, elapsed %v, log %q; want an error, a time and a log in %s", failed.Err, failed.Elapsed, failed.Log, logDir)
	}
	if _, err := os.Stat(failed.Log); err != nil {
		t.Errorf("the failed event's log: %v", err)
	}
}
