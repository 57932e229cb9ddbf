package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/migrate"
)

const hashHelp = `hash writes the sum file, poststack.sum in the migrations directory, for the
migration files there now. Commit it with them. new writes it too.

Its first line hashes the rest; then comes one line per file in version order,
each migration followed by its rollback, with the checksum the ledger uses
(SHA-256 of the file, CRLF read as LF):
  sum1 sha256:<hex of every byte after this line>
  0001_users.sql sha256:<hex>
  0001_users.rollback.sql sha256:<hex>
Each line ends in a newline; the same files give the same bytes.

up and down (and lint) refuse, exit 3 before they connect, files that do not
match it: one changed or added since the last hash, one gone, a sum file
edited by hand. Two branches that each add a migration change its first and
last lines, so merging the second conflicts in git: keep both sides'
migrations (a version each), then run hash again. A directory without a sum
file is not checked; --no-sum on up, down and new skips it (command line
only). A sum file that is a symbolic link, not a regular file, or over 8 MiB
is refused (exit 2).`

func (t *tool) hashCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate hash")
	return t.app.Examples(&ffcli.Command{
		Name:       "hash",
		ShortUsage: "ps-migrate hash",
		ShortHelp:  "write " + migrate.SumFile + ", every migration file's checksum, so that parallel branches conflict in git",
		LongHelp:   hashHelp,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			migs, err := t.source()
			if err != nil {
				return err
			}
			r, err := t.writeSum(migs)
			if err != nil {
				return err
			}
			return t.app.Render(r)
		},
	}, "ps-migrate hash", "ps-migrate hash && git add migrations/")
}

// writeSum writes the sum file of the loaded files migs into the migrations
// directory and says what it holds.
func (t *tool) writeSum(migs []*migrate.Migration) (sumReport, error) {
	dir := t.app.Globals.MigrationsPath
	if err := migrate.WriteSum(t.app.Path(dir), migs); err != nil {
		return sumReport{}, t.sumError(err)
	}
	r := sumReport{File: filepath.Join(dir, migrate.SumFile), Migrations: len(migs)}
	for _, m := range migs {
		r.Files++
		if m.Down != nil {
			r.Files++
		}
	}
	return r, nil
}

// sumReport is the sum file hash wrote, as the user would find it from the
// working directory, and how many migrations and files it lists.
type sumReport struct {
	File       string
	Migrations int
	Files      int
}

// RenderText writes "migrations/poststack.sum: 3 migrations, 5 files".
func (r sumReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s: %d %s, %d %s\n", r.File, r.Migrations, plural(r.Migrations, "migration", "migrations"),
		r.Files, plural(r.Files, "file", "files"))
	return err
}

// RenderJSON writes {"file", "migrations", "files"}.
func (r sumReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		File       string `json:"file"`
		Migrations int    `json:"migrations"`
		Files      int    `json:"files"`
	}{r.File, r.Migrations, r.Files})
}
