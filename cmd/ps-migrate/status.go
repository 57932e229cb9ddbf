package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) statusCommand(name, aliasOf string) *ffcli.Command {
	fs := newFlagSet("ps-migrate " + name)
	var l ledgerFlags
	l.register(fs)
	var exitCode bool
	fs.BoolVar(&exitCode, "exit-code", false, "exit 3 when anything is pending, changed or missing its file")
	return t.app.Examples(&ffcli.Command{
		Name:       name,
		ShortUsage: "ps-migrate " + name + " [--json] [--exit-code]",
		ShortHelp:  help(aliasOf, "show each migration: applied, pending, changed or missing-file"),
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withMigrator(ctx, &l, args, func(m *migrate.Migrator) error {
				states, err := m.Status(ctx)
				if err != nil {
					return err
				}
				r := statusReport{states}
				if err := t.app.Render(r); err != nil {
					return err
				}
				if n := len(states) - r.count(migrate.StatusApplied); exitCode && n > 0 {
					return exitcode.With(exitcode.Check, fmt.Errorf("%d of %d migrations are not applied as they are on disk", n, len(states)))
				}
				return nil
			})
		},
	}, "ps-migrate status", "ps-migrate status --json --exit-code")
}

// statusReport is every version known from the files or the ledger.
type statusReport struct {
	States []migrate.State
}

func (r statusReport) count(s migrate.Status) int {
	n := 0
	for _, st := range r.States {
		if st.Status == s {
			n++
		}
	}
	return n
}

// RenderText writes a table, applied times in local time, and the counts.
func (r statusReport) RenderText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATUS\tAPPLIED AT\tDURATION")
	for _, s := range r.States {
		at, d := "-", "-"
		if !s.AppliedAt.IsZero() {
			at = s.AppliedAt.Local().Format(time.DateTime)
			d = s.Duration.Round(time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", s.Version, s.Name, s.Status, at, d)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d applied, %d pending, %d changed, %d missing-file\n",
		r.count(migrate.StatusApplied), r.count(migrate.StatusPending), r.count(migrate.StatusChanged), r.count(migrate.StatusMissingFile))
	return err
}

// stateJSON is one element of status --json. The applied_* fields and
// duration_ms are there for applied versions only.
type stateJSON struct {
	Version     int64          `json:"version"`
	Name        string         `json:"name"`
	Status      migrate.Status `json:"status"`
	File        string         `json:"file,omitempty"`
	Description string         `json:"description,omitempty"`
	AppliedAt   time.Time      `json:"applied_at,omitzero"`
	// DurationMS is a pointer: 0 ms is a duration an applied row has.
	DurationMS *int64 `json:"duration_ms,omitempty"`
	AppliedBy  string `json:"applied_by,omitempty"`
}

// RenderJSON writes an array of the versions, oldest first.
func (r statusReport) RenderJSON(w io.Writer) error {
	rows := []stateJSON{}
	for _, s := range r.States {
		row := stateJSON{Version: s.Version, Name: s.Name, Status: s.Status, File: s.File, Description: s.Description,
			AppliedAt: s.AppliedAt, AppliedBy: s.AppliedBy}
		if !s.AppliedAt.IsZero() {
			ms := s.Duration.Milliseconds()
			row.DurationMS = &ms
		}
		rows = append(rows, row)
	}
	return cli.WriteJSON(w, rows)
}
