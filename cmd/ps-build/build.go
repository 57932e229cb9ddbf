package main

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/build"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/xdg"
)

const rootHelp = `ps-build builds, with podman or docker, in dependency order:
  base-debian   poststack/base-debian:latest, FROM --base-image
  postgres      poststack/postgres:latest, FROM base-debian (built-in; a project's
                containers/postgres/ replaces it)
  <name>        <project>/<name>:latest for every containers/<name>/Dockerfile
                (or Containerfile) under --project-containers-path
Project images build with the project root as context, sent to the engine as
a tar stream: what .containerignore (else .dockerignore) lets through, and
never .poststack/ or .env* files (.env, .env.local, .envrc, …) at any depth,
nor logs/ and the log directory; a "!" line cannot bring them back. Build
arguments are passed by name, their values in the engine's environment, not on
its command line (names the engines read themselves, such as PATH, DOCKER_*
and HTTP_PROXY, stay NAME=value). The FROM lines decide
the order: images that do not need each other build at the same time (-j).
With IMAGE arguments only those images and the images they are built FROM
are built. The project name comes from project.name in .poststack.yml, else
--project-container-prefix (default: the directory's name).

An image whose tag still holds what ps-build last built from the same inputs
(Dockerfile, build context files by size and time, build arguments, the IDs of
its FROM images; recorded in $XDG_CACHE_HOME/poststack/build) is not built
again ("up-to-date"); --no-cache and --pull always build every image.

Each image's whole build output goes to <log-dir>/containers/<name>-<time>.log;
when a build fails its last 30 lines are printed with the log's path, no new
image starts, and the images that need the failed one are skipped.

Exit codes: 0 built, 1 a build failed, 2 bad usage or bad definitions (a FROM
cycle, a FROM of an image this project does not build, a Dockerfile or ignore
file that is not a regular file inside the project or is over 16 MiB, a log
directory that is a symbolic link; nothing is built), 130 interrupted.`

type tool struct {
	app       *cli.App
	noCache   bool
	pull      string
	jobs      int
	tags      stringList
	buildArgs stringList
	baseImage string
	dryRun    bool
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func newRoot(app *cli.App) *ffcli.Command {
	t := &tool{app: app}
	fs := flag.NewFlagSet("ps-build", flag.ContinueOnError)
	fs.BoolVar(&t.noCache, "no-cache", false, "build every layer again")
	fs.StringVar(&t.pull, "pull", build.PullMissing, "pull external base `policy`: missing, always or never")
	fs.IntVar(&t.jobs, "j", 0, "build up to `N` images at once (default: number of CPUs)")
	fs.Var(&t.tags, "tag", "also tag every built image `T` (repeatable; :latest is always set)")
	fs.Var(&t.buildArgs, "build-arg", "`KEY=VALUE` passed to every build (repeatable)")
	fs.StringVar(&t.baseImage, "base-image", build.DefaultBaseImage, "`image` base-debian is built FROM")
	app.Fallback(fs, "base-image", cli.Setting)
	fs.BoolVar(&t.dryRun, "dry-run", false, "print the build order and commands, build nothing")
	return app.Root(&ffcli.Command{
		ShortUsage: "ps-build [flags] [IMAGE...]",
		ShortHelp:  "ps-build: build the base, postgres and project container images in dependency order",
		LongHelp:   rootHelp,
		FlagSet:    fs,
		Exec:       t.exec,
	},
		"ps-build                                        # everything, in order",
		"ps-build --base-image localhost/debian:bookworm # no registry: a locally made Debian",
		"ps-build -j 2 api worker                        # two images and what they are built FROM",
		"ps-build --dry-run --json                       # the plan, for machines",
		"ps-build --container-runtime docker --tag \"$GITHUB_SHA\" --pull always",
		"POSTSTACK_BASE_IMAGE=localhost/debian:bookworm ps-build postgres",
	)
}

func (t *tool) exec(ctx context.Context, args []string) error {
	app := t.app
	g := &app.Globals
	if t.jobs < 0 {
		return exitcode.Usagef("-j must be at least 1, not %d", t.jobs)
	}
	switch t.pull {
	case build.PullMissing, build.PullAlways, build.PullNever:
	default:
		return exitcode.Usagef("--pull must be missing, always or never, not %q", t.pull)
	}
	buildArgs := map[string]string{}
	for _, kv := range t.buildArgs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return exitcode.Usagef("--build-arg %q: want KEY=VALUE", kv)
		}
		buildArgs[k] = v
		// A RUN step may print the password of a URL it was given, decoded.
		for _, pw := range secret.DSNPasswords(v) {
			app.AddSecret(pw)
		}
	}
	for _, tag := range t.tags {
		if !validTag(tag) {
			return exitcode.Usagef("--tag %q: a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", tag)
		}
	}
	project, err := t.app.ProjectName()
	if err != nil {
		return err
	}
	all, err := build.Discover(build.Project{
		Name: project, Root: app.Env.Dir, Containers: app.Path(g.ProjectContainersPath),
		BaseImage: t.baseImage, BuildArgs: buildArgs,
	})
	if err != nil {
		return err
	}
	plan, err := build.NewPlan(project, all, args)
	if err != nil {
		return err
	}
	if t.dryRun {
		return t.printPlan(plan)
	}
	eng, err := engine.Detect(g.ContainerRuntime, engine.WithEnviron(app.Env.Environ))
	if err != nil {
		return err
	}
	logDir, skipDir := "", ""
	if g.LogDir != "" {
		logDir = filepath.Join(app.Path(g.LogDir), "containers")
		if rel, err := filepath.Rel(app.Env.Dir, app.Path(g.LogDir)); err == nil && !strings.HasPrefix(rel, "..") {
			skipDir = rel
		}
	}
	stateDir, err := xdg.CacheDir(app.Env.Getenv, "build")
	if err != nil {
		app.Logger.Warn("every image is built: no cache directory for build fingerprints", "err", err)
		stateDir = ""
	}
	names := make([]string, len(plan.Images))
	for i, im := range plan.Images {
		names[i] = im.Name
	}
	events, closeEvents := app.Board(names)
	app.Logger.Debug("build plan", "engine", eng.Name(), "images", strings.Join(names, " "), "jobs", t.jobs)
	res, runErr := build.Run(ctx, eng, plan, build.Options{
		Jobs: t.jobs, NoCache: t.noCache, Pull: t.pull, Tags: t.tags,
		LogDir: logDir, SkipLogDir: skipDir, StateDir: stateDir, Progress: events,
		// The logs are files outside the secret store: no password in them.
		Mask: app.Secrets.Mask,
	})
	closeEvents()
	if res == nil {
		return runErr
	}
	for _, ir := range res.Images {
		if ir.State == build.Failed {
			t.printTail(ir)
		}
	}
	if g.JSON {
		// JSON reaches terminals and CI logs as text does: masked as printTail masks.
		for i := range res.Images {
			ir := &res.Images[i]
			ir.Error = app.Secrets.Mask(ir.Error)
			for j, l := range ir.LogTail {
				ir.LogTail[j] = app.Secrets.Mask(l)
			}
		}
		if err := cli.WriteJSON(app.Env.Stdout, res); err != nil {
			return err
		}
	} else if !g.Quiet || runErr != nil {
		t.printSummary(res)
	}
	return runErr
}

func (t *tool) printTail(ir build.ImageResult) {
	w := t.app.Env.Stderr
	if ir.Log != "" {
		fmt.Fprintf(w, "ps-build: %s failed; last %d lines of %s:\n", ir.Name, len(ir.LogTail), t.rel(ir.Log))
	} else {
		fmt.Fprintf(w, "ps-build: %s failed; last %d lines of its output:\n", ir.Name, len(ir.LogTail))
	}
	for _, l := range ir.LogTail {
		fmt.Fprintf(w, "  | %s\n", t.app.Secrets.Mask(l))
	}
}

func (t *tool) rel(p string) string {
	if r, err := filepath.Rel(t.app.Env.Dir, p); err == nil && !strings.HasPrefix(r, "..") {
		return r
	}
	return p
}

func (t *tool) printSummary(res *build.Result) {
	tw := tabwriter.NewWriter(t.app.Env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tREF\tSTATE\tTIME\tLOG")
	for _, ir := range res.Images {
		el := "-"
		if ir.Started != nil {
			el = fmt.Sprintf("%.1fs", float64(ir.DurationMS)/1000)
		}
		log := "-"
		if ir.Log != "" {
			log = t.rel(ir.Log)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ir.Name, ir.Ref, ir.State, el, log)
	}
	tw.Flush()
	fmt.Fprintf(t.app.Env.Stdout, "%d images with %s in %.1fs (-j %d)\n", len(res.Images), res.Engine, float64(res.DurationMS)/1000, res.Jobs)
}

// plannedImage is one image of --dry-run's output.
type plannedImage struct {
	Name      string            `json:"name"`
	Ref       string            `json:"ref"`
	Source    string            `json:"source"`
	DependsOn []string          `json:"depends_on"`
	Context   string            `json:"context"`
	BuildArgs map[string]string `json:"build_args,omitempty"`
}

func (t *tool) printPlan(plan *build.Plan) error {
	out := make([]plannedImage, len(plan.Images))
	for i, im := range plan.Images {
		ctx := t.rel(im.Context)
		if im.Builtin {
			ctx = "(embedded)"
		}
		deps := im.Deps
		if deps == nil {
			deps = []string{}
		}
		// A build argument can carry a database URL: the plan shows it masked.
		var args map[string]string
		for k, v := range im.BuildArgs {
			if args == nil {
				args = map[string]string{}
			}
			args[k] = t.app.Secrets.Mask(v)
		}
		out[i] = plannedImage{Name: im.Name, Ref: im.Ref, Source: im.Source, DependsOn: deps, Context: ctx, BuildArgs: args}
	}
	w := t.app.Env.Stdout
	if t.app.Globals.JSON {
		return cli.WriteJSON(w, struct {
			Project string         `json:"project"`
			Images  []plannedImage `json:"images"`
		}{plan.Project, out})
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tIMAGE\tREF\tFROM\tSOURCE")
	for i, im := range out {
		from := strings.Join(im.DependsOn, ",")
		if from == "" {
			from = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", i+1, im.Name, im.Ref, from, im.Source)
	}
	return tw.Flush()
}

func validTag(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}
