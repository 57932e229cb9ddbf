package adopt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

// Row is one row adoption writes into our ledger, and what it comes from.
type Row struct {
	migrate.Adopted
	// File is our migration file of the version.
	File string
	// RollbackFrom says where Rollback comes from: our rollback file, "sql_down" (the Python
	// tool's copy, when we have no rollback file) or "" for none.
	RollbackFrom string
}

// Drift is a version whose file is not the one the Python tool applied: its checksum differs.
type Drift struct {
	Version int64
	File    string
	// Theirs is the checksum the Python tool recorded, Ours the file's.
	Theirs, Ours string
}

// Plan is what adopting a ledger writes, and what stops it.
type Plan struct {
	Tool  Tool
	Table string
	Rows  []Row
	// Unmatched are applied versions no file of the migrations directory has.
	Unmatched []Applied
	// Drifts are the Python tool's checksums that our files do not have.
	Drifts []Drift
	// Skipped are files the other tool did not apply although it applied newer ones: `up`
	// applies them only with --allow-out-of-order.
	Skipped []string
	// NoTimes is set when the tool records no applied time (golang-migrate): the rows get the
	// time they are written.
	NoTimes bool
}

// NewPlan matches the ledger's applied versions with the migrations (as migrate.LoadDir
// returns them) by number. It reads the rollback files it needs; an error doing that is the
// only error it returns: what the plan finds wrong is Plan.Check's.
func NewPlan(l *Ledger, migs []*migrate.Migration) (*Plan, error) {
	p := &Plan{Tool: l.Tool, Table: l.Table, NoTimes: l.Tool == GolangMigrate}
	byVersion := make(map[int64]*migrate.Migration, len(migs))
	for _, m := range migs {
		byVersion[m.Version] = m
	}
	applied := l.Applied
	if l.Tool == GolangMigrate && l.UpTo > 0 {
		if _, ok := byVersion[l.UpTo]; !ok {
			p.Unmatched = append(p.Unmatched, l.Applied...)
		}
		applied = nil
		for _, m := range migs {
			if m.Version <= l.UpTo {
				applied = append(applied, Applied{Version: m.Version, Label: fmt.Sprint(m.Version)})
			}
		}
	}
	done := map[int64]bool{}
	var newest int64
	for _, a := range applied {
		m := byVersion[a.Version]
		if m == nil || done[a.Version] {
			p.Unmatched = append(p.Unmatched, a)
			continue
		}
		done[a.Version] = true
		newest = max(newest, a.Version)
		r := Row{File: m.Up.File, Adopted: migrate.Adopted{
			Version: m.Version, Name: m.Name, Checksum: m.Checksum,
			AppliedAt: a.AppliedAt, AppliedBy: a.AppliedBy, Duration: a.Duration,
		}}
		if r.AppliedBy == "" {
			r.AppliedBy = l.Tool.AppliedBy()
		}
		if m.Down != nil {
			text, err := m.Down.Text()
			if err != nil {
				return nil, err
			}
			r.Rollback, r.RollbackFrom = &text, m.Down.File
		} else if a.Down != nil && strings.TrimSpace(*a.Down) != "" {
			down := *a.Down
			r.Rollback, r.RollbackFrom = &down, "sql_down"
		}
		if a.Checksum != "" {
			text, err := m.Up.Text()
			if err != nil {
				return nil, err
			}
			if !sameFile(a.Checksum, m.Checksum, text) {
				p.Drifts = append(p.Drifts, Drift{Version: m.Version, File: m.Up.File, Theirs: a.Checksum, Ours: m.Checksum})
			}
		}
		p.Rows = append(p.Rows, r)
	}
	for _, m := range migs {
		if m.Version < newest && !done[m.Version] {
			p.Skipped = append(p.Skipped, m.Up.File)
		}
	}
	return p, nil
}

// sameFile tells whether the Python tool's checksum is one of our file's text: as we hash it
// (line endings normalised, which is also what Python's text mode reads), without the byte
// order mark, or with CRLF line endings as a binary read of a Windows file gives.
func sameFile(theirs, ours, text string) bool {
	theirs = strings.ToLower(strings.TrimSpace(theirs))
	if theirs == ours {
		return true
	}
	for _, t := range []string{text, strings.ReplaceAll(text, "\n", "\r\n")} {
		sum := sha256.Sum256([]byte(t))
		if theirs == hex.EncodeToString(sum[:]) {
			return true
		}
	}
	return false
}

// MismatchError lists applied versions that match no migration file. Exit code 3.
type MismatchError struct {
	Tool      Tool
	Unmatched []Applied
}

func (e *MismatchError) Error() string {
	labels := make([]string, len(e.Unmatched))
	for i, a := range e.Unmatched {
		labels[i] = a.Label
	}
	return fmt.Sprintf("%d %s applied by %s %s no file in the migrations directory (%s); nothing was written",
		len(e.Unmatched), plural(len(e.Unmatched), "version", "versions"), e.Tool, plural(len(e.Unmatched), "has", "have"), strings.Join(labels, ", "))
}

// ExitCode is 3: a check found a problem.
func (e *MismatchError) ExitCode() int { return exitcode.Check }

// DriftError lists files that are not the ones the Python tool applied. Exit code 3.
type DriftError struct {
	Drifts []Drift
}

func (e *DriftError) Error() string {
	files := make([]string, len(e.Drifts))
	for i, d := range e.Drifts {
		files[i] = d.File
	}
	return fmt.Sprintf("%d %s changed since the Python poststack applied %s (%s); nothing was written (--allow-drift adopts them as they are now)",
		len(e.Drifts), plural(len(e.Drifts), "file", "files"), plural(len(e.Drifts), "it", "them"), strings.Join(files, ", "))
}

// ExitCode is 3: a check found a problem.
func (e *DriftError) ExitCode() int { return exitcode.Check }

// Check returns what stops the plan from being written: unmatched versions (*MismatchError),
// then, unless allowDrift, drifted files (*DriftError).
func (p *Plan) Check(allowDrift bool) error {
	if len(p.Unmatched) > 0 {
		return &MismatchError{Tool: p.Tool, Unmatched: p.Unmatched}
	}
	if len(p.Drifts) > 0 && !allowDrift {
		return &DriftError{Drifts: p.Drifts}
	}
	return nil
}

// Adopted returns the rows to write.
func (p *Plan) Adopted() []migrate.Adopted {
	out := make([]migrate.Adopted, len(p.Rows))
	for i, r := range p.Rows {
		out[i] = r.Adopted
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
