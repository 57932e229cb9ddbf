package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/poststack/poststack/pkg/exitcode"
)

// BuildOptions describes an image build.
type BuildOptions struct {
	ContextDir string // build context directory
	Dockerfile string // absolute, or relative to ContextDir; "" = the engine's default
	Tags       []string
	BuildArgs  map[string]string // rendered in key order; values are redacted from errors
	Labels     map[string]string
	NoCache    bool
	// Pull is "missing" (the default when ""), "always" or "never". Docker has no "never": it
	// pulls a missing base image either way, so "never" behaves like "missing" there.
	Pull string
	// Output receives the whole build output, stdout and stderr interleaved; nil discards it.
	Output io.Writer
}

// buildTailLines is how much of the build output a failed build's error keeps: enough to hold
// the failing step and its output.
const buildTailLines = 30

// buildArgs renders the `build` arguments for o, with the image ID written to iidfile.
func (e *Engine) buildArgs(o BuildOptions, iidfile string) ([]string, error) {
	if o.ContextDir == "" {
		return nil, exitcode.Usagef("build: no context directory")
	}
	pull := o.Pull
	if pull == "" {
		pull = "missing"
	}
	switch pull {
	case "missing", "always", "never":
	default:
		return nil, exitcode.Usagef("build %s: unknown pull policy %q (want missing, always or never)", o.ContextDir, o.Pull)
	}
	args := []string{"build"}
	if e.name == Podman {
		// The OCI format drops HEALTHCHECK and friends; the docker format keeps them.
		args = append(args, "--format", "docker", "--pull="+pull)
	} else if pull == "always" {
		args = append(args, "--pull")
	}
	// A failed step's container is otherwise left behind by both engines' classic builders.
	args = append(args, "--force-rm", "--iidfile", iidfile)
	if o.Dockerfile != "" {
		df := o.Dockerfile
		if !filepath.IsAbs(df) {
			df = filepath.Join(o.ContextDir, df)
		}
		args = append(args, "-f", df)
	}
	for _, t := range o.Tags {
		args = append(args, "-t", t)
	}
	args = append(args, labelArgs("--build-arg", o.BuildArgs)...)
	args = append(args, labelArgs("--label", o.Labels)...)
	if o.NoCache {
		args = append(args, "--no-cache")
	}
	return append(args, o.ContextDir), nil
}

// Build builds an image and returns its ID ("sha256:<hex>"). A failed build is a *CommandError
// whose Stderr holds the last 30 lines of the output.
func (e *Engine) Build(ctx context.Context, o BuildOptions) (string, error) {
	f, err := os.CreateTemp("", "poststack-iid-*")
	if err != nil {
		return "", fmt.Errorf("build %s: %w", o.ContextDir, err)
	}
	iidfile := f.Name()
	_ = f.Close()
	defer os.Remove(iidfile)

	args, err := e.buildArgs(o, iidfile)
	if err != nil {
		return "", err
	}
	tail := &tailWriter{max: buildTailLines}
	var w io.Writer = tail
	if o.Output != nil {
		w = io.MultiWriter(o.Output, tail)
	}
	if _, err := e.runWith(ctx, invocation{args: args, stdout: w, stderr: w}); err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			ce.Stderr = tail.String()
		}
		return "", fmt.Errorf("build %s: %w", o.ContextDir, err)
	}
	id, err := os.ReadFile(iidfile)
	if err != nil {
		return "", fmt.Errorf("build %s: read image ID: %w", o.ContextDir, err)
	}
	if s := strings.TrimSpace(string(id)); s != "" {
		return normalizeImageID(s), nil
	}
	return "", fmt.Errorf("build %s: %s wrote no image ID", o.ContextDir, e.name)
}

// tailWriter keeps the last max lines written to it.
type tailWriter struct {
	mu      sync.Mutex
	max     int
	lines   []string
	partial []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.push(string(t.partial[:i]))
		t.partial = t.partial[i+1:]
	}
	return len(p), nil
}

func (t *tailWriter) push(line string) {
	t.lines = append(t.lines, strings.TrimRight(line, "\r"))
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
}

// String returns the kept lines, including an unterminated last one.
func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		ls = append(ls, string(t.partial))
		if len(ls) > t.max {
			ls = ls[len(ls)-t.max:]
		}
	}
	return strings.TrimSpace(strings.Join(ls, "\n"))
}
