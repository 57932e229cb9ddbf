package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/gittree"
	"github.com/poststack/poststack/pkg/lint"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgnative"
	"github.com/poststack/poststack/pkg/pgschema"
)

const lintHelp = `lint reviews the new migrations by running them: in a scratch server it brings
the schema to the base state, puts a few rows in every table, applies each new
migration statement by statement in its own transaction and asks PostgreSQL
what it did before committing: the locks it took on tables that existed
before, the tables it rewrote, the rows it scanned, the indexes it built. A
lock that blocks writes held while the server does work that grows with the
table (a rewrite, a scan, an index build) is an error; every finding says
the safe way to write the statement. It also reports migrations that cannot
run in a transaction but are not marked -- poststack:no-transaction,
rollbacks that do not restore the schema, and the schema change as a whole.

What is new: --base VERSION (the migrations above VERSION), or --base-ref
GIT_REF (those not present in that commit, read from git, not the work tree:
a migration of the base edited or removed since is an error too). Without
either, GITHUB_BASE_REF (a pull request's base branch) is used when set;
otherwise every migration is new and each is reviewed against the schema
the ones before it built.

The scratch server is a throwaway native PostgreSQL (the host's initdb, the
base state cached for the next run), or --scratch-url, an empty database.
lint never connects to the target database.

Findings print as FILE:LINE:COL: level RULE: message. Silence one with a
comment on the statement's line (or the line above it):
  -- poststack:lint-ignore RULE why it is safe here
Exit codes: 0 no errors (warnings allowed), 3 errors found, 2 bad input,
1 a migration failed in the scratch database. Under GitHub Actions each
finding is an annotation and the step summary holds the findings and the
schema change.`

func (t *tool) lintCommand() *ffcli.Command {
	fs := newFlagSet("ps-migrate lint")
	var f lintFlags
	f.register(fs)
	return t.app.Examples(&ffcli.Command{
		Name:       "lint",
		ShortUsage: "ps-migrate lint [--base VERSION | --base-ref GIT_REF] [--scratch-url URL] [--summary] [--json]",
		ShortHelp:  "review new migrations in a scratch database: locks, rewrites and scans they cause (exit 3 on errors)",
		LongHelp:   lintHelp,
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			if err := noArgs(args); err != nil {
				return err
			}
			return t.lint(ctx, &f)
		},
	},
		"ps-migrate lint --base-ref origin/main",
		"ps-migrate lint --base 41 --json | jq '.findings[]'",
		"ps-migrate lint --summary > review.md        # the findings and the schema change as markdown",
		"ps-migrate lint --scratch-url postgres://postgres@localhost:5432/scratch",
		"ps-migrate lint --rules                      # every rule with its explanation",
	)
}

// lintFlags are lint's own flags.
type lintFlags struct {
	base                 string
	baseRef              string
	scratchURL           string
	summary              bool
	rules                bool
	noSum                bool
	schema               string
	table                string
	statementLockTimeout time.Duration
}

func (f *lintFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.base, "base", "", "the newest version of the base: the migrations above it are new")
	fs.StringVar(&f.baseRef, "base-ref", "", "a git revision (branch, tag, commit): the migrations not in it are new")
	fs.StringVar(&f.scratchURL, "scratch-url", "", "an empty database to review in, refused (exit 2) if it holds anything (default: a throwaway native server)")
	fs.BoolVar(&f.summary, "summary", false, "print the report as markdown (the findings and the schema change), as the step summary has it")
	fs.BoolVar(&f.rules, "rules", false, "list every rule with its level and explanation, and review nothing")
	fs.BoolVar(&f.noSum, "no-sum", false, noSumUsage)
	fs.StringVar(&f.schema, "schema", migrate.DefaultSchema, "schema of the ledger table in the scratch database")
	fs.StringVar(&f.table, "table", migrate.DefaultTable, "name of the ledger table in the scratch database")
	fs.DurationVar(&f.statementLockTimeout, "migration-lock-timeout", migrate.DefaultStatementLockTimeout, "the Postgres lock_timeout the migrations will run with (as up sets it)")
}

// base is what the new migrations are compared with.
type lintBase struct {
	Ref     string `json:"ref,omitempty"`     // --base-ref as given
	Commit  string `json:"commit,omitempty"`  // what it resolved to
	Version int64  `json:"version,omitempty"` // the newest version of the base; 0 = none
	Count   int    `json:"migrations"`        // migrations in the base
}

func (t *tool) lint(ctx context.Context, f *lintFlags) error {
	if f.rules {
		return t.app.Render(rulesReport{lint.Rules()})
	}
	if f.base != "" && f.baseRef != "" {
		return exitcode.Usagef("give --base or --base-ref, not both")
	}
	head, err := t.source()
	if err != nil {
		return err
	}
	if err := t.checkSum(head, f.noSum); err != nil {
		return err
	}
	if f.baseRef == "" && f.base == "" {
		if ref := t.app.Env.Getenv("GITHUB_BASE_REF"); ref != "" {
			f.baseRef = "origin/" + ref
		}
	}
	var base, changes []*migrate.Migration
	var problems []lint.Finding
	info := lintBase{}
	switch {
	case f.baseRef != "":
		tree, err := gittree.Read(ctx, t.app.Env.Dir, f.baseRef, t.app.Path(t.app.Globals.MigrationsPath), gittree.Options{Env: t.app.Env.Environ})
		if err != nil {
			return err
		}
		info.Ref, info.Commit = f.baseRef, tree.Commit
		if tree.Exists {
			if base, err = migrate.Load(tree.FS, tree.Dir); err != nil {
				return fmt.Errorf("the migrations at %s: %w", f.baseRef, err)
			}
		}
		changes, problems = lint.CompareBase(base, head, f.baseRef)
	case f.base != "":
		v, err := strconv.ParseInt(f.base, 10, 64)
		if err != nil || v < 0 {
			return exitcode.Usagef("--base %q: not a version number", f.base)
		}
		for _, m := range head {
			if m.Version <= v {
				base = append(base, m)
			} else {
				changes = append(changes, m)
			}
		}
		info.Version = v
	default:
		changes = head
	}
	info.Count = len(base)
	if len(base) > 0 && info.Version == 0 {
		info.Version = base[len(base)-1].Version
	}

	report := &lint.Report{}
	if len(changes) > 0 {
		if report, err = t.review(ctx, f, base, changes); err != nil {
			return err
		}
	}
	r := lintReport{Base: info, Report: report, Problems: problems}
	if f.summary {
		if _, err := io.WriteString(t.app.Env.Stdout, r.markdown(t.app.Actions.WorkspacePath)); err != nil {
			return err
		}
	} else if err := t.app.Render(r); err != nil {
		return err
	}
	t.annotate(r)
	if n := r.errors(); n > 0 {
		return exitcode.Checkf("lint: %d %s in %d reviewed %s", n, plural(n, "error", "errors"), len(report.Reviewed), plural(len(report.Reviewed), "migration", "migrations"))
	}
	return nil
}

// review runs lint.Review in the scratch database: --scratch-url, or a native server whose
// base state is cached by the base's digest (a second lint of the same base copies it).
func (t *tool) review(ctx context.Context, f *lintFlags, base, changes []*migrate.Migration) (*lint.Report, error) {
	migOpts := []migrate.Option{
		migrate.WithSchema(f.schema),
		migrate.WithTable(f.table),
		migrate.WithStatementLockTimeout(f.statementLockTimeout),
	}
	opts := lint.Options{LockTimeout: f.statementLockTimeout, Migrate: migOpts, Progress: t.app.Report}
	if f.scratchURL != "" {
		conn, err := t.connectScratch(ctx, f.scratchURL)
		if err != nil {
			return nil, err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return lint.Review(ctx, conn, base, changes, opts)
	}
	if _, err := pgnative.BinDir(pgnative.WithGetenv(t.app.Env.Getenv)); err != nil {
		return nil, exitcode.Usagef("lint needs a scratch server: PostgreSQL's server binaries (initdb, postgres) were not found (%v); install them or give --scratch-url", err)
	}
	nopts := []pgnative.Option{pgnative.WithGetenv(t.app.Env.Getenv), pgnative.WithProgress(t.app.Report)}
	if len(base) > 0 {
		key, err := migrate.SetDigest(base, f.schema, f.table)
		if err != nil {
			return nil, err
		}
		nopts = append(nopts, pgnative.WithSeed("lint-base "+key, func(ctx context.Context, dsn string) error {
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				return err
			}
			defer conn.Close(context.WithoutCancel(ctx))
			m, err := migrate.New(conn, base, migOpts...)
			if err != nil {
				return err
			}
			_, err = m.Up(ctx, 0)
			return err
		}), pgnative.WithSeedCachedOnColdStart()) // the help promises the base state for the next run
	}
	srv, err := pgnative.Start(ctx, nopts...)
	if err != nil {
		return nil, fmt.Errorf("lint: scratch server: %w", err)
	}
	defer srv.Stop(context.WithoutCancel(ctx))
	t.app.AddSecret(srv.Password())
	conn, err := pgx.Connect(ctx, srv.URL())
	if err != nil {
		return nil, fmt.Errorf("lint: connect to the scratch server: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return lint.Review(ctx, conn, base, changes, opts)
}

// annotate writes an annotation per finding and the step summary under GitHub Actions.
func (t *tool) annotate(r lintReport) {
	if !t.app.Actions.Enabled() {
		return
	}
	for _, fd := range r.findings() {
		msg := t.app.Secrets.Mask(fd.Rule + ": " + fd.Message)
		if fd.Level == lint.Error {
			t.app.Actions.Error(msg, fd.File, fd.Line, fd.Col)
		} else {
			t.app.Actions.Warning(msg, fd.File, fd.Line, fd.Col)
		}
	}
	if err := t.app.Actions.AddStepSummary(t.app.Secrets.Mask(r.markdown(t.app.Actions.WorkspacePath))); err != nil {
		t.app.Logger.Warn("step summary", "err", err)
	}
}

// lintReport is what lint found: the base, the review of the new migrations, and the problems
// of the base itself (edited, removed, out-of-order migrations).
type lintReport struct {
	Base     lintBase
	Report   *lint.Report
	Problems []lint.Finding
}

// findings are every finding, the base's problems first, then in file and line order.
func (r lintReport) findings() []lint.Finding {
	out := slices.Concat(r.Problems, r.Report.Findings)
	slices.SortStableFunc(out, func(a, b lint.Finding) int {
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return a.Line - b.Line
	})
	return out
}

func (r lintReport) errors() int {
	n := 0
	for _, f := range r.findings() {
		if f.Level == lint.Error {
			n++
		}
	}
	return n
}

func (r lintReport) baseText() string {
	switch {
	case r.Base.Ref != "":
		return fmt.Sprintf("%s (%s, %d %s)", r.Base.Ref, shortCommit(r.Base.Commit), r.Base.Count, plural(r.Base.Count, "migration", "migrations"))
	case r.Base.Version > 0:
		return fmt.Sprintf("version %d (%d %s)", r.Base.Version, r.Base.Count, plural(r.Base.Count, "migration", "migrations"))
	}
	return "an empty database"
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// RenderText writes one line per finding and a closing count.
func (r lintReport) RenderText(w io.Writer) error {
	fs := r.findings()
	for _, f := range fs {
		if _, err := fmt.Fprintln(w, f.String()); err != nil {
			return err
		}
	}
	if r.Report.Incomplete != "" {
		if _, err := fmt.Fprintf(w, "review stopped early: %s\n", r.Report.Incomplete); err != nil {
			return err
		}
	}
	errs := r.errors()
	n := len(r.Report.Reviewed)
	_, err := fmt.Fprintf(w, "%d %s reviewed against %s: %d %s, %d %s",
		n, plural(n, "migration", "migrations"), r.baseText(),
		errs, plural(errs, "error", "errors"), len(fs)-errs, plural(len(fs)-errs, "warning", "warnings"))
	if err == nil && len(r.Report.Ignored) > 0 {
		_, err = fmt.Fprintf(w, ", %d ignored", len(r.Report.Ignored))
	}
	if err == nil {
		_, err = fmt.Fprintln(w)
	}
	return err
}

// RenderJSON writes the base, the reviewed migrations, the findings, the ignored ones and the
// schema change as a list of changed objects and as Diff's sentences.
func (r lintReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		Base     lintBase          `json:"base"`
		Reviewed []lint.Reviewed   `json:"reviewed"`
		Errors   int               `json:"errors"`
		Stopped  string            `json:"incomplete,omitempty"`
		Findings []lint.Finding    `json:"findings"`
		Ignored  []lint.Finding    `json:"ignored"`
		Changes  []pgschema.Change `json:"schema_changes"`
		Diff     []string          `json:"schema_diff"`
	}{
		Base:     r.Base,
		Reviewed: nonNil(r.Report.Reviewed),
		Errors:   r.errors(),
		Stopped:  r.Report.Incomplete,
		Findings: nonNil(r.findings()),
		Ignored:  nonNil(r.Report.Ignored),
		Changes:  nonNil(pgschema.Changes(r.Report.Before, r.Report.After)),
		Diff:     nonNil(r.Report.Diff),
	})
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// markdown is the report as GitHub renders it: a headline, the findings table, the schema
// change grouped into added, changed and dropped objects. where names a finding's file (the
// step summary names them from the workspace's root, as the annotations do).
func (r lintReport) markdown(where func(string) string) string {
	var b strings.Builder
	fs := r.findings()
	errs := r.errors()
	n := len(r.Report.Reviewed)
	fmt.Fprintf(&b, "### ps-migrate lint: %d %s, %d %s\n\n", errs, plural(errs, "error", "errors"), len(fs)-errs, plural(len(fs)-errs, "warning", "warnings"))
	fmt.Fprintf(&b, "%d new %s reviewed against %s.\n\n", n, plural(n, "migration", "migrations"), r.baseText())
	if r.Report.Incomplete != "" {
		fmt.Fprintf(&b, "**The review stopped early:** %s\n\n", cell(r.Report.Incomplete))
	}
	if len(fs) > 0 {
		b.WriteString("| level | rule | where | finding |\n|---|---|---|---|\n")
		for _, f := range fs {
			fmt.Fprintf(&b, "| %s | `%s` | `%s:%d` | %s |\n", f.Level, f.Rule, filepath.ToSlash(where(f.File)), f.Line, cell(f.Message))
		}
		b.WriteString("\n")
	}
	if len(r.Report.Ignored) > 0 {
		b.WriteString("<details><summary>Ignored</summary>\n\n| rule | where | reason |\n|---|---|---|\n")
		for _, f := range r.Report.Ignored {
			fmt.Fprintf(&b, "| `%s` | `%s:%d` | %s |\n", f.Rule, filepath.ToSlash(where(f.File)), f.Line, cell(f.Reason))
		}
		b.WriteString("\n</details>\n\n")
	}
	changes := pgschema.Changes(r.Report.Before, r.Report.After)
	if len(changes) == 0 {
		b.WriteString("Schema: no change.\n")
		return b.String()
	}
	b.WriteString("#### Schema change\n\n")
	for _, a := range []pgschema.Action{pgschema.Added, pgschema.Changed, pgschema.Dropped} {
		var rows []pgschema.Change
		for _, c := range changes {
			if c.Action == a {
				rows = append(rows, c)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "**%s**\n\n| kind | name | |\n|---|---|---|\n", strings.ToUpper(string(a[:1]))+string(a[1:]))
		for _, c := range rows {
			fmt.Fprintf(&b, "| %s | `%s` | %s |\n", c.Kind, c.Name, cell(strings.Join(c.Details, "; ")))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// rulesReport lists lint's rules.
type rulesReport struct{ Rules []lint.Rule }

// RenderText writes each rule: name, level, summary, then its explanation indented.
func (r rulesReport) RenderText(w io.Writer) error {
	for _, rule := range r.Rules {
		if _, err := fmt.Fprintf(w, "%s (%s): %s\n    %s\n\n", rule.Name, rule.Level, rule.Summary, rule.Explain); err != nil {
			return err
		}
	}
	return nil
}

// RenderJSON writes {"rules": [...]}.
func (r rulesReport) RenderJSON(w io.Writer) error {
	return cli.WriteJSON(w, struct {
		Rules []lint.Rule `json:"rules"`
	}{nonNil(r.Rules)})
}
