package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/convert"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

const convertHelp = `convert reads another tool's migration files in DIR and writes them into
--migrations-path in ps-migrate's layout, NNNN_name.sql and
NNNN_name.rollback.sql, keeping every version number as it is:

  --from goose           NNNN_name.sql with "-- +goose Up" and "-- +goose Down"
                         sections; StatementBegin/End markers are dropped (the
                         SQL is kept), "-- +goose NO TRANSACTION" becomes
                         "-- poststack:no-transaction"; Go migrations and
                         "-- +goose ENVSUB ON" cannot be converted (exit 3)
  --from golang-migrate  NNNN_name.up.sql and NNNN_name.down.sql pairs; a
                         BEGIN/COMMIT around a whole file is dropped

An empty Down section or .down.sql gives no rollback file. Nothing is written
when any file cannot be converted; an existing file is never overwritten
(exit 2). Then the sum file is written, unless --no-sum. To keep a database
the other tool migrated, run ps-migrate adopt afterwards. See docs/migrating.md.`

func (t *tool) convertCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate convert")
	var from string
	var dryRun, noSum bool
	fs.StringVar(&from, "from", "", "the tool whose files DIR holds: goose or golang-migrate")
	fs.BoolVar(&dryRun, "dry-run", false, "show the files that would be written; write nothing")
	fs.BoolVar(&noSum, "no-sum", false, "do not write the sum file ("+migrate.SumFile+" in the migrations directory); command line only")
	return t.app.Examples(&ffcli.Command{
		Name:       "convert",
		ShortUsage: "ps-migrate convert --from goose|golang-migrate [--dry-run] [--no-sum] DIR",
		ShortHelp:  "write goose's or golang-migrate's migration files in DIR as NNNN_name.sql and .rollback.sql",
		LongHelp:   convertHelp,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			tool, err := convert.ParseTool(from)
			if err != nil {
				return err
			}
			if len(args) != 1 {
				return exitcode.Usagef("convert takes one DIR, the directory of %s's files", tool)
			}
			src, dest := args[0], t.app.Globals.MigrationsPath
			shown := renamer(t.app.Path(src), src)
			res, err := convert.Read(tool, t.app.Path(src))
			if err != nil {
				return err
			}
			for i := range res.Migrations {
				for j, f := range res.Migrations[i].From {
					res.Migrations[i].From[j] = shown(f)
				}
			}
			for _, ps := range [][]convert.Problem{res.Invalid, res.Unconvertible} {
				for i := range ps {
					ps[i].File = shown(ps[i].File)
				}
			}
			r := convertReport{Result: res, Src: src, Dest: dest, DryRun: dryRun}
			if err := res.Err(); err != nil {
				r.Refused = true
				return errors.Join(t.app.Render(r), err)
			}
			opts := []convert.WriteOption{convert.WithRoot(t.app.Env.Dir), convert.WithDryRun(dryRun)}
			paths, err := convert.Write(res, t.app.Path(dest), opts...)
			if err != nil {
				return err
			}
			toDest := renamer(t.app.Path(dest), dest)
			for _, p := range paths {
				r.Files = append(r.Files, toDest(p))
			}
			if !dryRun && !noSum && len(paths) > 0 {
				migs, err := t.source()
				if err == nil {
					var sum sumReport
					if sum, err = t.writeSum(migs); err == nil {
						r.Sum = sum.File
					}
				}
				if err != nil {
					return errors.Join(t.app.Render(r), fmt.Errorf("the files are written, but not the sum file: %w", err))
				}
			}
			return t.app.Render(r)
		},
	}, "ps-migrate convert --from goose --dry-run db/migrations",
		"ps-migrate convert --from golang-migrate --migrations-path migrations migrate/")
}

// renamer returns a function that names a path under abs as under shown.
func renamer(abs, shown string) func(string) string {
	return func(p string) string {
		if p == abs {
			return shown
		}
		if rest, ok := strings.CutPrefix(p, abs+string(filepath.Separator)); ok {
			return filepath.Join(shown, rest)
		}
		return p
	}
}

// convertReport is a conversion: the migrations read, the files written
// (or that would be), the sum file.
type convertReport struct {
	Result  *convert.Result
	Src     string // DIR as given
	Dest    string
	DryRun  bool
	Refused bool
	Files   []string
	Sum     string
}

// RenderText writes one line per migration with the notes under it, then
// what was written. A refused conversion prints nothing: its error lists
// the files.
func (r convertReport) RenderText(w io.Writer) error {
	if r.Refused {
		return nil
	}
	for _, m := range r.Result.Migrations {
		out := m.Up.Name
		if m.Down != nil {
			out += " + " + m.Down.Name
		}
		fmt.Fprintf(w, "%s <- %s\n", out, strings.Join(m.From, " + "))
		for _, n := range m.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
	}
	var err error
	switch {
	case len(r.Result.Migrations) == 0:
		_, err = fmt.Fprintf(w, "no %s migrations in %s\n", r.Result.Tool, r.Src)
	case r.DryRun:
		_, err = fmt.Fprintf(w, "would write %d %s to %s\n", len(r.Files), plural(len(r.Files), "file", "files"), r.Dest)
	default:
		_, err = fmt.Fprintf(w, "wrote %d %s to %s\n", len(r.Files), plural(len(r.Files), "file", "files"), r.Dest)
	}
	if err == nil && r.Sum != "" {
		_, err = fmt.Fprintf(w, "wrote %s\n", r.Sum)
	}
	return err
}

type convertMigrationJSON struct {
	Version       int64    `json:"version"`
	Name          string   `json:"name"`
	From          []string `json:"from"`
	File          string   `json:"file"`
	Rollback      *string  `json:"rollback"`
	NoTransaction bool     `json:"no_transaction"`
	Notes         []string `json:"notes"`
}

type convertProblemJSON struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Msg  string `json:"message"`
}

// RenderJSON writes the migrations, the problems and the files as one object.
func (r convertReport) RenderJSON(w io.Writer) error {
	out := struct {
		From          string                 `json:"from"`
		Dir           string                 `json:"dir"`
		Dest          string                 `json:"migrations_path"`
		DryRun        bool                   `json:"dry_run"`
		Written       bool                   `json:"written"`
		Migrations    []convertMigrationJSON `json:"migrations"`
		Invalid       []convertProblemJSON   `json:"invalid"`
		Unconvertible []convertProblemJSON   `json:"unconvertible"`
		Files         []string               `json:"files"`
		Sum           string                 `json:"sum_file,omitempty"`
	}{From: string(r.Result.Tool), Dir: r.Src, Dest: r.Dest, DryRun: r.DryRun, Written: !r.DryRun && !r.Refused && len(r.Files) > 0,
		Migrations: []convertMigrationJSON{}, Invalid: []convertProblemJSON{}, Unconvertible: []convertProblemJSON{}, Files: []string{}, Sum: r.Sum}
	for _, m := range r.Result.Migrations {
		j := convertMigrationJSON{Version: m.Version, Name: m.Name, From: m.From, File: m.Up.Name, NoTransaction: m.NoTransaction, Notes: m.Notes}
		if m.Down != nil {
			name := m.Down.Name
			j.Rollback = &name
		}
		if j.Notes == nil {
			j.Notes = []string{}
		}
		out.Migrations = append(out.Migrations, j)
	}
	for _, p := range r.Result.Invalid {
		out.Invalid = append(out.Invalid, convertProblemJSON{p.File, p.Line, p.Msg})
	}
	for _, p := range r.Result.Unconvertible {
		out.Unconvertible = append(out.Unconvertible, convertProblemJSON{p.File, p.Line, p.Msg})
	}
	out.Files = append(out.Files, r.Files...)
	return cli.WriteJSON(w, out)
}
