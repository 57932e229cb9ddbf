// Package engine drives the podman and docker command-line clients: builds, containers, images,
// networks and volumes, with one result shape for both engines.
//
// It runs the CLIs rather than speaking the API because both engines ship a CLI with the same
// verbs, while their APIs (libpod versus Docker) differ; the JSON the CLIs print differs in
// places too, and this package hides that.
package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
)

// Engine names accepted by New and Detect.
const (
	Podman = "podman"
	Docker = "docker"
)

// ErrNotFound is wrapped by the errors of operations on a container, image, network or volume
// that does not exist.
var ErrNotFound = errors.New("not found")

// cancelGrace is how long a cancelled CLI gets to exit after SIGTERM before it is killed; a
// client killed outright can leave half-created objects behind.
const cancelGrace = 10 * time.Second

// Engine runs one container engine's CLI. It holds no mutable state and is safe for concurrent
// use.
type Engine struct {
	name    string
	path    string
	environ []string
}

// Option configures an Engine; it returns an error for a nonsense value.
type Option func(*Engine) error

// WithPath sets the CLI binary to run instead of looking the engine's name up on PATH.
func WithPath(path string) Option {
	return func(e *Engine) error {
		if path == "" {
			return exitcode.Usagef("engine: empty CLI path")
		}
		fi, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("engine: CLI %s: %w", path, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("engine: CLI %s is not an executable file", path)
		}
		e.path = path
		return nil
	}
}

// WithEnviron sets the environment of the CLI processes (default: the current process's). Its
// PATH is also where New and Detect look for the CLI, so that the binary found is the one that
// environment would run.
func WithEnviron(environ []string) Option {
	return func(e *Engine) error {
		for _, kv := range environ {
			if !strings.Contains(kv, "=") {
				return exitcode.Usagef("engine: environment entry %q is not K=V", kv)
			}
		}
		e.environ = append([]string(nil), environ...)
		return nil
	}
}

// New returns the engine name ("podman" or "docker"). An unknown name is a usage error; a
// missing CLI is an error saying which binary was looked for.
func New(name string, opts ...Option) (*Engine, error) {
	if name != Podman && name != Docker {
		return nil, exitcode.Usagef("unknown container engine %q (want %q or %q)", name, Podman, Docker)
	}
	e := &Engine{name: name}
	for _, o := range opts {
		if err := o(e); err != nil {
			return nil, err
		}
	}
	if e.path == "" {
		p, err := lookPath(name, e.environ)
		if err != nil {
			return nil, fmt.Errorf("container engine %s: %w", name, err)
		}
		e.path = p
	}
	return e, nil
}

// Detect returns the engine named by preference, or when preference is empty podman if its CLI
// is on PATH, else docker. Podman comes first because pod files need it.
func Detect(preference string, opts ...Option) (*Engine, error) {
	if preference != "" {
		return New(preference, opts...)
	}
	var errs []error
	for _, name := range []string{Podman, Docker} {
		e, err := New(name, opts...)
		if err == nil {
			return e, nil
		}
		if exitcode.Of(err) == exitcode.Usage {
			return nil, err
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no container engine found: neither %s nor %s is installed: %w", Podman, Docker, errors.Join(errs...))
}

// lookPath finds name on the PATH of environ, or on the process's PATH when environ is nil.
func lookPath(name string, env []string) (string, error) {
	if env == nil {
		return exec.LookPath(name)
	}
	return environ.LookPath(name, environ.Getenv(env)("PATH"))
}

// Name returns "podman" or "docker".
func (e *Engine) Name() string { return e.name }

// Path returns the CLI binary the engine runs.
func (e *Engine) Path() string { return e.path }

// CommandError is a CLI invocation that failed: it exited non-zero, could not start, or was
// cancelled (then Err is the context's error).
type CommandError struct {
	Engine string
	// Args are the CLI arguments with the value of every -e/--env and --build-arg K=V replaced
	// by "K=***", because environments often hold passwords.
	Args     []string
	ExitCode int
	// Stderr is the trimmed error output; for Build, the last 30 lines of the whole output.
	Stderr string
	Err    error
}

// maxCommandLen bounds the command shown in Error so a long run line stays readable; the full
// arguments are in Args.
const maxCommandLen = 80

func (e *CommandError) Error() string {
	var b strings.Builder
	b.WriteString(e.Engine)
	for _, a := range e.Args {
		if b.Len() >= maxCommandLen {
			b.WriteString(" …")
			break
		}
		b.WriteByte(' ')
		if a == "" || strings.ContainsAny(a, " \t\n\"'") {
			a = strconv.Quote(a)
		}
		b.WriteString(a)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	} else {
		fmt.Fprintf(&b, "exit status %d", e.ExitCode)
	}
	if line := summaryLine(e.Stderr); line != "" {
		b.WriteString(": ")
		b.WriteString(line)
	}
	return b.String()
}

func (e *CommandError) Unwrap() error { return e.Err }

// checkName refuses an object name the CLI would read as a flag: names come from records and
// files a repository may have written, and `rm -f --all` removes every container.
func checkName(kind, name string) error {
	if name == "" {
		return exitcode.Usagef("empty %s name", kind)
	}
	if strings.HasPrefix(name, "-") {
		return exitcode.Usagef("%s name %q starts with '-'", kind, name)
	}
	return nil
}

// summaryLine picks the line of output that best explains a failure: the last one that reads
// as an error, since the engines log warnings (systemd, cgroups) after or around it.
func summaryLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.ToLower(lines[i])
		if strings.HasPrefix(l, "error") || strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") {
			line := strings.TrimSpace(lines[i])
			if startFailed.MatchString(line) {
				// podman kube play's last word counts the containers; why the first one failed
				// is on a line of its own above it (the others depend on it).
				if cause := firstStartCause(lines[:i]); cause != "" {
					line += " (" + cause + ")"
				}
			}
			return line
		}
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(lines[i]); s != "" {
			return s
		}
	}
	return ""
}

// startFailed is podman kube play's summary of containers that did not start.
var startFailed = regexp.MustCompile(`failed to start \d+ containers?$`)

// startCause is one of kube play's lines above that summary: starting container <ID>: <why>.
var startCause = regexp.MustCompile(`^starting container ([0-9a-f]{12})[0-9a-f]*: (.+)$`)

// firstStartCause is the first container's reason among lines, with its ID shortened; "" if
// there is none.
func firstStartCause(lines []string) string {
	for _, l := range lines {
		if m := startCause.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			return "starting container " + m[1] + ": " + m[2]
		}
	}
	return ""
}

// redactArgs copies args with the values of environment and build-argument settings masked.
func redactArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		switch a {
		case "-e", "--env", "--build-arg":
			if i+1 < len(out) {
				out[i+1] = maskValue(out[i+1])
				i++
			}
			continue
		}
		for _, p := range []string{"-e=", "--env=", "--build-arg="} {
			if v, ok := strings.CutPrefix(a, p); ok {
				out[i] = p + maskValue(v)
			}
		}
	}
	return out
}

func maskValue(kv string) string {
	k, _, ok := strings.Cut(kv, "=")
	if !ok {
		return kv
	}
	return k + "=***"
}

// invocation is one CLI run.
type invocation struct {
	args []string
	// secrets are "K=V" entries added to the CLI's own environment, for values the arguments
	// name only (`-e K`): /proc/PID/cmdline is readable by every local user, /proc/PID/environ
	// only by the CLI's owner.
	secrets []string
	stdin   io.Reader
	stdout  io.Writer // nil: captured and returned
	stderr  io.Writer // nil: captured for the error
}

// secretName matches what may be passed by name: an environment variable name, since podman
// reads `-e NAME*` as a glob over its own environment.
var secretName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedPrefixes and reservedNames are variables the CLIs, their helpers or the dynamic
// loader read themselves (for running, and for building: certificates and proxies for pulls,
// the locale, tracing, BuildKit): set by name for a container or a build, they would also
// reconfigure the CLI that passes them.
var (
	reservedPrefixes = []string{"DOCKER_", "CONTAINER_", "CONTAINERS_", "PODMAN_", "BUILDAH_", "XDG_", "LD_", "REGISTRY_",
		"STORAGE_", "SSL_", "OTEL_", "BUILDKIT_", "LC_"}
	reservedNames = []string{"PATH", "HOME", "USER", "SHELL", "TMPDIR", "TMP", "TEMP", "GODEBUG", "GOTRACEBACK", "GOMAXPROCS",
		"GOGC", "GOMEMLIMIT", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "FTP_PROXY", "http_proxy", "https_proxy",
		"no_proxy", "all_proxy", "ftp_proxy", "NOTIFY_SOCKET", "DBUS_SESSION_BUS_ADDRESS", "LANG", "LANGUAGE", "TZ",
		"SOURCE_DATE_EPOCH"}
)

// passableByName tells whether a value can be handed to the CLI through its environment and
// named on the command line only (`-e K`, `--build-arg K`): a plain variable name that the CLI
// does not read for itself.
func passableByName(k string) bool {
	return secretName.MatchString(k) && !slices.Contains(reservedNames, k) &&
		!slices.ContainsFunc(reservedPrefixes, func(p string) bool { return strings.HasPrefix(k, p) })
}

// secretArgs renders "K=V" entries as `flag K` arguments and returns the entries for the CLI's
// environment. A bad or reserved name is a usage error that never shows the value.
func secretArgs(flag string, kvs []string) (args, environ []string, err error) {
	for _, kv := range kvs {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !secretName.MatchString(k) {
			return nil, nil, exitcode.Usagef("secret environment entry %q is not NAME=value with a plain variable name", maskValue(kv))
		}
		if !passableByName(k) {
			return nil, nil, exitcode.Usagef("secret environment variable %s cannot be passed by name: the %s and %s CLIs read it themselves", k, Podman, Docker)
		}
		args = append(args, flag, k)
		environ = append(environ, kv)
	}
	return args, environ, nil
}

// run executes the CLI with args and returns its standard output.
func (e *Engine) run(ctx context.Context, args ...string) ([]byte, error) {
	return e.runWith(ctx, invocation{args: args})
}

func (e *Engine) runWith(ctx context.Context, in invocation) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, e.commandError(in.args, -1, "", err)
	}
	cmd := exec.CommandContext(ctx, e.path, in.args...)
	cmd.Env = e.environ
	if len(in.secrets) > 0 {
		// Environ is e.environ, or the process's when that is nil; a later entry wins.
		cmd.Env = append(cmd.Environ(), in.secrets...)
	}
	cmd.Stdin = in.stdin
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = cancelGrace
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if in.stdout != nil {
		cmd.Stdout = in.stdout
	}
	if in.stderr != nil {
		cmd.Stderr = in.stderr
	}
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, e.commandError(in.args, -1, stderr.String(), ctxErr)
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
		// *exec.ExitError has an ExitCode method, which exitcode.Of would take as ours (125
		// for podman): an engine command that failed is exit 1.
		err = errors.New(ee.Error())
	}
	return nil, e.commandError(in.args, code, stderr.String(), err)
}

func (e *Engine) commandError(args []string, code int, stderr string, err error) *CommandError {
	return &CommandError{
		Engine:   e.name,
		Args:     redactArgs(args),
		ExitCode: code,
		Stderr:   strings.TrimSpace(stderr),
		Err:      err,
	}
}

// notFoundMarkers are the phrases both engines use for a missing object, taken from their real
// messages ("No such container: x", "image not known", "network x not found", …). Generic
// phrases such as "not found" alone are avoided: they also appear in a command's own output
// ("executable file not found").
var notFoundMarkers = []string{
	"no such container",
	"no such object",
	"no such image",
	"no such volume",
	"no such network",
	"no container with name or id",
	"image not known",
	"network not found",
	"unable to find network",
}

// isNotFound reports whether err is a CLI failure caused by a missing object.
func isNotFound(err error) bool {
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode <= 0 {
		return false
	}
	s := strings.ToLower(ce.Stderr)
	for _, m := range notFoundMarkers {
		if strings.Contains(s, m) {
			return true
		}
	}
	// docker: "Error response from daemon: network x not found"
	return strings.Contains(s, "network ") && strings.Contains(s, " not found")
}

// classify wraps a failure caused by a missing object so that errors.Is(err, ErrNotFound)
// holds, keeping the CLI error for its message.
func classify(err error, kind, name string) error {
	if err == nil {
		return nil
	}
	if isNotFound(err) {
		return fmt.Errorf("%s %q: %w: %w", kind, name, ErrNotFound, err)
	}
	return err
}
