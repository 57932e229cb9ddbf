package main

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) createSchemaCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate create-schema")
	var l ledgerFlags
	l.register(fs)
	return &ffcli.Command{
		Name:       "create-schema",
		ShortUsage: "ps-migrate create-schema",
		ShortHelp:  "create the ledger schema and table if missing (up does it on first use)",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withConn(ctx, l.dbFlags, args, func(conn *pgx.Conn) error {
				m, err := migrate.New(conn, nil, t.options(&l)...)
				if err != nil {
					return exitcode.With(exitcode.Usage, err)
				}
				if err := m.CreateSchema(ctx); err != nil {
					return err
				}
				return t.app.Render(ledgerReport{Schema: l.schema, Table: l.table})
			})
		},
	}
}

// ledgerReport names the ledger table create-schema made sure of.
type ledgerReport struct {
	Schema, Table string
}

// RenderText writes `ledger "poststack"."schema_migrations" ready`.
func (r ledgerReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "ledger %s ready\n", pgx.Identifier{r.Schema, r.Table}.Sanitize())
	return err
}

// RenderJSON writes {"schema": …, "table": …}.
func (r ledgerReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		Schema string `json:"schema"`
		Table  string `json:"table"`
	}{r.Schema, r.Table})
}
