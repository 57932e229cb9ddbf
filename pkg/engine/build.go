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
	"github.com/poststack/poststack/pkg/safefile"
)

// BuildOptions describes an image build.
type BuildOptions struct {
	ContextDir string // build context directory
	Dockerfile string // absolute, or relative to ContextDir, inside it; "" = the engine's default
	Tags       []string
	// BuildArgs are passed by name (`--build-arg NAME`, the value in the CLI's environment), so
	// that a secret among them is not on a command line every local user can read; names the
	// CLIs read themselves (PATH, DOCKER_HOST, HTTP_PROXY, …) go as NAME=value. Values are
	// redacted from errors.
	BuildArgs map[string]string
	Labels    map[string]string
	// Exclude are patterns (.dockerignore syntax, relative to ContextDir) for files never sent to
	// the engine, on top of the context's .containerignore or .dockerignore; a "!" line there
	// cannot bring them back. See WalkContext.
	Exclude []string
	NoCache bool
	// Pull is "missing" (the default when ""), "always" or "never". Docker has no "never": it
	// pulls a missing base image either way, so "never" behaves like "missing" there.
	Pull string
	// Output receives the whole build output, stdout and stderr interleaved; nil discards it.
	Output io.Writer
}

// buildTailLines is how much of the build output a failed build's error keeps: enough to hold
// the failing step and its output.
const buildTailLines = 30

// buildArgs renders the `build` arguments for o, with the image ID written to iidfile and the
// context read from standard input.
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
	df, err := dockerfileInContext(o)
	if err != nil {
		return nil, err
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
	if df != "" {
		// A path inside the context stream.
		args = append(args, "-f", df)
	}
	for _, t := range o.Tags {
		args = append(args, "-t", t)
	}
	for _, k := range sortedKeys(o.BuildArgs) {
		if passableByName(k) {
			args = append(args, "--build-arg", k)
		} else {
			args = append(args, "--build-arg", k+"="+o.BuildArgs[k])
		}
	}
	args = append(args, labelArgs("--label", o.Labels)...)
	if o.NoCache {
		args = append(args, "--no-cache")
	}
	return append(args, "-"), nil
}

// errEngineStopped ends the sending of a context the engine no longer reads.
var errEngineStopped = errors.New("the engine stopped reading the build context")

// buildArgEnv returns the NAME=value entries of the build arguments passed by name, for the
// CLI's environment; both CLIs read the value of a bare `--build-arg NAME` from there.
func buildArgEnv(o BuildOptions) []string {
	var env []string
	for _, k := range sortedKeys(o.BuildArgs) {
		if passableByName(k) {
			env = append(env, k+"="+o.BuildArgs[k])
		}
	}
	return env
}

// dockerfileInContext returns o's Dockerfile relative to the context, with forward slashes; ""
// when o names none.
func dockerfileInContext(o BuildOptions) (string, error) {
	if o.Dockerfile == "" {
		return "", nil
	}
	df := o.Dockerfile
	if !filepath.IsAbs(df) {
		df = filepath.Join(o.ContextDir, df)
	}
	rel, err := filepath.Rel(o.ContextDir, df)
	if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", exitcode.Usagef("build %s: Dockerfile %s is not inside the build context", o.ContextDir, o.Dockerfile)
	}
	return filepath.ToSlash(rel), nil
}

// alwaysSent returns the files of the context sent whatever the ignore patterns say: the
// Dockerfile (or, with none named, the engines' defaults that exist) and the ignore files, as
// each engine's own CLI does.
func alwaysSent(o BuildOptions) ([]string, error) {
	df, err := dockerfileInContext(o)
	if err != nil {
		return nil, err
	}
	var out []string
	if df != "" {
		out = append(out, df)
	}
	candidates := ignoreFiles[:]
	if df == "" {
		candidates = append([]string{"Containerfile", "Dockerfile"}, candidates...)
	}
	for _, name := range candidates {
		if _, err := os.Lstat(filepath.Join(o.ContextDir, name)); err == nil && name != df {
			out = append(out, name)
		}
	}
	return out, nil
}

// Build builds an image and returns its ID ("sha256:<hex>"). The context goes to the engine
// as a tar stream on standard input (see WalkContext). A failed build is a *CommandError whose
// Stderr holds the last 30 lines of the output; a context that cannot be sent is the error of
// reading it (a refused Dockerfile or ignore file is a *safefile.Error, exit code 2).
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
	always, err := alwaysSent(o)
	if err != nil {
		return "", err
	}
	// The ignore file and the files always sent are checked before the engine starts, so that
	// a refused one is reported as such rather than as a failed build.
	if _, err := newContextFilter(o.ContextDir, o.Exclude); err != nil {
		return "", fmt.Errorf("build %s: %w", o.ContextDir, err)
	}
	for _, rel := range always {
		if _, err := safefile.ReadFile(o.ContextDir, filepath.Join(o.ContextDir, filepath.FromSlash(rel))); err != nil {
			return "", fmt.Errorf("build %s: %w", o.ContextDir, err)
		}
	}

	tail := &tailWriter{max: buildTailLines}
	var w io.Writer = tail
	if o.Output != nil {
		w = io.MultiWriter(o.Output, tail)
	}
	pr, pw := io.Pipe()
	sent := make(chan error, 1)
	go func() {
		err := writeContext(pw, o.ContextDir, o.Exclude, always)
		pw.CloseWithError(err)
		sent <- err
	}()
	_, runErr := e.runWith(ctx, invocation{args: args, secrets: buildArgEnv(o), stdin: pr, stdout: w, stderr: w})
	// An engine that stopped reading must not leave the writer blocked.
	pr.CloseWithError(errEngineStopped)
	if err := <-sent; err != nil && !errors.Is(err, errEngineStopped) {
		return "", fmt.Errorf("build %s: send the build context: %w", o.ContextDir, err)
	}
	if runErr != nil {
		var ce *CommandError
		if errors.As(runErr, &ce) {
			ce.Stderr = tail.String()
		}
		return "", fmt.Errorf("build %s: %w", o.ContextDir, runErr)
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
