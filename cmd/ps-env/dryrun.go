package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/envcheck"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/render"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/secret"
	"github.com/poststack/poststack/pkg/subst"
	"github.com/poststack/poststack/pkg/variables"
)

func dryRunCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env dry-run", flag.ContinueOnError)
	var vf varFlags
	vf.register(fs)
	var file string
	var showSecrets bool
	fs.StringVar(&file, "file", "", "only this `FILE`: one of the environment's files, or another file of the project")
	fs.BoolVar(&showSecrets, "show-secrets", false, "show secret values (passwords, URLs that carry them)")
	return app.Examples(&ffcli.Command{
		Name:       "dry-run",
		ShortUsage: "ps-env dry-run [ENV] [--file FILE] [--show-secrets] [--set NAME=VALUE] [--env-file FILE]",
		ShortHelp:  "show, file by file, every variable ENV's container files use, its value and source",
		LongHelp: `dry-run starts nothing. For each container file of ENV (the current environment
by default) — its init entries, then its deployment — it lists every variable
the file references (in YAML values, as up renders it) with the value it gets
and where that comes from: built-in, variables, .env (FILE), environment,
--set, default (the reference's own default), or UNDEFINED with the
FILE:LINE:COL of each reference. Secrets (passwords, URLs that carry one) are
masked unless --show-secrets. --file FILE limits the report to one file; a
file that is not one of ENV's is read as YAML when named .yml or .yaml, else
as text.
A generated password or automatic port is made and kept in .poststack/ on
first use, as up would. Exit 3 when a variable is undefined, 2 when a file is
missing or not a valid template.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			env, err := envArg(args, "ps-env dry-run")
			if err != nil {
				return err
			}
			p, e, vars, _, err := vf.environment(app, env)
			if err != nil {
				return err
			}
			files, err := dryRunFiles(app, p.File, e, file)
			if err != nil {
				return err
			}
			r := dryRunReport{Environment: e.Name, Files: []dryRunFile{}}
			var problems subst.Problems
			for _, f := range files {
				res, err := envcheck.Resolve(f.input, f.yaml, vars)
				var ps subst.Problems
				switch {
				case errors.As(err, &ps):
					problems = append(problems, ps...)
					continue
				case err != nil:
					return err
				}
				for i := range res {
					res[i] = maskResolved(app, res[i], showSecrets)
				}
				r.Files = append(r.Files, dryRunFile{File: f.input.Name, Kind: string(f.kind), Unit: f.unit, Variables: res})
			}
			if len(problems) > 0 {
				return reportProblems(app, problems, showSecrets)
			}
			if err := app.Render(r); err != nil {
				return err
			}
			if names := r.undefined(); len(names) > 0 {
				return exitcode.Checkf("%d undefined %s: %s", len(names), plural(len(names), "variable", "variables"), strings.Join(names, ", "))
			}
			return nil
		},
	}, "ps-env dry-run", "ps-env dry-run staging --file containers/app/app-pod.yaml", "ps-env --json dry-run dev --show-secrets")
}

// dryRunInput is one file dry-run reports on.
type dryRunInput struct {
	input render.Input
	yaml  bool
	kind  config.StepKind // "" for a file that is not one of the environment's
	unit  string
}

// dryRunFiles is e's files, or the one --file names: one of e's (as written or resolved), or
// another file that must be inside the project.
func dryRunFiles(app *cli.App, f *config.File, e *config.Environment, only string) ([]dryRunInput, error) {
	var out []dryRunInput
	for _, file := range envcheck.Files(e) {
		in := dryRunInput{input: file.Input(f.Dir), yaml: true, kind: file.Kind, unit: file.Unit}
		if only == "" || filepath.Clean(only) == filepath.Clean(file.Path) || app.Path(only) == file.File {
			out = append(out, in)
		}
	}
	if only == "" || len(out) > 0 {
		return out, nil
	}
	path := app.Path(only)
	r, err := safefile.Open(f.Dir, path)
	if se := (*safefile.Error)(nil); errors.As(err, &se) {
		return nil, exitcode.Usagef("--file %s: %s", only, se.Reason)
	} else if err != nil {
		return nil, exitcode.Usagef("--file %s: %v", only, err)
	}
	r.Close()
	in := render.ProjectFile(f.Dir, path)
	in.Name = only
	ext := strings.ToLower(filepath.Ext(only))
	return []dryRunInput{{input: in, yaml: ext == ".yml" || ext == ".yaml"}}, nil
}

// maskResolved masks r's secret value (unless showSecrets) and every known secret in its
// value and default, and cuts a long default short.
func maskResolved(app *cli.App, r render.Resolved, showSecrets bool) render.Resolved {
	if r.Secret {
		app.AddSecret(r.Value)
	}
	r.Default = render.Excerpt(r.Default)
	if showSecrets {
		return r
	}
	if r.Secret {
		r.Value = secret.MaskValue(r.Value)
	}
	r.Value, r.Default = app.Secrets.Mask(r.Value), app.Secrets.Mask(r.Default)
	return r
}

// reportProblems prints invalid templates as FILE:LINE:COL: message lines on stderr (as
// annotations under GitHub Actions) and returns their exit code, already reported.
func reportProblems(app *cli.App, ps subst.Problems, showSecrets bool) error {
	mask := app.Secrets.Mask
	if showSecrets {
		mask = func(s string) string { return s }
	}
	for _, p := range ps {
		msg := mask(p.Error())
		fmt.Fprintln(app.Env.Stderr, msg)
		app.Actions.Error(strings.TrimPrefix(msg, mask(p.Pos.String())+": "), p.Pos.File, p.Pos.Line, p.Pos.Col)
	}
	fmt.Fprintf(app.Env.Stderr, "%s: %d %s in templates\n", app.Name, len(ps), plural(len(ps), "problem", "problems"))
	return exitcode.With(ps.ExitCode(), cli.ErrReported)
}

// dryRunReport is what dry-run shows: for each file, its variables.
type dryRunReport struct {
	Environment string       `json:"environment"`
	Files       []dryRunFile `json:"files"`
}

type dryRunFile struct {
	File      string            `json:"file"`
	Kind      string            `json:"kind,omitempty"` // pod or compose; "" for a file --file named outside the environment
	Unit      string            `json:"unit,omitempty"` // init-N or deploy
	Variables []render.Resolved `json:"variables"`
}

func (r dryRunReport) undefined() []string {
	var names []string
	seen := map[string]bool{}
	for _, f := range r.Files {
		for _, n := range render.UndefinedNames(f.Variables) {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

func (r dryRunReport) RenderText(w io.Writer) error {
	if len(r.Files) == 0 {
		_, err := fmt.Fprintf(w, "environment %s has no init or deployment files\n", r.Environment)
		return err
	}
	for i, f := range r.Files {
		if i > 0 {
			fmt.Fprintln(w)
		}
		what := ""
		if f.Unit != "" {
			what = " (" + f.Unit + ", " + f.Kind + ")"
		}
		fmt.Fprintf(w, "%s%s\n", f.File, what)
		if len(f.Variables) == 0 {
			fmt.Fprintln(w, "  no variables")
			continue
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  VARIABLE\tVALUE\tSOURCE")
		for _, v := range f.Variables {
			val, src := v.Value, v.Source
			switch v.Status {
			case render.Undefined:
				val, src = "UNDEFINED", strings.Join(v.Where, " ")
			case render.Defaulted:
				val, src = fmt.Sprintf("(default: %q)", v.Default), "default"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", v.Name, val, src)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

func (r dryRunReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }

// varFlags are the variable inputs dry-run, config and validate take, as ps-subst does.
type varFlags struct {
	sets, envFiles strs
}

// strs is a repeatable string flag.
type strs []string

func (s *strs) String() string     { return strings.Join(*s, ",") }
func (s *strs) Set(v string) error { *s = append(*s, v); return nil }

func (v *varFlags) register(fs *flag.FlagSet) {
	fs.Var(&v.sets, "set", "set a variable, `NAME=VALUE` (repeatable; wins over everything but the built-ins)")
	fs.Var(&v.envFiles, "env-file", "read variables from this dotenv `FILE` instead of the project's .env (repeatable)")
}

// environment loads environment env ("" = the current one) of ./.poststack.yml and builds
// its variables with the flags' options.
func (v *varFlags) environment(app *cli.App, env string) (*cli.Project, *config.Environment, *variables.Set, variables.Options, error) {
	opts, err := v.options(app)
	if err != nil {
		return nil, nil, nil, opts, err
	}
	p, err := loadProject(app)
	if err != nil {
		return nil, nil, nil, opts, err
	}
	e, err := p.File.Environment(env)
	if err != nil {
		return nil, nil, nil, opts, err
	}
	vars, err := environmentVariables(app, p.File, e, opts)
	return p, e, vars, opts, err
}

// options are the variables.Options the flags ask for, with the process environment; a
// malformed --set is exit 2 before anything is read.
func (v *varFlags) options(app *cli.App) (variables.Options, error) {
	opts := variables.Options{Environ: app.Env.Environ, Set: v.sets}
	for _, s := range v.sets {
		if _, _, err := variables.ParseAssignment(s); err != nil {
			return opts, err
		}
	}
	for _, f := range v.envFiles {
		opts.EnvFiles = append(opts.EnvFiles, app.Path(f))
	}
	return opts, nil
}

// environmentVariables builds e's variables and hides their secrets from every output of
// the run, as cli.App.EnvironmentVariables does for a project file it reads itself.
func environmentVariables(app *cli.App, f *config.File, e *config.Environment, opts variables.Options) (*variables.Set, error) {
	if opts.Port == nil {
		opts.Port = app.AutoPort(f, e) // claimed for this user, as up claims it
	}
	vars, err := variables.ForEnvironment(f, e, opts)
	if err != nil {
		return nil, err
	}
	for _, s := range vars.Secrets() {
		app.AddSecret(s)
	}
	return vars, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
