package lint

import (
	"fmt"
	"sort"
	"strings"
)

// pending is a finding for statement stmt of a change, kept until the change is known to
// stand (a transactional file that turns out to need no-transaction is reviewed again).
type pending struct {
	stmt int
	f    Finding
}

// judge turns what each statement of one change did into findings. The rules read only the
// server's answers (lock modes, rewrites, index builds, rows read); the statement's text only
// places the finding.
type judge struct {
	p changePlan
	b *baseline
	// since is, per table, the line of the statement from which the current transaction has
	// held a lock on it that blocks writes.
	since map[uint32]int
}

func newJudge(p changePlan, b *baseline) *judge {
	return &judge{p: p, b: b, since: map[uint32]int{}}
}

// reset starts a new transaction: no lock is held any more.
func (j *judge) reset() { j.since = map[uint32]int{} }

func (j *judge) judge(i int, e effect) []pending {
	st := j.p.stmts[i]
	oids := make([]uint32, 0, len(e.held)+len(e.work))
	seen := map[uint32]bool{}
	for oid := range e.held {
		oids, seen[oid] = append(oids, oid), true
	}
	for oid := range e.work {
		if !seen[oid] {
			oids = append(oids, oid)
		}
	}
	sort.Slice(oids, func(a, b int) bool { return j.b.tables[oids[a]].name < j.b.tables[oids[b]].name })

	var rewrites, builds, scans, brief []string
	for _, oid := range oids {
		held := e.held[oid] & blocksWrites
		name := j.b.tables[oid].name
		if held != 0 && j.since[oid] == 0 {
			j.since[oid] = st.Line
		}
		w := e.work[oid]
		if held != 0 && w != nil && w.any() {
			how := held.strongest()
			if l := j.since[oid]; l != st.Line {
				how += fmt.Sprintf(", writes blocked since line %d", l)
			}
			switch {
			case w.rewrite:
				rewrites = append(rewrites, fmt.Sprintf("%s (under %s)", name, how))
			case len(w.builds) > 0:
				sort.Strings(w.builds)
				builds = append(builds, fmt.Sprintf("%s on %s (under %s)", strings.Join(w.builds, ", "), name, how))
			default:
				scans = append(scans, fmt.Sprintf("%s (%d %s read under %s)", name, w.reads, plural(w.reads, "row", "rows"), how))
			}
			continue
		}
		if add := e.added[oid] & blocksWrites; add != 0 && e.lockTimeout == "0" {
			brief = append(brief, fmt.Sprintf("%s on %s", add.strongest(), name))
		}
	}
	var out []pending
	emit := func(rule, msg string) { out = append(out, pending{i, Finding{Rule: rule, Message: msg}}) }
	if len(rewrites) > 0 {
		emit(RuleTableRewrite, fmt.Sprintf("rewrote %s, blocking writes until the copy ends; instead add a new column, backfill it in batches and swap, and keep type changes binary-coercible and defaults non-volatile",
			strings.Join(rewrites, ", ")))
	}
	if len(builds) > 0 {
		emit(RuleBlockingIndexBuild, fmt.Sprintf("built index %s, blocking writes for the whole build; instead CREATE INDEX CONCURRENTLY in a -- poststack:no-transaction migration (for a primary key or unique constraint: CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX)",
			strings.Join(builds, ", ")))
	}
	if len(scans) > 0 {
		emit(RuleBlockingScan, fmt.Sprintf("scanned %s, blocking writes for the whole scan; instead add constraints NOT VALID and VALIDATE CONSTRAINT in a later migration (before SET NOT NULL: a validated CHECK (col IS NOT NULL)), and backfill in a migration that takes no such lock",
			strings.Join(scans, ", ")))
	}
	if len(brief) > 0 {
		emit(RuleLockWithoutTimeout, fmt.Sprintf("took %s with lock_timeout 0: while it waits for a running transaction every query on the table queues behind it; keep ps-migrate's lock_timeout",
			strings.Join(brief, ", ")))
	}
	return out
}

func plural(n int64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
