package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/images"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/secret"
)

// Builder is the part of a container engine a build needs;
// *engine.Engine is one.
type Builder interface {
	Name() string
	Build(ctx context.Context, o engine.BuildOptions) (imageID string, err error)
	InspectImage(ctx context.Context, ref string) (*engine.Image, error)
}

// Pull policies for base images that are not built by the plan.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// Options tune Run. The zero value builds one image per CPU at a time,
// with the engine's cache, pulling missing base images, without log files.
type Options struct {
	Jobs    int      // images built at once; <= 0 means runtime.NumCPU()
	NoCache bool     // build every layer again
	Pull    string   // PullMissing (default), PullAlways or PullNever
	Tags    []string // extra tags given to every image, besides :latest
	Labels  map[string]string
	// LogDir receives each image's whole build output as
	// <name>-<timestamp>.log; "" keeps no log files.
	LogDir string
	// Mask, when set, is applied to each line of the build logs and of
	// the tail of a failed build's output (ImageResult.LogTail,
	// Event.Tail), which come from the engine as it printed them: a RUN
	// step may print a build argument or a secret it was given. A line
	// longer than secret.MaxHeldLine is masked in pieces (see
	// secret.LineWriter). nil keeps the output as it is.
	Mask func(string) string
	// SkipLogDir is the context-relative directory of the logs (and
	// anything else ps-build writes under the project), never sent to the
	// engine with a project image's context, like logs/ (see
	// ContextExcludes).
	SkipLogDir string
	// StateDir records each built image's fingerprint and ID, so that an
	// image whose inputs did not change is not built again; "" always
	// builds.
	StateDir string
	// TempDir holds the build contexts of built-in images while they
	// build; "" means os.TempDir().
	TempDir string
	Now     func() time.Time
	// Progress is told when an image starts (Start) and ends: Done when
	// built or up to date, Failed, or Warn "skipped" at the end of the run
	// for an image that never started. Step is the image's name, Message
	// its state, Log its build log; Data is the Event. Calls are
	// serialised.
	Progress progress.Func
}

// State is where an image of a plan is.
type State string

// The states of an image in a Result.
const (
	Building State = "building"
	Built    State = "built"
	// UpToDate images were not built: the image under the tag was made
	// from the same inputs (see fingerprint).
	UpToDate State = "up-to-date"
	Failed   State = "failed"
	Skipped  State = "skipped" // not built: an image it needs failed, or the run stopped
)

// Event reports an image starting or ending; it is the Data of the
// progress events of Run.
type Event struct {
	Image   *Image
	State   State
	Elapsed time.Duration // time since the image started, for an end
	Log     string        // path of the build log, "" without LogDir
	Tail    []string      // the last lines of the output, for Failed (engine.CommandError.Stderr)
	Err     error
}

// Progress is e in the common shape of pkg/progress. A Start's Message is
// "building (<source>)"; an end's is the state the image ended in.
func (e Event) Progress() progress.Event {
	p := progress.Event{Op: "build", Step: e.Image.Name, Message: string(e.State), Elapsed: e.Elapsed, Err: e.Err, Log: e.Log, Data: e,
		Attrs: []slog.Attr{slog.String("ref", e.Image.Ref), slog.String("source", e.Image.Source)}}
	switch e.State {
	case Building:
		p.Kind, p.Message = progress.Start, fmt.Sprintf("%s (%s)", Building, e.Image.Source)
	case Built, UpToDate:
		p.Kind = progress.Done
	case Failed:
		p.Kind = progress.Failed
	case Skipped:
		p.Kind = progress.Warn
	}
	return p
}

// ImageResult is what happened to one image.
type ImageResult struct {
	Name      string     `json:"name"`
	Ref       string     `json:"ref"`
	Source    string     `json:"source"`
	DependsOn []string   `json:"depends_on"`
	State     State      `json:"state"`
	ID        string     `json:"id,omitempty"`
	Tags      []string   `json:"tags,omitempty"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	// DurationMS is Finished - Started in whole milliseconds, 0 for an image that did not start.
	DurationMS int64    `json:"duration_ms"`
	Log        string   `json:"log,omitempty"`
	Error      string   `json:"error,omitempty"`
	LogTail    []string `json:"log_tail,omitempty"`
}

// Result is the outcome of Run, in plan order.
type Result struct {
	Engine   string    `json:"engine"`
	Project  string    `json:"project"`
	Jobs     int       `json:"jobs"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// DurationMS is Finished - Started in whole milliseconds.
	DurationMS int64         `json:"duration_ms"`
	Images     []ImageResult `json:"images"`
}

// FailedError is returned by Run when an image failed to build; the Result
// says which were built, failed and skipped.
type FailedError struct {
	Failed []string // image names
	Err    error    // the first failure
}

func (e *FailedError) Error() string {
	if len(e.Failed) == 1 {
		return fmt.Sprintf("building %s failed: %v", e.Failed[0], e.Err)
	}
	return fmt.Sprintf("building %s failed; first: %v", strings.Join(e.Failed, ", "), e.Err)
}

func (e *FailedError) Unwrap() error { return e.Err }

// Run builds the plan's images with b, each once all the images it is
// built FROM are built, up to o.Jobs at a time. After a failure no new
// image starts (the ones building finish) and the images left are
// Skipped. It returns the Result even with an error.
func Run(ctx context.Context, b Builder, plan *Plan, o Options) (*Result, error) {
	if o.Jobs <= 0 {
		o.Jobs = runtime.NumCPU()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch o.Pull {
	case "":
		o.Pull = PullMissing
	case PullMissing, PullAlways, PullNever:
	default:
		return nil, exitcode.Usagef("--pull must be missing, always or never, not %q", o.Pull)
	}
	if o.LogDir != "" {
		if err := prepareLogDir(o.LogDir); err != nil {
			return nil, err
		}
	}
	r := &runner{b: b, o: o, plan: plan, results: make([]ImageResult, len(plan.Images)), progress: o.Progress.Serialized()}
	return r.run(ctx)
}

// ContextExcludes are the patterns (.dockerignore syntax) of the files of a
// project's build context that are never sent to the engine, whatever the
// project's .dockerignore or .containerignore says: poststack's local state
// (.poststack/, which holds generated passwords) and dotenv files (.env,
// .env.local, .envrc, …), both at any depth, since a sub-project or a
// front-end keeps its own; and the project's logs (logs/, and logDir, the
// context-relative log directory, when it is another). An image must not
// carry the secrets of the machine that built it: the checkout is built on
// laptops and CI runners that hold them.
func ContextExcludes(logDir string) []string {
	ex := []string{"**/.poststack", "**/.env*", "logs"}
	if d := filepath.ToSlash(filepath.Clean(logDir)); logDir != "" && d != "logs" && d != "." {
		ex = append(ex, escapePattern(d))
	}
	return ex
}

// escapePattern makes a path a pattern that matches only itself.
func escapePattern(p string) string {
	var b strings.Builder
	for i, r := range p {
		if strings.ContainsRune(`*?[]\`, r) || i == 0 && r == '!' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// prepareLogDir makes the build log directory dir and its parent (the
// project's log directory) unless they exist, and refuses either when it is
// a symbolic link or not a directory: a repository can ship logs/ or
// logs/containers as a link to anywhere the user can write. It is a usage
// error (exit 2): nothing is built.
func prepareLogDir(dir string) error {
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(filepath.Dir(parent), 0o755); err != nil {
		return fmt.Errorf("build log directory: %w", err)
	}
	for _, d := range []string{parent, dir} {
		st, err := os.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("build log directory: %w", err)
			}
			if st, err = os.Lstat(d); err != nil {
				return fmt.Errorf("build log directory: %w", err)
			}
		case err != nil:
			return fmt.Errorf("build log directory: %w", err)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return exitcode.Usagef("build log directory %s is a symbolic link; remove it (poststack writes logs only into a directory of its own)", d)
		}
		if !st.IsDir() {
			return exitcode.Usagef("build log directory %s is not a directory; remove it", d)
		}
	}
	return nil
}

type runner struct {
	b        Builder
	o        Options
	plan     *Plan
	results  []ImageResult
	progress progress.Func
}

type outcome struct {
	i    int
	id   string
	same bool // up to date: not built
	log  string
	tail []string
	err  error
}

func (r *runner) run(ctx context.Context) (*Result, error) {
	res := &Result{Engine: r.b.Name(), Project: r.plan.Project, Jobs: r.o.Jobs, Started: r.o.Now()}
	index := map[string]int{}
	waiting := make([]int, len(r.plan.Images)) // unbuilt dependencies
	dependents := map[string][]int{}
	for i, im := range r.plan.Images {
		index[im.Name] = i
		deps := im.Deps
		if deps == nil {
			deps = []string{}
		}
		r.results[i] = ImageResult{Name: im.Name, Ref: im.Ref, Source: im.Source, DependsOn: deps, State: Skipped}
	}
	var ready []int
	for i, im := range r.plan.Images {
		for _, d := range im.Deps {
			if _, ok := index[d]; ok {
				waiting[i]++
				dependents[d] = append(dependents[d], i)
			}
		}
		if waiting[i] == 0 {
			ready = append(ready, i)
		}
	}

	done := make(chan outcome)
	running := 0
	var failed []string
	var firstErr error
	for {
		for running < r.o.Jobs && len(ready) > 0 && firstErr == nil && ctx.Err() == nil {
			i := ready[0]
			ready = ready[1:]
			running++
			started := r.o.Now()
			r.results[i].State = Building
			r.results[i].Started = &started
			go func() { done <- r.build(ctx, i, started) }()
		}
		if running == 0 {
			break
		}
		out := <-done
		running--
		finished := r.o.Now()
		ir := &r.results[out.i]
		ir.Finished = &finished
		ir.DurationMS = finished.Sub(*ir.Started).Milliseconds()
		ir.Log = out.log
		im := r.plan.Images[out.i]
		if out.err != nil {
			ir.State = Failed
			ir.Error = out.err.Error()
			ir.LogTail = out.tail
			failed = append(failed, im.Name)
			if firstErr == nil {
				firstErr = out.err
			}
			r.event(Event{Image: im, State: Failed, Elapsed: finished.Sub(*ir.Started), Log: out.log, Tail: out.tail, Err: out.err})
			continue
		}
		ir.State = Built
		if out.same {
			ir.State = UpToDate
		}
		ir.ID = out.id
		ir.Tags = r.tags(im)
		r.event(Event{Image: im, State: ir.State, Elapsed: finished.Sub(*ir.Started), Log: out.log})
		for _, j := range dependents[im.Name] {
			if waiting[j]--; waiting[j] == 0 {
				ready = append(ready, j)
			}
		}
	}
	for i, ir := range r.results {
		if ir.State == Skipped {
			r.event(Event{Image: r.plan.Images[i], State: Skipped})
		}
	}
	res.Images = r.results
	res.Finished = r.o.Now()
	res.DurationMS = res.Finished.Sub(res.Started).Milliseconds()
	switch {
	case firstErr != nil && ctx.Err() != nil:
		return res, fmt.Errorf("build interrupted: %w", ctx.Err())
	case firstErr != nil:
		return res, &FailedError{Failed: failed, Err: firstErr}
	case ctx.Err() != nil:
		return res, fmt.Errorf("build interrupted: %w", ctx.Err())
	}
	return res, nil
}

func (r *runner) event(e Event) {
	if r.progress != nil {
		r.progress(e.Progress())
	}
}

func (r *runner) tags(im *Image) []string {
	tags := []string{im.Ref}
	repo := im.Ref[:strings.LastIndexByte(im.Ref, ':')]
	for _, t := range r.o.Tags {
		if t != "" && t != "latest" {
			tags = append(tags, repo+":"+t)
		}
	}
	return tags
}

// build builds image i, its output going to its log file and a tail buffer.
func (r *runner) build(ctx context.Context, i int, started time.Time) (out outcome) {
	im := r.plan.Images[i]
	out.i = i
	r.event(Event{Image: im, State: Building})
	labels := r.labels(im)
	fp := ""
	if r.o.StateDir != "" && !r.o.NoCache && r.o.Pull != PullAlways {
		var id string
		var err error
		fp, id, err = r.upToDate(ctx, im)
		switch {
		case err != nil:
			out.err = err
			return out
		case id != "":
			out.id, out.same = id, true
			return out
		}
	}
	var w io.Writer = io.Discard
	if r.o.LogDir != "" {
		f, path, err := r.openLog(im, started)
		if err != nil {
			out.err = err
			return out
		}
		out.log = path
		w = f
		flush := func() error { return nil }
		if r.o.Mask != nil {
			lw := secret.NewLineWriter(f, r.o.Mask)
			w, flush = lw, lw.Close
		}
		defer func() {
			if err := errors.Join(flush(), f.Close()); err != nil && out.err == nil {
				out.err = fmt.Errorf("write build log: %w", err)
			}
		}()
	}

	var exclude []string
	if !im.Builtin {
		exclude = ContextExcludes(r.o.SkipLogDir)
	}
	bo := engine.BuildOptions{
		Exclude:    exclude,
		ContextDir: im.Context,
		Dockerfile: im.Dockerfile,
		Tags:       r.tags(im),
		BuildArgs:  im.BuildArgs,
		Labels:     labels,
		NoCache:    r.o.NoCache,
		Pull:       r.o.Pull,
		Output:     w,
	}
	if r.o.Pull == PullAlways && len(im.Deps) > 0 {
		// The images of this plan are local: asking a registry for them
		// fails. Their external bases, if any, are pulled when missing.
		bo.Pull = PullMissing
	}
	if im.Builtin {
		dir, err := os.MkdirTemp(r.o.TempDir, "ps-build-"+im.Name+"-")
		if err != nil {
			out.err = fmt.Errorf("%s: build context: %w", im.Name, err)
			return out
		}
		defer os.RemoveAll(dir)
		if err := images.WriteContext(im.Def, dir); err != nil {
			out.err = fmt.Errorf("%s: build context: %w", im.Name, err)
			return out
		}
		bo.ContextDir, bo.Dockerfile = dir, filepath.Join(dir, "Dockerfile")
	}
	fmt.Fprintf(w, "# ps-build: %s build %s from %s at %s\n", r.b.Name(), im.Ref, im.Source, started.UTC().Format(time.RFC3339))
	id, err := r.b.Build(ctx, bo)
	if err != nil {
		var ce *engine.CommandError
		if errors.As(err, &ce) {
			// The engine keeps the last lines of a failed build's output; they are
			// shown separately, so the message stays one line.
			if ce.Stderr != "" {
				out.tail = strings.Split(ce.Stderr, "\n")
				if r.o.Mask != nil {
					for j, l := range out.tail {
						out.tail[j] = r.o.Mask(l)
					}
				}
			}
			err = fmt.Errorf("%s (%s): %s build exited with status %d", im.Name, im.Source, ce.Engine, ce.ExitCode)
			if ctx.Err() != nil {
				err = fmt.Errorf("%s: %w", im.Name, ctx.Err())
			}
		} else {
			err = fmt.Errorf("%s (%s): %w", im.Name, im.Source, err)
		}
		out.err = err
		return out
	}
	out.id = id
	if fp != "" {
		// Without the record the next run builds from the engine's cache:
		// slower, not wrong.
		_ = writeRecord(r.o.StateDir, record{Ref: im.Ref, Engine: r.b.Name(), Fingerprint: fp, ID: id})
	}
	return out
}

// upToDate computes im's fingerprint and returns the ID of the image under
// its tag when that image was built from the same inputs. A fingerprint
// that cannot be computed (an unreadable context file) only means building.
func (r *runner) upToDate(ctx context.Context, im *Image) (fp, id string, err error) {
	bases := map[string]string{}
	for _, f := range im.Froms {
		switch {
		case f.Image == "" || f.Internal:
		case f.Dep != "":
			// Built earlier in this run: its result is final before any
			// image built FROM it starts.
			bases[f.Image] = r.results[r.index(f.Dep)].ID
		default:
			base, err := r.b.InspectImage(ctx, f.Image)
			if errors.Is(err, engine.ErrNotFound) {
				return "", "", nil // to be pulled: build
			}
			if err != nil {
				return "", "", fmt.Errorf("%s: %w", im.Name, err)
			}
			bases[f.Image] = base.ID
		}
	}
	fp, err = fingerprint(r.b.Name(), im, r.labels(im), bases, ContextExcludes(r.o.SkipLogDir))
	if err != nil {
		return "", "", nil
	}
	rec, ok := readRecord(r.o.StateDir, r.b.Name(), im.Ref)
	if !ok || rec.Fingerprint != fp {
		return fp, "", nil
	}
	have, err := r.b.InspectImage(ctx, im.Ref)
	if errors.Is(err, engine.ErrNotFound) {
		return fp, "", nil
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", im.Name, err)
	}
	if have.ID != rec.ID {
		return fp, "", nil // built or pulled since by something else
	}
	for _, t := range r.tags(im)[1:] {
		other, err := r.b.InspectImage(ctx, t)
		if err != nil || other.ID != have.ID {
			return fp, "", nil // an extra tag is missing or moved: build (from cache) to set it
		}
	}
	return fp, have.ID, nil
}

func (r *runner) index(name string) int {
	for i, im := range r.plan.Images {
		if im.Name == name {
			return i
		}
	}
	return -1
}

func (r *runner) labels(im *Image) map[string]string {
	l := make(map[string]string, len(r.o.Labels)+3)
	for k, v := range r.o.Labels {
		l[k] = v
	}
	l["io.poststack.image"] = im.Name
	l["io.poststack.source"] = im.Source
	if !im.Builtin {
		l["io.poststack.project"] = r.plan.Project
	}
	return l
}

// openLog creates im's build log in the directory prepareLogDir checked. The
// log is the user's only (a RUN step may print what it was given), and is
// never opened through a symbolic link or as a FIFO a checkout put there.
func (r *runner) openLog(im *Image, started time.Time) (*os.File, string, error) {
	stamp := started.UTC().Format("20060102T150405.000Z")
	path := filepath.Join(r.o.LogDir, im.Name+"-"+strings.ReplaceAll(stamp, ".", "")+".log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, "", exitcode.With(exitcode.Usage, fmt.Errorf("build log %s: %w (a symbolic link or special file there is refused; remove it)", path, err))
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, "", exitcode.Usagef("build log %s is not a regular file; remove it", path)
	}
	return f, path, nil
}
