package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/adopt"
	"github.com/poststack/poststack/pkg/migrate"
)

const adoptHelp = `adopt reads the ledger another migration tool keeps in the database and
writes ps-migrate's (--schema/--table, poststack.schema_migrations) so that
status shows the same versions applied and up does not run them again. It
runs no migration and never changes or drops the other tool's table.

  --from goose             goose_db_version: per version_id, its latest row
                           (by id) says whether it is applied; tstamp is kept
  --from golang-migrate    schema_migrations: one version, every file at or
                           below it is applied; no time is recorded, so the
                           rows get the time of adoption; a dirty ledger is
                           refused
  --from poststack-python  public.schema_migrations: applied_at, applied_by and
                           execution_time_ms are kept; its checksum of each file
                           must match ours (exit 3 unless --allow-drift); its
                           sql_down is kept as the rollback when a version has
                           no rollback file

Each applied version must have a file in --migrations-path with the same
number: a version without one is listed and nothing is written (exit 3).
The ledger written must be empty; a second adopt that would write the same
rows is a no-op (exit 0); rows that differ are refused (exit 3). The rows
are written in one transaction under the migration lock. See
docs/migrating.md.`

func (t *tool) adoptCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate adopt")
	var l ledgerFlags
	l.register(fs)
	var from, fromTable string
	var dryRun bool
	fs.StringVar(&from, "from", "", "the tool whose ledger to adopt: goose, golang-migrate or poststack-python")
	fs.StringVar(&fromTable, "from-table", "", "its ledger table, table or schema.table (default: goose_db_version, schema_migrations, public.schema_migrations)")
	fs.BoolVar(&dryRun, "dry-run", false, "show what would be written; write nothing, take no lock")
	return t.app.Examples(&ffcli.Command{
		Name:       "adopt",
		ShortUsage: "ps-migrate adopt --from goose|golang-migrate|poststack-python [--from-table T] [--dry-run]",
		ShortHelp:  "write the ledger from another tool's (goose, golang-migrate, the Python poststack)",
		LongHelp:   adoptHelp,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			tool, err := adopt.ParseTool(from)
			if err != nil {
				return err
			}
			var table string
			if fromTable != "" {
				if table, err = adopt.Identifier(fromTable); err != nil {
					return err
				}
			}
			if err := noArgs(args); err != nil {
				return err
			}
			m, conn, err := t.migrator(ctx, &l)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			led, err := adopt.Read(ctx, conn, tool, table)
			if err != nil {
				return err
			}
			plan, err := adopt.NewPlan(led, m.Migrations())
			if err != nil {
				return err
			}
			r := adoptReport{Plan: plan, Ledger: m.Ledger(), DryRun: dryRun}
			if err := plan.Check(l.allowDrift); err != nil {
				r.Status = adoptRefused
				return errors.Join(t.app.Render(r), err)
			}
			var n int
			if dryRun {
				n, err = m.CheckRecord(ctx, plan.Adopted())
			} else {
				n, err = m.Record(ctx, plan.Adopted())
			}
			var conflict *migrate.RecordConflictError
			switch {
			case errors.As(err, &conflict):
				r.Status = adoptRefused
				return errors.Join(t.app.Render(r), err)
			case err != nil:
				return err
			case n == 0 && len(plan.Rows) > 0:
				r.Status = adoptAlready
			case dryRun:
				r.Status, r.Written = adoptWouldWrite, n
			default:
				r.Status, r.Written = adoptWritten, n
			}
			return t.app.Render(r)
		},
	}, "ps-migrate adopt --from goose --dry-run",
		"ps-migrate adopt --from golang-migrate && ps-migrate status",
		"ps-migrate adopt --from poststack-python --from-table legacy.schema_migrations")
}

// adoptStatus says what adopt did.
type adoptStatus string

const (
	adoptWritten    adoptStatus = "written"
	adoptWouldWrite adoptStatus = "would-write"
	adoptAlready    adoptStatus = "already-adopted"
	adoptRefused    adoptStatus = "refused"
)

// adoptReport is the plan of an adoption and what came of it.
type adoptReport struct {
	Plan    *adopt.Plan
	Ledger  string // ours, quoted
	DryRun  bool
	Status  adoptStatus
	Written int
}

// RenderText writes one line per version adopted, what stops the adoption,
// and the outcome.
func (r adoptReport) RenderText(w io.Writer) error {
	p := r.Plan
	fmt.Fprintf(w, "%s ledger %s: %d %s applied\n", p.Tool, p.Table, len(p.Rows)+len(p.Unmatched),
		plural(len(p.Rows)+len(p.Unmatched), "version", "versions"))
	if len(p.Rows) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "VERSION\tFILE\tAPPLIED AT\tAPPLIED BY\tROLLBACK")
		for _, row := range p.Rows {
			at := "now"
			if !row.AppliedAt.IsZero() {
				at = row.AppliedAt.Local().Format(time.DateTime)
			}
			rb := row.RollbackFrom
			if rb == "" {
				rb = "-"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", row.Version, row.File, at, row.AppliedBy, rb)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, a := range p.Unmatched {
		fmt.Fprintf(w, "version %s applied by %s: no file in the migrations directory\n", a.Label, p.Tool)
	}
	for _, d := range p.Drifts {
		fmt.Fprintf(w, "%s changed since the Python poststack applied it (its checksum %s, the file's %s)\n", d.File, short(d.Theirs), short(d.Ours))
	}
	for _, f := range p.Skipped {
		fmt.Fprintf(w, "%s was not applied by %s although newer ones were: up applies it only with --allow-out-of-order\n", f, p.Tool)
	}
	if p.NoTimes && len(p.Rows) > 0 {
		fmt.Fprintf(w, "%s records no times: applied_at is the time of adoption\n", p.Tool)
	}
	var err error
	switch r.Status {
	case adoptWritten:
		_, err = fmt.Fprintf(w, "wrote %d %s to %s\n", r.Written, plural(r.Written, "row", "rows"), r.Ledger)
	case adoptWouldWrite:
		if r.Written == 0 {
			_, err = fmt.Fprintf(w, "nothing to adopt\n")
		} else {
			_, err = fmt.Fprintf(w, "would write %d %s to %s\n", r.Written, plural(r.Written, "row", "rows"), r.Ledger)
		}
	case adoptAlready:
		_, err = fmt.Fprintf(w, "already adopted: %s holds these rows; nothing written\n", r.Ledger)
	case adoptRefused:
		_, err = fmt.Fprintf(w, "nothing written to %s\n", r.Ledger)
	}
	return err
}

func short(sum string) string {
	if len(sum) > 12 {
		return sum[:12] + "…"
	}
	return sum
}

// adoptRowJSON is one row of adopt --json.
type adoptRowJSON struct {
	Version   int64     `json:"version"`
	Name      string    `json:"name"`
	File      string    `json:"file"`
	Checksum  string    `json:"checksum"`
	AppliedAt time.Time `json:"applied_at,omitzero"`
	AppliedBy string    `json:"applied_by"`
	// DurationMS is there when the tool recorded one.
	DurationMS *int64 `json:"duration_ms,omitempty"`
	// Rollback is the rollback file, "sql_down", or null.
	Rollback *string `json:"rollback"`
}

type adoptDriftJSON struct {
	Version int64  `json:"version"`
	File    string `json:"file"`
	Theirs  string `json:"their_checksum"`
	Ours    string `json:"checksum"`
}

// RenderJSON writes the plan and the outcome as one object.
func (r adoptReport) RenderJSON(w io.Writer) error {
	p := r.Plan
	out := struct {
		Tool      string           `json:"tool"`
		Table     string           `json:"table"`
		Ledger    string           `json:"ledger"`
		DryRun    bool             `json:"dry_run"`
		Status    adoptStatus      `json:"status"`
		Written   int              `json:"written"`
		Rows      []adoptRowJSON   `json:"rows"`
		Unmatched []string         `json:"unmatched"`
		Drifts    []adoptDriftJSON `json:"drifts"`
		Skipped   []string         `json:"skipped"`
		TimeOfNow bool             `json:"applied_at_is_now"`
	}{Tool: string(p.Tool), Table: p.Table, Ledger: r.Ledger, DryRun: r.DryRun, Status: r.Status, Written: r.Written,
		Rows: []adoptRowJSON{}, Unmatched: []string{}, Drifts: []adoptDriftJSON{}, Skipped: []string{}, TimeOfNow: p.NoTimes}
	for _, row := range p.Rows {
		j := adoptRowJSON{Version: row.Version, Name: row.Name, File: row.File, Checksum: row.Checksum, AppliedAt: row.AppliedAt, AppliedBy: row.AppliedBy}
		if row.Duration > 0 {
			ms := row.Duration.Milliseconds()
			j.DurationMS = &ms
		}
		if row.RollbackFrom != "" {
			rb := row.RollbackFrom
			j.Rollback = &rb
		}
		out.Rows = append(out.Rows, j)
	}
	for _, a := range p.Unmatched {
		out.Unmatched = append(out.Unmatched, a.Label)
	}
	for _, d := range p.Drifts {
		out.Drifts = append(out.Drifts, adoptDriftJSON{d.Version, d.File, d.Theirs, d.Ours})
	}
	out.Skipped = append(out.Skipped, p.Skipped...)
	return cli.WriteJSON(w, out)
}
