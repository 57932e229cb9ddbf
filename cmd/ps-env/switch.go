package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

func switchCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env switch", flag.ContinueOnError)
	return app.Examples(&ffcli.Command{
		Name:       "switch",
		ShortUsage: "ps-env switch ENV",
		ShortHelp:  "make ENV the current environment (environment: in .poststack.yml)",
		LongHelp: `switch sets environment: ENV in .poststack.yml, the environment commands use
when given none. Only that line changes (comments, order and layout are
kept); it is added before the first key when missing. ENV must be an
environment of the file.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			switch {
			case len(args) == 0:
				return exitcode.Usagef("missing ENV (see 'ps-env list')")
			case len(args) > 1:
				return exitcode.Usagef("unexpected argument %q (see 'ps-env switch --help')", args[1])
			}
			p, err := loadProject(app)
			if err != nil {
				return err
			}
			r, err := switchTo(p, args[0])
			if err != nil {
				return err
			}
			return app.Render(r)
		},
	}, "ps-env switch staging")
}

// switchTo rewrites p's environment: line to env, in place and atomically.
func switchTo(p *cli.Project, env string) (switchReport, error) {
	names := p.File.Names()
	if !slices.Contains(names, env) {
		return switchReport{}, exitcode.Usagef("%s: environment %q is not defined (known: %s)", config.FileName, env, strings.Join(names, ", "))
	}
	r := switchReport{Previous: currentName(p.File), Current: env}
	out, err := config.SetDefault(p.Data, env)
	if ce := (*config.Error)(nil); errors.As(err, &ce) {
		ce.Pos.File = config.FileName
		return switchReport{}, ce
	} else if err != nil {
		return switchReport{}, fmt.Errorf("%s: %w", config.FileName, err)
	}
	if bytes.Equal(out, p.Data) {
		return r, nil
	}
	r.changed = true
	// Write where the file really is (a link inside the project stays a link), keeping its mode.
	real, err := safefile.Inside(p.File.Dir, p.Path)
	if err != nil {
		return switchReport{}, err
	}
	st, err := os.Stat(real)
	if err != nil {
		return switchReport{}, err
	}
	err = atomicfile.Write(real, atomicfile.Private, func(f *os.File) error {
		if err := f.Chmod(st.Mode().Perm()); err != nil {
			return err
		}
		_, err := f.Write(out)
		return err
	})
	return r, err
}

// switchReport is what switch reports.
type switchReport struct {
	Previous string `json:"previous"`
	Current  string `json:"current"`
	changed  bool   // the file was rewritten
}

func (r switchReport) RenderText(w io.Writer) error {
	if !r.changed {
		_, err := fmt.Fprintf(w, "environment %s is already current\n", r.Current)
		return err
	}
	_, err := fmt.Fprintf(w, "switched to environment %s\n", r.Current)
	return err
}

func (r switchReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }
