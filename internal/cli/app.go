// Package cli is the command-line core the four poststack binaries share:
// global flags with their environment, .env and config-file fallbacks,
// help with examples, --version, logging and GitHub Actions wiring,
// signal handling, and the mapping of errors to exit codes.
//
// A binary builds an App, an ffcli command tree whose Exec functions close
// over the App, and calls App.Run. Run parses, then wires (App.Logger,
// App.Actions, App.Progress are filled in), then runs; Exec functions use
// those fields, never package state.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/ghactions"
	"github.com/poststack/poststack/pkg/logging"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/secret"
)

// Env is what a run takes from its process. Tests build one by hand; mains
// use OSEnv.
type Env struct {
	// Environ is the process environment as NAME=value strings; Getenv,
	// when nil, looks names up in it.
	Environ []string
	Getenv  func(string) string
	Dir     string // working directory: .env, relative paths, default prefix
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
}

// OSEnv is the Env of the running process, the only place this package
// reads the real environment.
func OSEnv(stdin io.Reader, stdout, stderr io.Writer) Env {
	dir, err := os.Getwd()
	if err != nil {
		dir = "."
	}
	return Env{Environ: os.Environ(), Getenv: os.Getenv, Dir: dir, Stdin: stdin, Stdout: stdout, Stderr: stderr}
}

// ErrReported marks an error whose details the command already printed:
// Run exits with its code but prints no "<bin>: …" line for it. Wrap it,
// e.g. exitcode.With(exitcode.Check, cli.ErrReported).
var ErrReported = errors.New("error already reported")

// App is one run of a binary.
type App struct {
	// Name is the binary name, the prefix of error lines.
	Name string
	// Env is the process environment of the run.
	Env Env
	// Globals hold the global settings once Run has parsed them.
	Globals Globals

	// Filled in by Run before any Exec is called.
	Logger   *slog.Logger
	Actions  *ghactions.Actions
	Progress logging.Progress
	Secrets  *secret.Masker

	root        *ffcli.Command
	examples    map[*ffcli.Command][]string
	fallback    map[fallbackKey]Fallback
	fromProject map[string]bool
}

// New returns an App for the binary name.
func New(name string, env Env) *App {
	if env.Getenv == nil {
		env.Getenv = environ.Getenv(env.Environ)
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	if env.Stdout == nil {
		env.Stdout = io.Discard
	}
	if env.Stderr == nil {
		env.Stderr = io.Discard
	}
	return &App{
		Name:     name,
		Env:      env,
		Secrets:  secret.NewMasker(),
		Logger:   slog.New(slog.DiscardHandler),
		Progress: logging.NopProgress{},
		examples: map[*ffcli.Command][]string{},
	}
}

// Root makes c the root command: it names it after the binary, gives it a
// ContinueOnError flag set when it has none, registers the global flags,
// and records examples for its --help. With a nil Exec the root needs a
// subcommand; anything else is "unknown command" (exit 2).
func (a *App) Root(c *ffcli.Command, examples ...string) *ffcli.Command {
	c.Name = a.Name
	if c.FlagSet == nil {
		c.FlagSet = flag.NewFlagSet(a.Name, flag.ContinueOnError)
	}
	if c.ShortUsage == "" {
		c.ShortUsage = a.Name + " [flags] <command> [args...]"
	}
	a.Globals.Register(c.FlagSet, a.Env.Dir)
	a.root = c
	return a.Examples(c, examples...)
}

// Examples records examples (one command line each, "# comment" lines
// welcome) for c's --help and returns c.
func (a *App) Examples(c *ffcli.Command, examples ...string) *ffcli.Command {
	a.examples[c] = append(a.examples[c], examples...)
	return c
}

// AddSecret hides v from every output from now on: logs, progress, error
// lines and, under GitHub Actions, the job log.
func (a *App) AddSecret(v string) {
	if v == "" {
		return
	}
	a.Secrets.Add(v)
	for _, p := range secret.NewMasker(v).Patterns() {
		a.Actions.AddMask(p)
	}
}

// Run parses args against root, wires logging and GitHub Actions, runs the
// selected command under a context that SIGINT/SIGTERM cancel, prints a
// failure as "<bin>: <message>" on stderr and returns the exit code.
func (a *App) Run(ctx context.Context, root *ffcli.Command, args []string) int {
	if a.root != root {
		a.Root(root)
	}
	if err := a.prepare(root, root.Name); err != nil {
		return a.fail(err)
	}

	err := root.Parse(args)
	if err == nil {
		err = parseInterspersed(root, args)
	}
	if errors.Is(err, flag.ErrHelp) {
		c := deepestParsed(root)
		fmt.Fprint(a.Env.Stdout, a.usage(c))
		return exitcode.OK
	}
	var noExec ffcli.NoExecError
	isNoExec := errors.As(err, &noExec)
	if a.Globals.Version && (err == nil || isNoExec) {
		fmt.Fprintln(a.Env.Stdout, Version(a.Name))
		return exitcode.OK
	}
	switch {
	case isNoExec:
		if rest := noExec.Command.FlagSet.Args(); len(rest) > 0 {
			return a.fail(exitcode.Usagef("unknown command %q (see '%s --help')", rest[0], a.path(noExec.Command)))
		}
		fmt.Fprint(a.Env.Stderr, a.usage(noExec.Command))
		return a.fail(exitcode.Usagef("missing command (see '%s --help')", a.path(noExec.Command)))
	case err != nil:
		msg := strings.TrimPrefix(err.Error(), "error parsing commandline arguments: ")
		return a.fail(exitcode.Usagef("%s (see '%s --help')", msg, a.path(deepestParsed(root))))
	}

	if err := a.fallbacks(root); err != nil {
		return a.fail(err)
	}
	closeLog, err := a.wire()
	if err != nil {
		return a.fail(err)
	}
	defer closeLog()

	// Help requested by an Exec goes to stderr with exit 2.
	walk(root, func(c *ffcli.Command) { c.FlagSet.SetOutput(a.Env.Stderr) })

	sigCtx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one gets the default
		// behaviour and kills the process.
		<-sigCtx.Done()
		stop()
	}()
	err = root.Run(sigCtx)
	switch {
	case err == nil:
		return exitcode.OK
	case errors.Is(err, flag.ErrHelp):
		return exitcode.Usage
	case sigCtx.Err() != nil && ctx.Err() == nil:
		a.report(err)
		return exitcode.Interrupted
	}
	return a.fail(err)
}

// prepare gives every command a quiet ContinueOnError flag set carrying
// the global flags, so "ps-env up --log-level debug" works, and our help.
func (a *App) prepare(c *ffcli.Command, path string) error {
	if c.FlagSet == nil {
		c.FlagSet = flag.NewFlagSet(path, flag.ContinueOnError)
	}
	if c.FlagSet.ErrorHandling() != flag.ContinueOnError {
		return fmt.Errorf("internal error: flag set of %q must use flag.ContinueOnError", path)
	}
	c.FlagSet.SetOutput(io.Discard)
	if c != a.root {
		a.Globals.Register(c.FlagSet, a.Env.Dir)
	}
	if c.UsageFunc == nil {
		c.UsageFunc = a.usage
	}
	for _, s := range c.Subcommands {
		if err := a.prepare(s, path+" "+s.Name); err != nil {
			return err
		}
	}
	return nil
}

// fallbacks fills unset flags of the parsed commands from the environment,
// ./.env and the config file, in that order, each only for the flags that
// allow it (see Fallback), then settles derived globals.
func (a *App) fallbacks(root *ffcli.Command) error {
	var sets []*flag.FlagSet
	walk(root, func(c *ffcli.Command) {
		if c.FlagSet.Parsed() {
			sets = append(sets, c.FlagSet)
		}
	})
	if _, err := ApplyFallback(sets, EnvSource(a.Env.Getenv), a.fallbackOf); err != nil {
		return err
	}
	dot, err := DotEnvSource(a.Env.Dir, a.abs(".env"), a.Env.Getenv)
	if err != nil {
		return err
	}
	fromProject, err := ApplyFallback(sets, dot, a.fallbackOf)
	if err != nil {
		return err
	}
	if a.Globals.ConfigFile != "" {
		cfg, err := ConfigFileSource(a.abs(a.Globals.ConfigFile), a.Env.Getenv)
		if err != nil {
			return err
		}
		names, err := ApplyFallback(sets, cfg, a.fallbackOf)
		if err != nil {
			return err
		}
		fromProject = append(fromProject, names...)
	}
	a.fromProject = map[string]bool{}
	for _, name := range fromProject {
		a.fromProject[name] = true
		if err := a.checkProjectPath(sets, name); err != nil {
			return err
		}
	}
	for _, fs := range sets {
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "log-dir" {
				a.Globals.LogDirExplicit = true
			}
		})
	}
	if a.Env.Getenv("NO_COLOR") != "" || a.Env.Getenv("TERM") == "dumb" {
		a.Globals.NoColor = true
	}
	return nil
}

// Fallback lets the flag name of fs be set from the sources f allows when
// its command line does not set it; its --help then names the variable.
// Never allow more than CommandLine for a flag that destroys, redirects
// output, relaxes a check or reveals secrets: a checkout may be hostile.
func (a *App) Fallback(fs *flag.FlagSet, name string, f Fallback) {
	if a.fallback == nil {
		a.fallback = map[fallbackKey]Fallback{}
	}
	a.fallback[fallbackKey{fs, name}] = f
}

type fallbackKey struct {
	fs   *flag.FlagSet
	name string
}

func (a *App) fallbackOf(fs *flag.FlagSet, name string) Fallback {
	if a.Globals.isGlobal(name) {
		return a.Globals.fallbackOf(name)
	}
	return a.fallback[fallbackKey{fs, name}]
}

// FromProject reports whether the flag's value came from the project's
// files (./.env or --config-file) rather than from the command line or the
// process environment: a command gives such a value the lowest trust.
func (a *App) FromProject(name string) bool { return a.fromProject[name] }

// checkProjectPath refuses a path setting that the project's files point
// outside the project: a repository must not make poststack read or write
// elsewhere.
func (a *App) checkProjectPath(sets []*flag.FlagSet, name string) error {
	if !a.Globals.isPathSetting(name) {
		return nil
	}
	var value string
	for _, fs := range sets {
		if f := fs.Lookup(name); f != nil {
			value = f.Value.String()
			break
		}
	}
	if value == "" || safefile.Contains(a.Env.Dir, a.abs(value)) {
		return nil
	}
	return exitcode.Usagef("%s %q (from .env or the config file) is outside the project %s; "+
		"give it on the command line or as %s in the environment", name, value, a.Env.Dir, EnvName(name))
}

// wire builds the logger, the Actions client and the progress hook.
func (a *App) wire() (func(), error) {
	g := &a.Globals
	a.Actions = ghactions.New(a.Env.Stderr, a.Env.Getenv, a.Env.Dir)
	// Any form: a URL (any scheme case) or keyword=value, well-formed or not.
	for _, pw := range secret.DSNPasswords(g.DatabaseURL) {
		a.AddSecret(pw)
	}
	human := g.LogLevel
	if g.Quiet {
		human = max(human, slog.LevelWarn)
	}
	opts := logging.Options{
		Level:       human,
		FileLevel:   min(g.LogLevel, slog.LevelInfo),
		Human:       a.Env.Stderr,
		Color:       logging.ColorEnabled(a.Env.Stderr, g.NoColor),
		Dir:         a.abs(g.LogDir),
		DirExplicit: g.LogDirExplicit,
		Mask:        a.Secrets.Mask,
	}
	if g.LogDir == "" {
		opts.Dir = ""
	}
	logger, closer, err := logging.New(opts)
	if err != nil {
		if g.LogDirExplicit {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("log: %w", err))
		}
		opts.Dir = ""
		logger, closer, _ = logging.New(opts)
		logger.Warn(fmt.Sprintf("file log disabled: %v, or pass --log-dir DIR", err))
	}
	a.Logger = logger

	var p logging.Progress
	switch {
	case g.Quiet:
		p = logging.NopProgress{}
	case a.Actions.Enabled():
		p = logging.NewGroupProgress(a.Actions, a.Env.Stderr)
	case logging.IsTerminal(a.Env.Stderr):
		p = logging.NewTTYProgress(a.Env.Stderr)
	default:
		p = logging.NewPlainProgress(a.Env.Stderr)
	}
	a.Progress = logging.MaskProgress(p, a.Secrets.Mask)
	return func() { closer.Close() }, nil
}

// fail reports err and returns its exit code.
func (a *App) fail(err error) int {
	a.report(err)
	return exitcode.Of(err)
}

// report prints err as "<bin>: <first line>" with any further lines as
// they are (a list of undefined variables), then the lines of an error in
// the chain that has a Detail method (a SQL error's DETAIL, HINT and caret,
// migrate.MigrationError): text for a person that --json output, which
// carries Error only, leaves out.
func (a *App) report(err error) {
	if err == nil || errors.Is(err, ErrReported) {
		return
	}
	msg := err.Error()
	var detail interface{ Detail() string }
	switch {
	case errors.Is(err, context.Canceled):
		msg = "interrupted"
		// What an interruption left half-done must still reach the user.
		var hd interface{ HalfDone() string }
		if errors.As(err, &hd) {
			msg += ": " + hd.HalfDone()
		}
	case errors.As(err, &detail):
		if d := detail.Detail(); d != "" {
			msg += "\n" + d
		}
	}
	msg = strings.TrimRight(a.Secrets.Mask(msg), "\n")
	fmt.Fprintf(a.Env.Stderr, "%s: %s\n", a.Name, msg)
}

func (a *App) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(a.Env.Dir, p)
}

// path is the command's invocation, "ps-env ephemeral".
func (a *App) path(target *ffcli.Command) string {
	var find func(c *ffcli.Command, p string) string
	find = func(c *ffcli.Command, p string) string {
		if c == target {
			return p
		}
		for _, s := range c.Subcommands {
			if r := find(s, p+" "+s.Name); r != "" {
				return r
			}
		}
		return ""
	}
	if p := find(a.root, a.Name); p != "" {
		return p
	}
	return a.Name
}

func walk(c *ffcli.Command, f func(*ffcli.Command)) {
	f(c)
	for _, s := range c.Subcommands {
		walk(s, f)
	}
}

// deepestParsed is the command whose flags were parsed last: the one -h
// was given to, or whose flags were wrong.
func deepestParsed(c *ffcli.Command) *ffcli.Command {
	for _, s := range c.Subcommands {
		if s.FlagSet != nil && s.FlagSet.Parsed() {
			return deepestParsed(s)
		}
	}
	return c
}
