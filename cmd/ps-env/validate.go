package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/deploy/compose"
	"github.com/poststack/poststack/pkg/envcheck"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
)

func validateCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env validate", flag.ContinueOnError)
	var vf varFlags
	vf.register(fs)
	return app.Examples(&ffcli.Command{
		Name:       "validate",
		ShortUsage: "ps-env validate [ENV] [--set NAME=VALUE] [--env-file FILE]",
		ShortHelp:  "check .poststack.yml and every environment's container files, listing every problem",
		LongHelp: `validate checks the whole of .poststack.yml and, for every environment (or only
ENV), that each init and deployment file exists inside the project, renders
with the environment's variables (as up renders it: YAML values only), and is
what its engine runs: a pod file of Pod, Deployment, DaemonSet or Job
documents whose containers have a name and an image; a compose file that
compose-go's loader accepts. It starts nothing and writes nothing: generated
passwords and automatic ports are not made.
Every problem is listed, one FILE:LINE:COL: message line each, then the exit
code is 2 if any is bad input, else 3 if a variable is undefined.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			env, err := envArg(args, "ps-env validate")
			if err != nil {
				return err
			}
			opts, err := vf.options(app)
			if err != nil {
				return err
			}
			// Nothing is generated or picked: the values do not matter to a check.
			opts.Password = func(project, env string) (string, error) { return "validate-placeholder-password", nil }
			opts.Port = func(project, env string) (int, error) { return hostport.AutoStart, nil }
			r := validateReport{Problems: []validateProblem{}, Environments: []string{}}
			p, err := loadProject(app)
			if err != nil {
				// The project file's own problems, every one, in the same form.
				ps := envcheck.ConfigProblems(err)
				if ps == nil {
					return err
				}
				r.add(&envcheck.Result{Problems: ps})
			} else {
				r.add(envcheck.Validate(ctx, p.File, envcheck.Options{Environment: env, Variables: opts, Compose: checkCompose}))
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			for i := range r.Problems {
				r.Problems[i].Message = app.Secrets.Mask(r.Problems[i].Message)
			}
			if err := app.Render(r); err != nil {
				return err
			}
			if r.code != exitcode.OK {
				for _, p := range r.Problems {
					app.Actions.Error(p.Message, p.File, p.Line, p.Col)
				}
				return exitcode.With(r.code, fmt.Errorf("%d %s", len(r.Problems), plural(len(r.Problems), "problem", "problems")))
			}
			return nil
		},
	}, "ps-env validate", "ps-env validate staging", "ps-env --json validate | jq -r '.problems[].message'")
}

// checkCompose checks a rendered compose unit as up will, without an engine: YAML,
// compose-go's loader, every remaining $ escaped (package deploy/compose).
func checkCompose(_ context.Context, u deploy.Unit) error {
	_, err := compose.Prepare(u)
	return err
}

// validateReport is what validate found.
type validateReport struct {
	OK           bool              `json:"ok"`
	Environments []string          `json:"environments"`
	Files        int               `json:"files"`
	Problems     []validateProblem `json:"problems"`
	code         int
}

type validateProblem struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Col     int    `json:"col"`
	Message string `json:"message"`
	// Kind is "usage" (bad input, exit 2) or "undefined" (exit 3).
	Kind string `json:"kind"`
}

func (r *validateReport) add(res *envcheck.Result) {
	r.Environments = append(r.Environments, res.Environments...)
	r.Files += res.Files
	for _, p := range res.Problems {
		kind := "usage"
		if p.Code == exitcode.Check {
			kind = "undefined"
		}
		r.Problems = append(r.Problems, validateProblem{File: p.Pos.File, Line: p.Pos.Line, Col: p.Pos.Col, Message: p.Msg, Kind: kind})
	}
	r.code = res.Code()
	r.OK = r.code == exitcode.OK
}

func (r validateReport) RenderText(w io.Writer) error {
	if r.OK {
		_, err := fmt.Fprintf(w, "ok: %d %s, %d %s\n", len(r.Environments), plural(len(r.Environments), "environment", "environments"),
			r.Files, plural(r.Files, "file", "files"))
		return err
	}
	var b strings.Builder
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "%s:%d:%d: %s\n", p.File, p.Line, p.Col, p.Message)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (r validateReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }
