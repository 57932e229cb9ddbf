package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/envdb"
	"github.com/poststack/poststack/pkg/exitcode"
)

func dbCommand(app *cli.App) *ffcli.Command {
	return app.Examples(&ffcli.Command{
		Name:       "db",
		ShortUsage: "ps-env db <reset|snapshot|restore|snapshots|drop-snapshot> [args...]",
		ShortHelp:  "reset the environment's database to freshly migrated, snapshot and restore it",
		LongHelp: `db works on the database of an environment's own PostgreSQL container (not on
an external postgres.url: database; use ps-migrate there). The environment is
the current one unless named. Templates and snapshots are template databases
on the same server, named after the database.`,
		FlagSet: flag.NewFlagSet("ps-env db", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{
			dbResetCommand(app), dbSnapshotCommand(app), dbRestoreCommand(app), dbSnapshotsCommand(app), dbDropSnapshotCommand(app),
		},
	}, "ps-env db reset", "ps-env db snapshot before-upgrade", "ps-env db restore before-upgrade")
}

// dbPositional checks that there are between min and max positional arguments.
func dbPositional(pos []string, usage string, min, max int) ([]string, error) {
	switch {
	case len(pos) < min:
		return nil, exitcode.Usagef("missing argument (usage: %s)", usage)
	case len(pos) > max:
		return nil, exitcode.Usagef("unexpected argument %q (usage: %s)", pos[max], usage)
	}
	return pos, nil
}

func dbArg(pos []string, i int) string {
	if i < len(pos) {
		return pos[i]
	}
	return ""
}

func dbResetCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env db reset", flag.ContinueOnError)
	var noSeed bool
	fs.BoolVar(&noSeed, "no-seed", false, "skip the environment's seed: files (migrate only)")
	const usage = "ps-env db reset [ENV] [--no-seed]"
	return app.Examples(&ffcli.Command{
		Name:       "reset",
		ShortUsage: usage,
		ShortHelp:  "drop and recreate the database, migrated and seeded, from a template",
		LongHelp: `reset drops the database of ENV (the current environment by default) and
creates it again with the migrations of --migrations-path applied and the
environment's seed: files run, unless --no-seed. Sessions on the database are
terminated. The first reset of a set of migrations and seed files builds a
template database (the migrations and seeds run as the application's role);
later ones copy it, which takes milliseconds: a spare copy is made in the
background after each reset and renamed into place by the next. A failing
migration or seed leaves the database as it was.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := dbPositional(args, usage, 0, 1)
			if err != nil {
				return err
			}
			d, err := dbTarget(ctx, app, dbArg(pos, 0))
			if err != nil {
				return err
			}
			if err := d.loadMigrations(app); err != nil {
				return err
			}
			res, err := envdb.Reset(ctx, d.Target, envdb.ResetOptions{NoSeed: noSeed, Progress: app.Report})
			if err != nil {
				return err
			}
			return app.Render(resetReport{Environment: d.Environment, ResetResult: res})
		},
	}, "ps-env db reset", "ps-env db reset test --no-seed", "ps-env --json db reset | jq .duration_ms")
}

// resetReport is what reset did.
type resetReport struct {
	Environment string
	*envdb.ResetResult
}

func (r resetReport) RenderText(w io.Writer) error {
	how := "from template " + r.Template
	switch {
	case r.Built:
		how = "from template " + r.Template + " (built now)"
	case r.Swapped:
		how = "from a spare copy of template " + r.Template
	}
	_, err := fmt.Fprintf(w, "reset %s: %s, %s, %s in %d ms\n", r.Database, dbCount(r.Migrations, "migration"), dbCount(r.Seeds, "seed file"), how, r.Duration.Milliseconds())
	return err
}

func (r resetReport) RenderJSON(w io.Writer) error {
	dropped := r.Dropped
	if dropped == nil {
		dropped = []string{}
	}
	return cli.WriteJSON(w, struct {
		Environment string   `json:"environment"`
		Database    string   `json:"database"`
		Template    string   `json:"template"`
		Built       bool     `json:"built"`
		Swapped     bool     `json:"swapped"`
		Migrations  int      `json:"migrations"`
		Seeds       int      `json:"seeds"`
		Dropped     []string `json:"dropped_templates"`
		DurationMS  int64    `json:"duration_ms"`
	}{r.Environment, r.Database, r.Template, r.Built, r.Swapped, r.Migrations, r.Seeds, dropped, r.Duration.Milliseconds()})
}

// dbCount is "1 migration", "2 migrations".
func dbCount(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func dbSnapshotCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env db snapshot", flag.ContinueOnError)
	var force bool
	fs.BoolVar(&force, "force", false, "replace a snapshot of the same name")
	const usage = "ps-env db snapshot NAME [ENV] [--force]"
	return app.Examples(&ffcli.Command{
		Name:       "snapshot",
		ShortUsage: usage,
		ShortHelp:  "copy the database into the snapshot NAME",
		LongHelp: fmt.Sprintf(`snapshot copies the database of ENV (the current environment by default) into
a template database on the same server, which restore copies back. The copy
needs the database to itself: the sessions connected to it are terminated
first. NAME is letters, digits, '_', '.' and '-', at most %d bytes; an
existing NAME is an error unless --force.`, envdb.MaxSnapshotName),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := dbPositional(args, usage, 1, 2)
			if err != nil {
				return err
			}
			if err := envdb.CheckSnapshotName(pos[0]); err != nil {
				return err
			}
			d, err := dbTarget(ctx, app, dbArg(pos, 1))
			if err != nil {
				return err
			}
			snap, err := envdb.TakeSnapshot(ctx, d.Target, pos[0], envdb.SnapshotOptions{Force: force})
			if err != nil {
				return err
			}
			return app.Render(snapshotReport{Environment: d.Environment, Database: d.Target.Database, Snapshot: *snap})
		},
	}, "ps-env db snapshot before-upgrade", "ps-env db snapshot fixtures test --force")
}

// snapshotReport is the snapshot taken, or dropped.
type snapshotReport struct {
	Environment, Database string
	Snapshot              envdb.Snapshot
	dropped               bool
}

func (r snapshotReport) RenderText(w io.Writer) error {
	if r.dropped {
		_, err := fmt.Fprintf(w, "dropped snapshot %s of %s\n", r.Snapshot.Name, r.Database)
		return err
	}
	_, err := fmt.Fprintf(w, "snapshot %s of %s: %s\n", r.Snapshot.Name, r.Database, dbSize(r.Snapshot.Size))
	return err
}

func (r snapshotReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		Environment string `json:"environment"`
		Database    string `json:"database"`
		snapshotJSON
	}{r.Environment, r.Database, newSnapshotJSON(r.Snapshot)})
}

// snapshotJSON is a snapshot in --json output.
type snapshotJSON struct {
	Name     string    `json:"name"`
	Template string    `json:"template"`
	Created  time.Time `json:"created"`
	Size     int64     `json:"size_bytes,omitempty"`
}

func newSnapshotJSON(s envdb.Snapshot) snapshotJSON {
	return snapshotJSON{Name: s.Name, Template: s.Template, Created: s.Created, Size: s.Size}
}

func dbSize(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", b)
}

func dbRestoreCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env db restore", flag.ContinueOnError)
	const usage = "ps-env db restore NAME [ENV]"
	return app.Examples(&ffcli.Command{
		Name:       "restore",
		ShortUsage: usage,
		ShortHelp:  "drop the database and recreate it from the snapshot NAME",
		LongHelp: `restore drops the database of ENV (the current environment by default) and
creates it again as a copy of the snapshot NAME, which stays for later
restores. Sessions on the database are terminated. A NAME that is not a
snapshot of the database is an error, and the database is left alone.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := dbPositional(args, usage, 1, 2)
			if err != nil {
				return err
			}
			if err := envdb.CheckSnapshotName(pos[0]); err != nil {
				return err
			}
			d, err := dbTarget(ctx, app, dbArg(pos, 1))
			if err != nil {
				return err
			}
			res, err := envdb.Restore(ctx, d.Target, pos[0])
			if err != nil {
				return err
			}
			return app.Render(restoreReport{Environment: d.Environment, RestoreResult: res})
		},
	}, "ps-env db restore before-upgrade")
}

// restoreReport is what restore did.
type restoreReport struct {
	Environment string
	*envdb.RestoreResult
}

func (r restoreReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "restored %s from snapshot %s (taken %s) in %d ms\n", r.Database, r.Snapshot.Name,
		r.Snapshot.Created.Local().Format(time.DateTime), r.Duration.Milliseconds())
	return err
}

func (r restoreReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		Environment string       `json:"environment"`
		Database    string       `json:"database"`
		Snapshot    snapshotJSON `json:"snapshot"`
		DurationMS  int64        `json:"duration_ms"`
	}{r.Environment, r.Database, newSnapshotJSON(r.Snapshot), r.Duration.Milliseconds()})
}

func dbSnapshotsCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env db snapshots", flag.ContinueOnError)
	const usage = "ps-env db snapshots [ENV]"
	return app.Examples(&ffcli.Command{
		Name:       "snapshots",
		ShortUsage: usage,
		ShortHelp:  "list the snapshots of the database",
		LongHelp:   `snapshots lists the snapshots of the database of ENV (the current environment by default), oldest first.`,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := dbPositional(args, usage, 0, 1)
			if err != nil {
				return err
			}
			d, err := dbTarget(ctx, app, dbArg(pos, 0))
			if err != nil {
				return err
			}
			list, err := envdb.Snapshots(ctx, d.Target)
			if err != nil {
				return err
			}
			return app.Render(snapshotList{Environment: d.Environment, Database: d.Target.Database, Snapshots: list})
		},
	}, "ps-env db snapshots", "ps-env --json db snapshots | jq -r '.snapshots[].name'")
}

// snapshotList is what snapshots lists.
type snapshotList struct {
	Environment, Database string
	Snapshots             []envdb.Snapshot
}

func (r snapshotList) RenderText(w io.Writer) error {
	if len(r.Snapshots) == 0 {
		_, err := fmt.Fprintf(w, "no snapshots of %s\n", r.Database)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTAKEN\tSIZE")
	for _, s := range r.Snapshots {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, s.Created.Local().Format(time.DateTime), dbSize(s.Size))
	}
	return tw.Flush()
}

func (r snapshotList) RenderJSON(w io.Writer) error {
	list := make([]snapshotJSON, 0, len(r.Snapshots))
	for _, s := range r.Snapshots {
		list = append(list, newSnapshotJSON(s))
	}
	return cli.WriteJSON(w, struct {
		Environment string         `json:"environment"`
		Database    string         `json:"database"`
		Snapshots   []snapshotJSON `json:"snapshots"`
	}{r.Environment, r.Database, list})
}

func dbDropSnapshotCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env db drop-snapshot", flag.ContinueOnError)
	const usage = "ps-env db drop-snapshot NAME [ENV]"
	return app.Examples(&ffcli.Command{
		Name:       "drop-snapshot",
		ShortUsage: usage,
		ShortHelp:  "drop the snapshot NAME",
		LongHelp:   `drop-snapshot drops the snapshot NAME of the database of ENV (the current environment by default).`,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			pos, err := dbPositional(args, usage, 1, 2)
			if err != nil {
				return err
			}
			if err := envdb.CheckSnapshotName(pos[0]); err != nil {
				return err
			}
			d, err := dbTarget(ctx, app, dbArg(pos, 1))
			if err != nil {
				return err
			}
			snap, err := envdb.DropSnapshot(ctx, d.Target, pos[0])
			if err != nil {
				return err
			}
			return app.Render(snapshotReport{Environment: d.Environment, Database: d.Target.Database, Snapshot: *snap, dropped: true})
		},
	}, "ps-env db drop-snapshot before-upgrade")
}
