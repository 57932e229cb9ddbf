package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/jackc/pgx/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func (t *tool) verifyCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate verify")
	var l ledgerFlags
	l.register(fs)
	var rollback bool
	var scratch string
	fs.BoolVar(&rollback, "rollback", false, "in a scratch database, apply, roll back and re-apply each migration and compare the catalog")
	fs.StringVar(&scratch, "scratch-url", "", "with --rollback: an empty database to use, refused (exit 2) if it holds a ledger or any object; the migrations stay applied there (default: a temporary database created next to the target and dropped)")
	return t.app.Examples(&ffcli.Command{
		Name:       "verify",
		ShortUsage: "ps-migrate verify [--rollback [--scratch-url URL]]",
		ShortHelp:  "check applied migrations against their files (exit 3 on drift); --rollback tests every rollback",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			if rollback {
				return t.verifyRollback(ctx, &l, scratch)
			}
			return t.withMigrator(ctx, &l, nil, func(m *migrate.Migrator) error {
				// Verify returns the drifts together with a *DriftError: the
				// listing is the command's output, the error only its exit code.
				drifts, err := m.Verify(ctx)
				var drift *migrate.DriftError
				if err != nil && !errors.As(err, &drift) {
					return err
				}
				if err := t.app.Render(driftReport{drifts}); err != nil {
					return err
				}
				if len(drifts) > 0 {
					return exitcode.Checkf("%d applied %s changed since they were applied", len(drifts), plural(len(drifts), "migration", "migrations"))
				}
				return nil
			})
		},
	}, "ps-migrate verify", "ps-migrate verify --rollback")
}

// driftReport is what verify found: the applied migrations whose files
// changed since.
type driftReport struct {
	Drifts []migrate.Drift
}

// RenderText writes one line per drift, or that everything matches.
func (r driftReport) RenderText(w io.Writer) error {
	if len(r.Drifts) == 0 {
		_, err := fmt.Fprintln(w, "every applied migration matches its file")
		return err
	}
	for _, d := range r.Drifts {
		if _, err := fmt.Fprintln(w, d.String()); err != nil {
			return err
		}
	}
	return nil
}

// RenderJSON writes {"drifts": [...]}, each as migrate.Drift's fields.
func (r driftReport) RenderJSON(w io.Writer) error {
	drifts := r.Drifts
	if drifts == nil {
		drifts = []migrate.Drift{}
	}
	return cli.WriteJSON(w, struct {
		Drifts []migrate.Drift `json:"drifts"`
	}{drifts})
}

// verifyRollback runs migrate.VerifyRollback in scratch, a database given
// by --scratch-url or created for the run next to the target and dropped
// afterwards.
func (t *tool) verifyRollback(ctx context.Context, l *ledgerFlags, scratchURL string) (err error) {
	migs, err := t.source()
	if err != nil {
		return err
	}
	if scratchURL == "" {
		u, err := t.databaseURL(l.dbFlags)
		if err != nil {
			return err
		}
		admin, err := t.connect(ctx, l.dbFlags)
		if err != nil {
			return err
		}
		defer admin.Close(context.WithoutCancel(ctx))
		name, drop, err := migrate.CreateScratchDatabase(ctx, admin)
		if err != nil {
			return fmt.Errorf("%w (give an empty database with --scratch-url)", err)
		}
		defer func() {
			if derr := drop(context.WithoutCancel(ctx)); derr != nil && err == nil {
				err = derr
			}
		}()
		if scratchURL, err = replaceDatabase(u, name); err != nil {
			return err
		}
	}
	scratch, err := t.connectScratch(ctx, scratchURL)
	if err != nil {
		return err
	}
	defer scratch.Close(context.WithoutCancel(ctx))
	problems, err := migrate.VerifyRollback(ctx, scratch, migs, t.options(l)...)
	if err != nil {
		return err
	}
	if err := t.app.Render(rollbackReport{Checked: len(migs), Problems: problems}); err != nil {
		return err
	}
	if len(problems) > 0 {
		return exitcode.Checkf("%d of %d migrations do not roll back cleanly", len(problems), len(migs))
	}
	return nil
}

// rollbackReport is what verify --rollback found: how many migrations it
// checked, and those whose rollback or re-application changed the schema.
type rollbackReport struct {
	Checked  int
	Problems []migrate.RollbackProblem
}

// RenderText writes each problem with its differences, or that every
// rollback restores the schema.
func (r rollbackReport) RenderText(w io.Writer) error {
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintf(w, "%d migrations applied, rolled back and applied again: every rollback restores the schema\n", r.Checked)
		return err
	}
	for _, p := range r.Problems {
		if _, err := fmt.Fprintln(w, p.String()); err != nil {
			return err
		}
	}
	return nil
}

type rollbackProblemJSON struct {
	Version int64    `json:"version"`
	Name    string   `json:"name"`
	Stage   string   `json:"stage"`
	Diffs   []string `json:"differences"`
}

// RenderJSON writes {"checked": N, "problems": [...]}.
func (r rollbackReport) RenderJSON(w io.Writer) error {
	rows := []rollbackProblemJSON{}
	for _, p := range r.Problems {
		rows = append(rows, rollbackProblemJSON{p.Version, p.Name, p.Stage, p.Diffs})
	}
	return cli.WriteJSON(w, struct {
		Checked  int                   `json:"checked"`
		Problems []rollbackProblemJSON `json:"problems"`
	}{r.Checked, rows})
}

// connectScratch connects to the scratch database u (--scratch-url of verify and lint).
func (t *tool) connectScratch(ctx context.Context, u string) (*pgx.Conn, error) {
	cfg, err := t.connConfig("scratch URL", u)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to the scratch database %s: %w", describe(cfg), err)
	}
	return conn, nil
}

// replaceDatabase returns the URL u with its database (the path) set to
// db. Anything but a postgres:// URL is an error: returning u unchanged
// would run the check in the real database.
func replaceDatabase(u, db string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		return "", exitcode.Usagef("verify --rollback needs a postgres:// URL to derive a scratch database from; give --scratch-url")
	}
	parsed.Path = "/" + db
	parsed.RawPath = ""
	return parsed.String(), nil
}
