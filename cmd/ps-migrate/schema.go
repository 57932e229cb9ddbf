package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgschema"
)

func (t *tool) showSchemaCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate show-schema")
	var db dbFlags
	db.register(fs)
	var schema string
	fs.StringVar(&schema, "schema", migrate.DefaultSchema, "ledger schema, left out of the listing")
	return t.app.Examples(&ffcli.Command{
		Name:       "show-schema",
		ShortUsage: "ps-migrate show-schema [--json]",
		ShortHelp:  "list the application schemas: tables, columns, indexes, constraints, views, functions",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withConn(ctx, db, args, func(conn *pgx.Conn) error {
				s, err := pgschema.Snapshot(ctx, conn, pgschema.Options{Exclude: []string{schema}})
				if err != nil {
					return err
				}
				return t.app.Render(schemaReport{s})
			})
		},
	}, "ps-migrate show-schema", "ps-migrate show-schema --json | jq '.tables[].name'")
}

// schemaReport is a catalog snapshot, as pgschema writes it.
type schemaReport struct {
	*pgschema.Schema
}

// RenderText writes the listing of pgschema.Schema.WriteText.
func (r schemaReport) RenderText(w io.Writer) error { return r.WriteText(w) }

// RenderJSON writes the snapshot's own JSON fields.
func (r schemaReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r.Schema) }

// dump-schema's output is the artifact itself (SQL for diffs in review),
// not a report of one: --json does not change it.
func (t *tool) dumpSchemaCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate dump-schema")
	var db dbFlags
	db.register(fs)
	var out string
	fs.StringVar(&out, "o", "", "write to `FILE` (atomically) instead of standard output")
	fs.StringVar(&out, "output", "", "same as -o")
	return t.app.Examples(&ffcli.Command{
		Name:       "dump-schema",
		ShortUsage: "ps-migrate dump-schema [-o FILE]",
		ShortHelp:  "pg_dump --schema-only, stripped of what varies between runs, for diffs in review",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			// pg_dump gets the URL as it is, but only once pgx accepts it.
			u, _, err := t.dbConfig(db)
			if err != nil {
				return err
			}
			dump := func(w io.Writer) error {
				return pgschema.DumpSchema(ctx, u, w, pgschema.WithEnviron(t.app.Env.Environ))
			}
			if out == "" {
				return dump(t.app.Env.Stdout)
			}
			return atomicfile.Write(t.app.Path(out), atomicfile.Public, func(f *os.File) error { return dump(f) })
		},
	}, "ps-migrate dump-schema -o schema.sql && git diff --exit-code schema.sql")
}

func (t *tool) backupCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate backup")
	var db dbFlags
	db.register(fs)
	var out string
	fs.StringVar(&out, "o", "", "backup `FILE` (default: <database>-<UTC time>.dump)")
	fs.StringVar(&out, "output", "", "same as -o")
	return t.app.Examples(&ffcli.Command{
		Name:       "backup",
		ShortUsage: "ps-migrate backup [-o FILE]",
		ShortHelp:  "pg_dump --format=custom of the whole database; restore with pg_restore",
		LongHelp: `backup writes a pg_dump custom-format archive of the whole database (schema
and data), mode 0600 even over an existing file. Restore it into an empty database with
  pg_restore --no-owner --dbname "$DATABASE_URL" FILE
or over an existing one (dropping what the archive holds first) with
  pg_restore --clean --if-exists --no-owner --dbname "$DATABASE_URL" FILE`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			u, cfg, err := t.dbConfig(db)
			if err != nil {
				return err
			}
			if out == "" {
				out = fmt.Sprintf("%s-%s.dump", cfg.Database, time.Now().UTC().Format("20060102T150405Z"))
			}
			label := "backup of " + cfg.Database
			t.app.Progress.Start(label)
			err = pgschema.Backup(ctx, u, t.app.Path(out), pgschema.WithEnviron(t.app.Env.Environ))
			t.app.Progress.Done(label, err)
			if err != nil {
				return err
			}
			return t.app.Render(backupReport{File: out})
		},
	}, "ps-migrate backup -o before-release.dump")
}

// backupReport is the archive backup wrote, as the user named it.
type backupReport struct {
	File string
}

func (r backupReport) restore() string {
	return fmt.Sprintf("pg_restore --no-owner --dbname \"$DATABASE_URL\" %s", r.File)
}

// RenderText writes the file and the command that restores it.
func (r backupReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s\nrestore: %s\n", r.File, r.restore())
	return err
}

// RenderJSON writes {"file", "restore"}.
func (r backupReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		File    string `json:"file"`
		Restore string `json:"restore"`
	}{r.File, r.restore()})
}
