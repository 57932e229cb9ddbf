package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/render"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/subst"
	"github.com/poststack/poststack/pkg/variables"
)

// settings are ps-subst's own flags.
type settings struct {
	env            string
	projectFile    string
	envFiles       strs
	sets           strs
	allowUndefined bool
	yaml           bool
	output         string
	list           bool
	check          bool
	showSecrets    bool
}

// strs is a repeatable string flag.
type strs []string

func (s *strs) String() string     { return strings.Join(*s, ",") }
func (s *strs) Set(v string) error { *s = append(*s, v); return nil }

const longHelp = `ps-subst reads templates (the FILEs, or standard input when there are none
or FILE is -), substitutes variables and writes the result to standard output,
or atomically to -o FILE.

The grammar is docker compose's: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
${VAR:?error}, ${VAR?error}, ${VAR:+alt}, ${VAR+alt}, nesting, $$ for a literal $.
A $ that starts no variable is left alone.

Strict by default: every undefined variable without a default is reported as
FILE:LINE:COL: undefined variable NAME, nothing is written, and the exit code
is 3. --allow-undefined substitutes empty strings instead.

Variables come from, lowest precedence first: --env-file files, the
variables: of --env NAME in .poststack.yml (with the built-ins such as
POSTSTACK_DATABASE_URL and DB_HOST, which nothing overrides), the process
environment, then --set NAME=VALUE.

--yaml substitutes only inside YAML scalar values (not keys or comments) and
writes YAML that reads back as exactly the substituted strings, however many
quotes, colons, #s or newlines the values hold; a plain ${PORT} whose value is
a number stays a number. Render YAML with --yaml: in text mode a value with a
newline, ": " or " #" can add keys to it, and ps-subst warns on stderr when that
happens in a .yml or .yaml file (naming FILE:LINE:COL and the variable).

Problems, --list and --check mask secrets (passwords and URLs that carry them,
also inside a ${VAR:?message}) unless --show-secrets; they show defaults up to
256 bytes. SIGINT or SIGTERM stops at once with exit 130, -o FILE untouched.

Exit codes: 0 done, 2 bad usage or invalid template, 3 undefined variables.`

func newCommand(app *cli.App) *ffcli.Command {
	var s settings
	fs := flag.NewFlagSet("ps-subst", flag.ContinueOnError)
	fs.StringVar(&s.env, "env", "", "use the variables of this environment of the project file, with built-ins")
	fs.StringVar(&s.projectFile, "project-file", ".poststack.yml", "the project file --env reads")
	fs.Var(&s.envFiles, "env-file", "read variables from this dotenv `file` (repeatable)")
	fs.Var(&s.sets, "set", "set a variable, `NAME=VALUE` (repeatable; wins over everything)")
	fs.BoolVar(&s.allowUndefined, "allow-undefined", false, "substitute an empty string for undefined variables")
	fs.BoolVar(&s.yaml, "yaml", false, "substitute only inside YAML scalar values and emit valid YAML")
	fs.StringVar(&s.output, "output", "", "write to `FILE` atomically instead of standard output")
	fs.StringVar(&s.output, "o", "", "shorthand for --output")
	fs.BoolVar(&s.list, "list", false, "list the variables the templates reference, with defaults and locations")
	fs.BoolVar(&s.check, "check", false, "dry run: show how each referenced variable resolves; exit 3 if any is undefined")
	fs.BoolVar(&s.showSecrets, "show-secrets", false, "show secret values in --check output")

	root := &ffcli.Command{
		ShortUsage: "ps-subst [flags] [FILE...]",
		ShortHelp:  "ps-subst: substitute ${VAR} in text or YAML, from files or stdin to stdout",
		LongHelp:   longHelp,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return s.exec(ctx, app, args)
		},
	}
	return app.Root(root,
		"ps-subst --yaml < pod.yaml.tmpl | podman kube play -",
		"ps-subst --env dev --yaml -o /tmp/app-pod.yaml containers/app/app-pod.yaml",
		"ps-subst --yaml --set IMAGE=app:1.2 --env-file ci.env deploy.yml > deploy.rendered.yml",
		"ps-subst --list --json templates/*.yml          # what do these templates need?",
		"ps-subst --check --env staging app.yaml         # dry run: every variable, its value and source",
		"ps-subst --allow-undefined < notes.txt          # substitute empty for unset variables",
	)
}

func (s *settings) exec(ctx context.Context, app *cli.App, args []string) error {
	if s.list && s.check {
		return exitcode.Usagef("--list and --check are two reports; choose one")
	}
	if s.output != "" && (s.list || s.check) {
		return exitcode.Usagef("--output does not go with --list or --check, which print a report")
	}
	inputs, err := s.inputs(ctx, app, args)
	if err != nil {
		return err
	}
	if s.list {
		return s.runList(app, inputs)
	}
	vars, err := s.variables(app)
	if err != nil {
		return err
	}
	if s.check {
		return s.runCheck(app, inputs, vars)
	}
	opt := render.Options{YAML: s.yaml, AllowUndefined: s.allowUndefined}
	if !s.yaml && anyYAMLName(inputs) {
		// Only then can the warning fire: being told of every value,
		// with its position, costs a third of the time of a render.
		opt.Inserted = s.warnYAMLInjection(app)
	}
	if s.output != "" {
		out := app.Path(s.output)
		opt.Private = len(vars.Secrets()) > 0
		err = render.WriteFile(out, inputs, s.lookup(app, vars), opt)
	} else {
		err = render.To(interruptibleWriter{ctx, app.Env.Stdout}, inputs, s.lookup(app, vars), opt)
	}
	return s.problems(app, err)
}

// inputs turns the arguments into inputs: standard input when there are
// none or for "-"; a file that cannot be read is exit 2 before anything runs.
// Each gives up reading once ctx is done (see interruptible).
func (s *settings) inputs(ctx context.Context, app *cli.App, args []string) ([]render.Input, error) {
	if len(args) == 0 {
		args = []string{"-"}
	}
	stdin := 0
	var inputs []render.Input
	for _, a := range args {
		if a == "-" {
			if stdin++; stdin > 1 {
				return nil, exitcode.Usagef("standard input (-) can be read only once")
			}
			inputs = append(inputs, interruptible(ctx, render.Reader("", app.Env.Stdin), !isRegular(app.Env.Stdin)))
			continue
		}
		path := app.Path(a)
		if err := readable(path); err != nil {
			return nil, exitcode.Usagef("%s: %v", a, err)
		}
		in := render.File(path)
		in.Name = a
		// render.File reads regular files only.
		inputs = append(inputs, interruptible(ctx, in, false))
	}
	return inputs, nil
}

// variables builds the variable set: a project environment's with --env,
// else the process environment with --env-file and --set.
func (s *settings) variables(app *cli.App) (*variables.Set, error) {
	opts := variables.Options{Environ: app.Env.Environ, Set: s.sets}
	for _, f := range s.envFiles {
		opts.EnvFiles = append(opts.EnvFiles, app.Path(f))
	}
	if s.env != "" {
		return app.EnvironmentVariables(s.projectFile, s.env, opts)
	}
	return variables.Standalone(opts)
}

// problems prints substitution problems one per line, as FILE:LINE:COL:
// message (and as annotations under GitHub Actions), then a summary.
func (s *settings) problems(app *cli.App, err error) error {
	var ps subst.Problems
	if !errors.As(err, &ps) {
		return err
	}
	for _, p := range ps {
		// A message is itself substituted (${A:?need ${DB_PASSWORD}}).
		msg := s.mask(app, p.Error())
		fmt.Fprintln(app.Env.Stderr, msg)
		app.Actions.Error(strings.TrimPrefix(msg, s.mask(app, p.Pos.String())+": "), p.Pos.File, p.Pos.Line, p.Pos.Col)
	}
	hint := ""
	if ps.ExitCode() == exitcode.Check {
		hint = "; set them, give defaults (${NAME:-default}) or use --allow-undefined"
	}
	where := "nothing was written"
	if s.output != "" {
		where = s.output + " was left untouched"
	}
	fmt.Fprintln(app.Env.Stderr, s.mask(app, fmt.Sprintf("ps-subst: %d %s, %s%s", len(ps), plural(len(ps), "problem"), where, hint)))
	return exitcode.With(ps.ExitCode(), cli.ErrReported)
}

func (s *settings) runList(app *cli.App, inputs []render.Input) error {
	refs, err := render.References(inputs, s.yaml)
	if err != nil {
		return s.problems(app, err)
	}
	list := render.List(refs)
	for i := range list {
		list[i].Default = s.mask(app, render.Excerpt(list[i].Default))
	}
	if app.Globals.JSON {
		if list == nil {
			list = []render.Variable{}
		}
		return cli.WriteJSON(app.Env.Stdout, list)
	}
	tw := tabwriter.NewWriter(app.Env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tREQUIRED\tDEFAULT\tLOCATIONS")
	for _, v := range list {
		def := "-"
		if v.HasDefault {
			def = fmt.Sprintf("%q", v.Default)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, yesNo(v.Required), def, strings.Join(v.Where, " "))
	}
	return tw.Flush()
}

func (s *settings) runCheck(app *cli.App, inputs []render.Input, vars *variables.Set) error {
	refs, err := render.References(inputs, s.yaml)
	if err != nil {
		return s.problems(app, err)
	}
	resolved := render.Check(render.List(refs), func(name string) (render.Var, bool) {
		v, ok := vars.Var(name)
		return render.Var{Value: v.Value, Source: v.Source, Secret: v.Secret}, ok
	})
	for i := range resolved {
		r := &resolved[i]
		if r.Secret {
			app.AddSecret(r.Value)
		}
		if r.Secret && !s.showSecrets {
			r.Value = secret.MaskValue(r.Value)
		}
		r.Value, r.Default = s.mask(app, r.Value), s.mask(app, render.Excerpt(r.Default))
	}
	if app.Globals.JSON {
		if err := cli.WriteJSON(app.Env.Stdout, resolved); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(app.Env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATUS\tVALUE\tSOURCE")
		for _, r := range resolved {
			val, src := r.Value, r.Source
			switch r.Status {
			case render.Undefined:
				val, src = "UNDEFINED", "-"
			case render.Defaulted:
				val, src = fmt.Sprintf("%q", r.Default), "default"
				if !r.HasDefault {
					val = `""`
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Status, val, src)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if names := render.UndefinedNames(resolved); len(names) > 0 {
		return exitcode.Checkf("%d undefined %s: %s", len(names), plural(len(names), "variable"), strings.Join(names, ", "))
	}
	return nil
}

// readable checks a template named on the command line as render.File
// reads it: a regular file (not a directory, FIFO or device), capped in size.
func readable(path string) error {
	f, err := safefile.Open("", path)
	if se := (*safefile.Error)(nil); errors.As(err, &se) {
		return errors.New(se.Reason)
	}
	if err != nil {
		return err
	}
	return f.Close()
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
