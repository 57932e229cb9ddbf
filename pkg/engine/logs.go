package engine

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// LogOptions select what StreamLogs writes.
type LogOptions struct {
	Follow bool
	Tail   int    // > 0: only the last Tail lines
	Since  string // passed to --since: a duration (10m) or a timestamp (RFC 3339)
}

// StreamLogs writes a container's output, stdout and stderr together, to w; with Follow it
// goes on until the container stops or ctx is done (which is not an error).
func (e *Engine) StreamLogs(ctx context.Context, name string, o LogOptions, w io.Writer) error {
	if err := checkName("container", name); err != nil {
		return err
	}
	args := []string{"logs"}
	if o.Follow {
		args = append(args, "--follow")
	}
	if o.Tail > 0 {
		args = append(args, "--tail", strconv.Itoa(o.Tail))
	}
	if o.Since != "" {
		args = append(args, "--since", o.Since)
	}
	_, err := e.runWith(ctx, invocation{args: append(args, name), stdout: w, stderr: w})
	if err != nil && ctx.Err() != nil && o.Follow {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logs of container %s: %w", name, classify(err, "container", name))
	}
	return nil
}
