package engine

import (
	"context"
	"io"
)

// Command runs the CLI with args, feeding it stdin when non-nil, and returns its standard
// output; a failure is a *CommandError naming the command. It is for verbs this package has no
// method for (podman kube play, pod inspect, pod rm). Arguments are visible to every local user:
// a secret belongs in stdin, never in args.
func (e *Engine) Command(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	return e.runWith(ctx, invocation{args: args, stdin: stdin})
}
