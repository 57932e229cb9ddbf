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
	return t.app.Examples(&ffcli.Command{
		Name:       "new",
		ShortUsage: "ps-migrate new NAME",
		ShortHelp:  "create the next NNNN_NAME.sql and NNNN_NAME.rollback.sql",
		FlagSet:    fs,
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
			return t.app.Render(r)
		},
	}, "ps-migrate new add_users_email_index")
}

// createdReport is the files new made, relative to the working directory.
type createdReport struct {
	Files []string
}

// RenderText writes one file a line.
func (r createdReport) RenderText(w io.Writer) error {
	for _, f := range r.Files {
		if _, err := fmt.Fprintln(w, f); err != nil {
			return err
		}
	}
	return nil
}

// RenderJSON writes {"files": [migration, rollback]}.
func (r createdReport) RenderJSON(w io.Writer) error {
	files := r.Files
	if files == nil {
		files = []string{}
	}
	return cli.WriteJSON(w, struct {
		Files []string `json:"files"`
	}{files})
}
