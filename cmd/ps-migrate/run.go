package main

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/migrate"
)

// runReport is what up and down did: the migrations that ran, in order,
// and the error that stopped the run ("" when none did).
type runReport struct {
	// Verb says what happened to each: "applied", "rolled back".
	Verb    string
	Results []migrate.Result
	// Error is the one-line message of the error, masked.
	Error string
}

// newRunReport is the report of a run that returned results and err: what
// a *migrate.PartialError says was applied, and err's one-line message
// passed through mask.
func newRunReport(verb string, results []migrate.Result, err error, mask func(string) string) runReport {
	var pe *migrate.PartialError
	if errors.As(err, &pe) {
		results = pe.Applied
	}
	r := runReport{Verb: verb, Results: results}
	if err != nil {
		r.Error = mask(err.Error())
	}
	return r
}

// RenderText lists what ran, "applied 0001_users (3ms)", or "nothing to
// do"; the error itself goes to stderr.
func (r runReport) RenderText(w io.Writer) error {
	for _, res := range r.Results {
		if _, err := fmt.Fprintf(w, "%s %s (%s)\n", r.Verb, migrate.Label(res.Version, res.Name, res.Migration), res.Duration.Round(time.Millisecond)); err != nil {
			return err
		}
	}
	if len(r.Results) == 0 && r.Error == "" {
		_, err := fmt.Fprintln(w, "nothing to do")
		return err
	}
	return nil
}

type resultJSON struct {
	Version    int64  `json:"version"`
	Name       string `json:"name"`
	Direction  string `json:"direction"`
	DurationMS int64  `json:"duration_ms"`
}

// RenderJSON writes {"error": null or the message, "results": [...]}.
func (r runReport) RenderJSON(w io.Writer) error {
	out := struct {
		Error   *string      `json:"error"`
		Results []resultJSON `json:"results"`
	}{Results: []resultJSON{}}
	if r.Error != "" {
		out.Error = &r.Error
	}
	for _, res := range r.Results {
		out.Results = append(out.Results, resultJSON{res.Version, res.Name, string(res.Direction), res.Duration.Milliseconds()})
	}
	return cli.WriteJSON(w, out)
}

// finish renders what a run did, writes the step summary under GitHub
// Actions and an annotation at a failing migration's line, and returns err
// for the exit code and the stderr report.
func (t *tool) finish(verb string, results []migrate.Result, err error) error {
	r := newRunReport(verb, results, err, t.app.Secrets.Mask)
	if rerr := t.app.Render(r); rerr != nil {
		return errors.Join(err, rerr)
	}
	t.summary(r)
	var me *migrate.MigrationError
	if errors.As(err, &me) {
		t.app.Actions.Error(t.app.Secrets.Mask(me.Error()), me.File, me.Line, me.Col)
	}
	return err
}

// summary writes the GitHub Actions step summary: what ran and how long.
func (t *tool) summary(r runReport) {
	if !t.app.Actions.Enabled() || (len(r.Results) == 0 && r.Error == "") {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### ps-migrate %s\n\n| version | name | direction | duration |\n|---:|---|---|---:|\n", r.Verb)
	for _, res := range r.Results {
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", res.Version, res.Name, res.Direction, res.Duration.Round(time.Millisecond))
	}
	if r.Error != "" {
		fmt.Fprintf(&b, "\n**Failed:** `%s`\n", strings.ReplaceAll(firstLine(r.Error), "`", "'"))
	}
	if serr := t.app.Actions.AddStepSummary(b.String()); serr != nil {
		t.app.Logger.Warn("step summary", "err", serr)
	}
}
