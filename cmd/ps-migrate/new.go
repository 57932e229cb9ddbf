package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) newCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate new")
	var noSum bool
	fs.BoolVar(&noSum, "no-sum", false, "do not write the sum file ("+migrate.SumFile+" in the migrations directory); command line only")
	return t.app.Examples(&ffcli.Command{
		Name:       "new",
		ShortUsage: "ps-migrate new [--no-sum] NAME",
		ShortHelp:  "create the next NNNN_NAME.sql and NNNN_NAME.rollback.sql, and update " + migrate.SumFile,
		LongHelp: `new creates the next migration, NNNN_NAME.sql, and its rollback,
NNNN_NAME.rollback.sql, numbered one above the highest version in the
migrations directory, then writes the sum file (` + migrate.SumFile + `, see
ps-migrate hash --help) for every file there, unless --no-sum. After editing
the new files, run ps-migrate hash again: up refuses a file changed since.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) != 1 {
				return exitcode.Usagef("new takes one NAME, e.g. ps-migrate new add_users")
			}
			created, err := migrate.Create(t.app.Path(t.app.Globals.MigrationsPath), args[0])
			if err != nil {
				return err
			}
			r := createdReport{}
			for _, p := range created {
				rel, rerr := filepath.Rel(t.app.Env.Dir, p)
				if rerr != nil {
					rel = p
				}
				r.Files = append(r.Files, rel)
			}
			if noSum {
				return t.app.Render(r)
			}
			// The files are made: a sum file that cannot be written is
			// reported after them.
			migs, err := t.source()
			if err == nil {
				if _, err = t.writeSum(migs); err == nil {
					sum := filepath.Join(t.app.Path(t.app.Globals.MigrationsPath), migrate.SumFile)
					if r.Sum, err = filepath.Rel(t.app.Env.Dir, sum); err != nil {
						r.Sum, err = sum, nil
					}
				}
			}
			if rerr := t.app.Render(r); rerr != nil {
				return rerr
			}
			return err
		},
	}, "ps-migrate new add_users_email_index", "ps-migrate new --no-sum add_users_email_index")
}

// createdReport is the files new made and the sum file it wrote (none with
// --no-sum), relative to the working directory.
type createdReport struct {
	Files []string
	Sum   string
}

// RenderText writes one file a line: the migration, its rollback, then the
// sum file.
func (r createdReport) RenderText(w io.Writer) error {
	files := r.Files
	if r.Sum != "" {
		files = append(files[:len(files):len(files)], r.Sum)
	}
	for _, f := range files {
		if _, err := fmt.Fprintln(w, f); err != nil {
			return err
		}
	}
	return nil
}

// RenderJSON writes {"files": [migration, rollback], "sum": sum file or null}.
func (r createdReport) RenderJSON(w io.Writer) error {
	files := r.Files
	if files == nil {
		files = []string{}
	}
	var sum *string
	if r.Sum != "" {
		sum = &r.Sum
	}
	return cli.WriteJSON(w, struct {
		Files []string `json:"files"`
		Sum   *string  `json:"sum"`
	}{files, sum})
}
