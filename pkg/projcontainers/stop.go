package projcontainers

import (
	"context"
	"errors"
	"time"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/progress"
)

// Changed is a container Stop or Remove acted on.
type Changed struct {
	Name      string `json:"name"`
	Container string `json:"container"`
	// Action is "stopped", "not running" (Stop left a stopped container as it was) or
	// "removed".
	Action string `json:"action"`
}

// Stop stops the project's containers that names designate (containers/ names or container
// names), or every one of them when all is set; stopped containers are kept (see Remove).
// timeout is the grace period before the engine kills a container; negative leaves it to the
// engine. Names that designate none of ours are usage errors raised before anything is
// stopped, and a container with such a name that is not ours is left alone.
func Stop(ctx context.Context, eng *engine.Engine, p Project, names []string, all bool, timeout time.Duration, pf progress.Func) ([]Changed, error) {
	cs, err := pick(ctx, eng, p, names, all)
	if err != nil {
		return nil, err
	}
	out := []Changed{}
	for _, c := range cs {
		ch := Changed{Name: c.Labels[LabelContainer], Container: c.Name, Action: "not running"}
		if c.Running || c.Status == "paused" || c.Status == "restarting" {
			ch.Action = "stopped"
		}
		// A container that is not running is stopped too: one that exited by itself is
		// restarted by its restart policy unless the engine is told it was stopped.
		began := time.Now()
		pf.Emit(progress.Event{Op: "containers", Kind: progress.Start, Step: "stop " + ch.Name})
		if err := eng.Stop(ctx, c.ID, timeout); err != nil {
			pf.Emit(progress.Event{Op: "containers", Kind: progress.Failed, Step: "stop " + ch.Name, Elapsed: time.Since(began), Err: err})
			return out, err
		}
		pf.Emit(progress.Event{Op: "containers", Kind: progress.Done, Step: "stop " + ch.Name, Message: ch.Action, Elapsed: time.Since(began)})
		out = append(out, ch)
	}
	return out, nil
}

// Remove removes the project's containers that names designate. A running one is a usage
// error unless force, which kills it; either way every name is checked before anything is
// removed, and a container with such a name that is not ours is left alone.
func Remove(ctx context.Context, eng *engine.Engine, p Project, names []string, force bool, pf progress.Func) ([]Changed, error) {
	if len(names) == 0 {
		return nil, exitcode.Usagef("no container named")
	}
	cs, err := pick(ctx, eng, p, names, false)
	if err != nil {
		return nil, err
	}
	if !force {
		for _, c := range cs {
			if c.Running || c.Status == "paused" || c.Status == "restarting" {
				return nil, exitcode.Usagef("container %s is %s: stop it first ('ps-env containers stop --container %s') or remove it with --force",
					c.Name, c.Status, c.Labels[LabelContainer])
			}
		}
	}
	out := []Changed{}
	for _, c := range cs {
		ch := Changed{Name: c.Labels[LabelContainer], Container: c.Name, Action: "removed"}
		began := time.Now()
		pf.Emit(progress.Event{Op: "containers", Kind: progress.Start, Step: "rm " + ch.Name})
		if err := remove(ctx, eng, c.ID, force); err != nil {
			pf.Emit(progress.Event{Op: "containers", Kind: progress.Failed, Step: "rm " + ch.Name, Elapsed: time.Since(began), Err: err})
			return out, err
		}
		pf.Emit(progress.Event{Op: "containers", Kind: progress.Done, Step: "rm " + ch.Name, Elapsed: time.Since(began)})
		out = append(out, ch)
	}
	return out, nil
}

// pick is every container of the project when all is set, else those names designate.
func pick(ctx context.Context, eng *engine.Engine, p Project, names []string, all bool) ([]engine.Container, error) {
	if err := checkProject(p.Name); err != nil {
		return nil, err
	}
	if all {
		return ours(ctx, eng, p.Name)
	}
	return resolve(ctx, eng, p, names)
}

// removeAttempts bounds how often remove tries again: podman refuses to remove a container
// that its restart policy is restarting at that moment ("container state improper").
const removeAttempts = 5

// remove removes a container, trying again while it still exists: a crash-looping container
// with a restart policy can be between two runs when the engine tries to kill it.
func remove(ctx context.Context, eng *engine.Engine, id string, force bool) error {
	var err error
	for i := 0; i < removeAttempts; i++ {
		if err = eng.Remove(ctx, id, force, false); err == nil {
			return nil
		}
		if _, ierr := eng.InspectContainer(ctx, id); errors.Is(ierr, engine.ErrNotFound) {
			return nil
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(i+1) * 200 * time.Millisecond):
		}
	}
	return err
}
