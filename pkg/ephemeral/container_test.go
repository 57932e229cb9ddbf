package ephemeral_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/progress"
)

// containerEngine returns the engine with the default image, skipping when the image has not
// been built (`ps-build postgres`; the e2e tests build it and cover this provider too).
func containerEngine(t *testing.T, name string) *engine.Engine {
	t.Helper()
	environ := os.Environ()
	if name == testenv.EnginePodman {
		testenv.Podman(t)
	} else {
		environ = append(environ, "DOCKER_HOST="+testenv.Docker(t))
	}
	e, err := engine.New(name, engine.WithEnviron(environ))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if ok, err := e.ImageExists(ctx, ephemeral.DefaultImage); err != nil || !ok {
		t.Skipf("%s has no %s (build it with ps-build postgres): %v", name, ephemeral.DefaultImage, err)
	}
	return e
}

// startedNames collects the container names Start reports through its progress (the
// "container" detail of its events), so that a test can look for exactly its own containers
// while others run on the same engine.
type startedNames struct {
	mu    sync.Mutex
	names []string
}

func (s *startedNames) progress(e progress.Event) {
	for _, a := range e.Attrs {
		if a.Key == "container" && e.Op == "ephemeral" {
			s.mu.Lock()
			s.names = append(s.names, a.Value.String())
			s.mu.Unlock()
		}
	}
}

func (s *startedNames) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.names...)
}

// TestContainerStartStopAndCancel starts a container server, uses it, stops it, and cancels
// Starts at several moments (before and during `run`, during initialisation): nothing of any
// of them may remain.
func TestContainerStartStopAndCancel(t *testing.T) {
	for _, name := range []string{testenv.EnginePodman, testenv.EngineDocker} {
		t.Run(name, func(t *testing.T) {
			e := containerEngine(t, name)
			state := t.TempDir()
			var started startedNames
			o := ephemeral.Options{Provider: ephemeral.Container, Engine: name, Detach: true, StateDir: state, Environ: os.Environ(), Progress: started.progress}

			inst, err := ephemeral.Start(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			// Registered before any assertion: a failing one must not leave the container running.
			t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
			if inst.Engine != name || inst.Container == "" || inst.Port == 0 || !strings.Contains(inst.URL, "127.0.0.1:") {
				t.Errorf("instance = %+v", inst)
			}
			ping(t, inst.URL)
			c, err := e.InspectContainer(context.Background(), inst.Container)
			if err != nil {
				t.Fatal(err)
			}
			if c.Labels["io.poststack.ephemeral"] != inst.ID || len(c.Mounts) != 0 || len(c.Ports) != 1 || c.Ports[0].HostIP != "127.0.0.1" {
				t.Errorf("container: labels %v, mounts %+v, ports %+v; want the ID label, no volume, 127.0.0.1 only", c.Labels, c.Mounts, c.Ports)
			}
			loaded, err := ephemeral.Load(context.Background(), state, inst.ID)
			if err != nil {
				t.Fatal(err)
			}
			if err := ephemeral.Stop(context.Background(), loaded); err != nil {
				t.Fatal(err)
			}

			for _, delay := range []time.Duration{0, 50 * time.Millisecond, 400 * time.Millisecond, 1200 * time.Millisecond} {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(delay, cancel)
				inst, err := ephemeral.Start(ctx, o)
				cancel()
				if err == nil {
					t.Cleanup(func() { _ = ephemeral.Stop(context.Background(), inst) })
					if err := ephemeral.Stop(context.Background(), inst); err != nil {
						t.Fatal(err)
					}
				} else if !errors.Is(err, context.Canceled) {
					t.Errorf("cancelled after %v: %v; want the cancellation", delay, err)
				}
			}
			for _, n := range started.all() {
				if _, err := e.InspectContainer(context.Background(), n); !errors.Is(err, engine.ErrNotFound) {
					t.Errorf("container %s remains (%v)", n, err)
				}
			}
			assertEmpty(t, state)
		})
	}
}
