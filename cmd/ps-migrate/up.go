package main

import (
	"context"
	"fmt"
	"io"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) upCommand(name, aliasOf string) *ffcli.Command {
	fs := newFlagSet("ps-migrate " + name)
	var l ledgerFlags
	l.register(fs)
	var target int64
	var dryRun, noSum bool
	fs.Int64Var(&target, "target", 0, "apply up to and including this version (default: all)")
	fs.Int64Var(&target, "target-version", 0, "alias of --target")
	fs.BoolVar(&dryRun, "dry-run", false, "list what would run; change nothing, take no lock")
	fs.BoolVar(&noSum, "no-sum", false, noSumUsage)
	return t.app.Examples(&ffcli.Command{
		Name:       name,
		ShortUsage: "ps-migrate " + name + " [--target V] [--dry-run] [--no-sum]",
		ShortHelp:  help(aliasOf, "apply pending migrations, each with its ledger row in one transaction"),
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withCheckedMigrator(ctx, &l, noSum, args, func(m *migrate.Migrator) error {
				if dryRun {
					plan, err := m.Plan(ctx, target)
					if err != nil {
						return err
					}
					return t.app.Render(upPlan{plan})
				}
				results, err := m.Up(ctx, target)
				return t.finish("applied", results, err)
			})
		},
	}, "ps-migrate up", "ps-migrate up --target 7 --dry-run")
}

// upPlan is what up --dry-run found pending, in the order up would apply it.
type upPlan struct {
	Migrations []*migrate.Migration
}

// RenderText writes "would apply FILE" lines, or "nothing to do".
func (p upPlan) RenderText(w io.Writer) error {
	if len(p.Migrations) == 0 {
		_, err := fmt.Fprintln(w, "nothing to do")
		return err
	}
	for _, m := range p.Migrations {
		if _, err := fmt.Fprintf(w, "would apply %s\n", m.Up.File); err != nil {
			return err
		}
	}
	return nil
}

type plannedUp struct {
	File          string `json:"file"`
	Name          string `json:"name"`
	NoTransaction bool   `json:"no_transaction"`
	Version       int64  `json:"version"`
}

// RenderJSON writes {"plan": [{file, name, no_transaction, version}]}.
func (p upPlan) RenderJSON(w io.Writer) error {
	rows := []plannedUp{}
	for _, m := range p.Migrations {
		rows = append(rows, plannedUp{m.Up.File, m.Name, m.Up.NoTransaction, m.Version})
	}
	return cli.WriteJSON(w, struct {
		Plan []plannedUp `json:"plan"`
	}{rows})
}
