package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) waitCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate wait")
	var db dbFlags
	db.register(fs)
	timeout := 60 * time.Second
	fs.DurationVar(&timeout, "timeout", timeout, "give up after this long (exit 4)")
	return t.app.Examples(&ffcli.Command{
		Name:       "wait",
		ShortUsage: "ps-migrate wait [--timeout 60s]",
		ShortHelp:  "wait until the database accepts connections",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			_, cfg, err := t.dbConfig(db)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			label := "waiting for " + describe(cfg)
			t.app.Progress.Start(label)
			start := time.Now()
			last, err := migrate.WaitReady(ctx, cfg)
			t.app.Progress.Done(label, err)
			if errors.Is(err, context.DeadlineExceeded) {
				return exitcode.With(exitcode.Timeout, fmt.Errorf("%s did not accept connections within %s: %v", describe(cfg), timeout, last))
			}
			if err != nil {
				return err
			}
			return t.app.Render(readyReport{User: cfg.User, Host: cfg.Host, Port: cfg.Port, Database: cfg.Database, Waited: time.Since(start)})
		},
	}, "ps-migrate wait --timeout 2m")
}

// readyReport is the database wait saw accept a connection, and how long
// that took.
type readyReport struct {
	User, Host string
	Port       uint16
	Database   string
	Waited     time.Duration
}

// RenderText writes "user@host:port/db is ready (12ms)".
func (r readyReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "%s@%s:%d/%s is ready (%s)\n", r.User, r.Host, r.Port, r.Database, r.Waited.Round(time.Millisecond))
	return err
}

// RenderJSON writes {"user", "host", "port", "database", "duration_ms"}.
func (r readyReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		User       string `json:"user"`
		Host       string `json:"host"`
		Port       uint16 `json:"port"`
		Database   string `json:"database"`
		DurationMS int64  `json:"duration_ms"`
	}{r.User, r.Host, r.Port, r.Database, r.Waited.Milliseconds()})
}

func (t *tool) testConnectionCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate test-connection")
	var db dbFlags
	db.register(fs)
	return &ffcli.Command{
		Name:       "test-connection",
		ShortUsage: "ps-migrate test-connection",
		ShortHelp:  "connect once and show the server, user and database",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			return t.withConn(ctx, db, args, func(conn *pgx.Conn) error {
				var r connectionReport
				if err := conn.QueryRow(ctx, "select current_setting('server_version'), current_user, current_database()").Scan(&r.ServerVersion, &r.User, &r.Database); err != nil {
					return err
				}
				return t.app.Render(r)
			})
		},
	}
}

// connectionReport is what test-connection's session saw.
type connectionReport struct {
	Database      string `json:"database"`
	ServerVersion string `json:"server_version"`
	User          string `json:"user"`
}

// RenderText writes "connected: PostgreSQL 16.4, user app, database app".
func (r connectionReport) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "connected: PostgreSQL %s, user %s, database %s\n", r.ServerVersion, r.User, r.Database)
	return err
}

// RenderJSON writes {"database", "server_version", "user"}.
func (r connectionReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }
