// Package envcheck looks at an environment's container files without starting anything: how
// each variable a file references resolves (ps-env dry-run), and whether every file of every
// environment exists inside the project, renders, and reads as what its engine runs (ps-env
// validate).
package envcheck

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/render"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/subst"
	"github.com/poststack/poststack/pkg/variables"
	"github.com/poststack/poststack/pkg/yamlsubst"
)

// File is one container file of an environment: an init entry or its deployment.
type File struct {
	Kind config.StepKind
	// Unit is deploy.UnitDeploy or deploy.InitUnit(n).
	Unit string
	// Path is the file name as written in the project file, File it resolved.
	Path string
	File string
	// Pos is where the project file names it.
	Pos config.Pos
}

// Init reports whether the file is an init entry, run to completion.
func (f File) Init() bool { return f.Unit != deploy.UnitDeploy }

// Files returns the container files of e in the order they run: init entries, then the
// deployment.
func Files(e *config.Environment) []File {
	var out []File
	for i, s := range e.Init {
		out = append(out, File{Kind: s.Kind, Unit: deploy.InitUnit(i + 1), Path: s.Path, File: s.File, Pos: s.Pos})
	}
	if s := e.Deployment; s != nil {
		out = append(out, File{Kind: s.Kind, Unit: deploy.UnitDeploy, Path: s.Path, File: s.File, Pos: s.Pos})
	}
	return out
}

// Input is the template f, read only when it really is inside the project directory root and
// named in messages as the project file writes it.
func (f File) Input(root string) render.Input {
	in := render.ProjectFile(root, f.File)
	in.Name = f.Path
	return in
}

// Resolve lists every variable in reads (as YAML when yaml is set) with how vars resolves it,
// in order of first reference. An invalid template is subst.Problems (exit 2); a file that
// cannot be read or is not YAML is an error with exit code 2.
func Resolve(in render.Input, yaml bool, vars *variables.Set) ([]render.Resolved, error) {
	refs, err := render.References([]render.Input{in}, yaml)
	if err != nil {
		return nil, err
	}
	return render.Check(render.List(refs), func(name string) (render.Var, bool) {
		v, ok := vars.Var(name)
		return render.Var{Value: v.Value, Source: v.Source, Secret: v.Secret}, ok
	}), nil
}

// Problem is one thing validate found, at a place in a file.
type Problem struct {
	Pos config.Pos
	Msg string
	// Code is exitcode.Usage for bad input (a missing file, a template or file that is not
	// what its engine runs) and exitcode.Check for an undefined variable.
	Code int
}

// Error formats p as FILE:LINE:COL: message.
func (p Problem) Error() string { return p.Pos.String() + ": " + p.Msg }

// Options are validate's inputs besides the project.
type Options struct {
	// Environment limits the check to one environment; "" checks every one.
	Environment string
	// Variables builds each environment's variables. Validation must change nothing on disk:
	// give Password and Port functions that do not generate and keep values.
	Variables variables.Options
	// Compose checks a rendered compose unit as compose-go's loader does; an error is a
	// problem with the file (exit 2). Nil skips that check.
	Compose func(ctx context.Context, u deploy.Unit) error
}

// Result is what Validate looked at and found.
type Result struct {
	Environments []string
	Files        int
	Problems     []Problem
}

// Code is the exit code the result calls for: 2 when some problem is bad input, else 3 when
// some variable is undefined, else 0.
func (r *Result) Code() int {
	code := exitcode.OK
	for _, p := range r.Problems {
		switch {
		case p.Code == exitcode.Usage:
			return exitcode.Usage
		case p.Code == exitcode.Check:
			code = exitcode.Check
		}
	}
	return code
}

// Validate checks the environments of f (every one, or opts.Environment): that each file
// exists inside the project, renders as YAML with the environment's variables (every
// undefined variable is reported at its FILE:LINE:COL), and is a pod file podman kube play
// runs or a compose file compose-go accepts. It goes on past problems and returns all of
// them; an unknown opts.Environment is one. It writes nothing.
func Validate(ctx context.Context, f *config.File, opts Options) *Result {
	r := &Result{}
	envs := f.Environments
	if opts.Environment != "" {
		envs = nil
		for _, e := range f.Environments {
			if e.Name == opts.Environment {
				envs = append(envs, e)
			}
		}
		if len(envs) == 0 {
			_, err := f.Environment(opts.Environment)
			r.add(err, exitcode.Usage)
			return r
		}
	}
	for _, e := range envs {
		if ctx.Err() != nil {
			break
		}
		r.Environments = append(r.Environments, e.Name)
		r.environment(ctx, f, e, opts)
	}
	slices.SortStableFunc(r.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Pos.File, b.Pos.File), cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	// A file two environments share renders in each: its problems, where the same, once.
	r.Problems = slices.Compact(r.Problems)
	return r
}

func (r *Result) environment(ctx context.Context, f *config.File, e *config.Environment, opts Options) {
	// Environment checks that the files exist (init, deployment, seed), with the messages
	// every command gives.
	_, err := f.Environment(e.Name)
	reported := r.add(err, exitcode.Usage)
	vars, err := variables.ForEnvironment(f, e, opts.Variables)
	if err != nil {
		r.addAt(err, e.Pos, exitcode.Usage)
		return
	}
	for _, file := range Files(e) {
		if ctx.Err() != nil {
			return
		}
		r.Files++
		r.file(ctx, f, e, file, vars, opts, reported[file.Pos])
	}
}

func (r *Result) file(ctx context.Context, f *config.File, e *config.Environment, file File, vars *variables.Set, opts Options, missing bool) {
	data, err := safefile.ReadFile(f.Dir, file.File)
	if err != nil {
		if missing {
			return // does not exist: reported by Environment
		}
		reason := err.Error()
		if se := (*safefile.Error)(nil); errors.As(err, &se) {
			reason = se.Reason
		} else if errors.Is(err, fs.ErrNotExist) {
			reason = "does not exist"
		}
		r.Problems = append(r.Problems, Problem{Pos: file.Pos, Msg: fmt.Sprintf("%s file %s: %s", file.Kind, file.Path, reason), Code: exitcode.Usage})
		return
	}
	var out bytes.Buffer
	err = yamlsubst.Render(&out, bytes.NewReader(data), file.Path, vars.Lookup, subst.Options{})
	var ps subst.Problems
	var se *yamlsubst.SyntaxError
	switch {
	case errors.As(err, &ps):
		for _, p := range ps {
			code := exitcode.Check
			if p.Kind == subst.Invalid {
				code = exitcode.Usage
			}
			msg := strings.TrimPrefix(p.Error(), p.Pos.String()+": ")
			r.Problems = append(r.Problems, Problem{Pos: config.Pos{File: p.Pos.File, Line: p.Pos.Line, Col: p.Pos.Col}, Msg: msg, Code: code})
		}
		return
	case errors.As(err, &se):
		r.Problems = append(r.Problems, Problem{Pos: config.Pos{File: file.Path, Line: se.Line, Col: 1}, Msg: fmt.Sprintf("%s file is not YAML: %s", file.Kind, se.Msg), Code: exitcode.Usage})
		return
	case err != nil:
		r.addAt(err, config.Pos{File: file.Path, Line: 1, Col: 1}, exitcode.Usage)
		return
	}
	switch file.Kind {
	case config.Pod:
		r.Problems = append(r.Problems, checkPod(file.Path, data, out.Bytes())...)
	case config.Compose:
		if opts.Compose == nil {
			return
		}
		u := deploy.Unit{
			Kind: file.Kind, Source: file.Path, Rendered: out.Bytes(),
			Project: f.Project.Name, Environment: e.Name, Name: file.Unit,
			Network: f.Project.Name + "-" + e.Name, Init: file.Init(), Dir: filepath.Dir(file.File),
		}
		if err := opts.Compose(ctx, u); err != nil {
			// One line, without the file name the position already gives.
			msg := strings.Join(strings.Fields(err.Error()), " ")
			msg = strings.TrimPrefix(strings.TrimPrefix(msg, "validating "), file.Path+": ")
			r.Problems = append(r.Problems, Problem{Pos: config.Pos{File: file.Path, Line: 1, Col: 1}, Msg: "compose file rejected: " + msg, Code: exitcode.Usage})
		}
	}
}

// add records every problem err holds (config.Errors keep their positions) and returns the
// positions it recorded.
func (r *Result) add(err error, code int) map[config.Pos]bool {
	at := map[config.Pos]bool{}
	for _, e := range leaves(err) {
		var ce *config.Error
		if errors.As(e, &ce) {
			r.Problems = append(r.Problems, Problem{Pos: ce.Pos, Msg: ce.Msg, Code: code})
			at[ce.Pos] = true
			continue
		}
		r.Problems = append(r.Problems, Problem{Msg: e.Error(), Code: code})
	}
	return at
}

// addAt records err's problems, placing those without a position of their own at pos.
func (r *Result) addAt(err error, pos config.Pos, code int) {
	for _, e := range leaves(err) {
		var ce *config.Error
		if errors.As(e, &ce) {
			r.Problems = append(r.Problems, Problem{Pos: ce.Pos, Msg: ce.Msg, Code: code})
			continue
		}
		if c := exitcode.Of(e); c == exitcode.Check {
			code = c
		}
		r.Problems = append(r.Problems, Problem{Pos: pos, Msg: e.Error(), Code: code})
	}
}

// ConfigProblems returns the problems of a project file that did not decode (config.Parse's
// error, every config.Error it joins), or nil when err is something else.
func ConfigProblems(err error) []Problem {
	var ps []Problem
	for _, e := range leaves(err) {
		var ce *config.Error
		if !errors.As(e, &ce) {
			return nil
		}
		ps = append(ps, Problem{Pos: ce.Pos, Msg: ce.Msg, Code: exitcode.Usage})
	}
	return ps
}

// leaves flattens errors.Join trees (through wrappers such as exitcode.Error) into their
// single errors.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	for e := err; e != nil; {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			var out []error
			for _, c := range j.Unwrap() {
				out = append(out, leaves(c)...)
			}
			return out
		}
		var ce *config.Error
		if errors.As(e, &ce) && e == error(ce) {
			return []error{e}
		}
		e = errors.Unwrap(e)
	}
	return []error{err}
}
