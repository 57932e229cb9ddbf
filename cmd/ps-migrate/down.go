package main

import (
	"context"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) downCommand(name, aliasOf string) *ffcli.Command {
	fs := newFlagSet("ps-migrate " + name)
	var l ledgerFlags
	l.register(fs)
	target := int64(-1)
	var steps int
	var dryRun, noSum bool
	fs.Int64Var(&target, "target", -1, "roll back every migration newer than this version (0: all)")
	fs.Int64Var(&target, "target-version", -1, "alias of --target")
	fs.IntVar(&steps, "steps", 0, "roll back this many of the newest migrations")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would be rolled back; change nothing")
	fs.BoolVar(&noSum, "no-sum", false, noSumUsage)
	return t.app.Examples(&ffcli.Command{
		Name:       name,
		ShortUsage: "ps-migrate " + name + " --target V | --steps N [--dry-run] [--no-sum]",
		ShortHelp:  help(aliasOf, "roll back migrations newest first, each in its own transaction"),
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			to, err := downTarget(target, steps)
			if err != nil {
				return err
			}
			return t.withCheckedMigrator(ctx, &l, noSum, nil, func(m *migrate.Migrator) error {
				if dryRun {
					plan, err := m.PlanDown(ctx, to)
					if err != nil {
						return err
					}
					return t.app.Render(downPlan{plan})
				}
				results, err := m.Down(ctx, to)
				return t.finish("rolled back", results, err)
			})
		},
	}, "ps-migrate down --steps 1", "ps-migrate down --target 3 --dry-run")
}

// downTarget reads --target and --steps, of which exactly one is given.
func downTarget(target int64, steps int) (migrate.DownTarget, error) {
	switch {
	case target >= 0 && steps != 0:
		return migrate.DownTarget{}, exitcode.Usagef("give --target or --steps, not both")
	case target >= 0:
		return migrate.ToVersion(target), nil
	case steps > 0:
		return migrate.Steps(steps), nil
	case steps < 0:
		return migrate.DownTarget{}, exitcode.Usagef("--steps must be at least 1")
	}
	return migrate.DownTarget{}, exitcode.Usagef("say how far: --target V (0 rolls back everything) or --steps N")
}

// downPlan is what down --dry-run would roll back, newest first.
type downPlan struct {
	Steps []migrate.Step
}

// RenderText writes "would roll back 0002_email_index" lines, named as
// "rolled back" names them, or "nothing to do".
func (p downPlan) RenderText(w io.Writer) error {
	if len(p.Steps) == 0 {
		_, err := fmt.Fprintln(w, "nothing to do")
		return err
	}
	for _, s := range p.Steps {
		if _, err := fmt.Fprintf(w, "would roll back %s\n", migrate.Label(s.Version, s.Name, s.Migration)); err != nil {
			return err
		}
	}
	return nil
}

type plannedDown struct {
	// File is the rollback file, or "ledger copy of …" for the SQL the
	// ledger stored when the file is gone.
	File          string `json:"file"`
	Name          string `json:"name"`
	NoTransaction bool   `json:"no_transaction"`
	Version       int64  `json:"version"`
	FromLedger    bool   `json:"from_ledger"`
}

// RenderJSON writes {"plan": [...]} in the shape of up's plan, with
// from_ledger for a rollback the ledger supplies.
func (p downPlan) RenderJSON(w io.Writer) error {
	rows := []plannedDown{}
	for _, s := range p.Steps {
		rows = append(rows, plannedDown{s.Script.File, s.Name, s.Script.NoTransaction, s.Version, s.FromLedger})
	}
	return cli.WriteJSON(w, struct {
		Plan []plannedDown `json:"plan"`
	}{rows})
}
