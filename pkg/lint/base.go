package lint

import (
	"fmt"

	"github.com/poststack/poststack/pkg/migrate"
)

// The rules about the base itself: what a branch did to migrations its base already holds.
// They need no server: CompareBase finds them from the files.
const (
	RuleEditedMigration  = "edited-migration"
	RuleRemovedMigration = "removed-migration"
	RuleOutOfOrder       = "out-of-order-migration"
)

func baseRules() []Rule {
	return []Rule{
		{RuleEditedMigration, Error,
			"changes a migration that the base already holds",
			"A migration in the base branch has been applied wherever the base was deployed; an edit to its file changes nothing there " +
				"(ps-migrate up stops on the drift, exit 3, until --allow-drift) and makes fresh databases differ from deployed ones. " +
				"The safe way: leave applied migrations as they are and add a new migration that makes the change."},
		{RuleRemovedMigration, Error,
			"removes a migration that the base holds",
			"Databases that applied the migration keep what it did and its ledger row, and ps-migrate status reports the row without a file; " +
				"its rollback is then only the copy kept in the ledger. The safe way: keep the file, and add a new migration that undoes it."},
		{RuleOutOfOrder, Error,
			"adds a migration numbered below the newest one of the base",
			"A database already at the base's newest version would have to apply an older number after newer ones, so its schema " +
				"would be built in another order than a fresh database's (ps-migrate up refuses it unless told otherwise). This happens when " +
				"a branch made its migration before another branch's landed. The safe way: renumber it above the base's newest " +
				"(rename both files; ps-migrate new picks the next number) and run ps-migrate hash."},
	}
}

// CompareBase splits head, the migrations of a branch, at base, those of the commit it will
// merge into: it returns the migrations head adds (those whose versions base lacks, in head's
// order) and a finding, at line 1 of the file, for each migration of base that head edited
// (another checksum) or removed, and for each added one numbered below base's newest. ref
// names the base in messages ("origin/main").
func CompareBase(base, head []*migrate.Migration, ref string) (changes []*migrate.Migration, findings []Finding) {
	byVersion := map[int64]*migrate.Migration{}
	for _, m := range head {
		byVersion[m.Version] = m
	}
	var newest int64
	inBase := map[int64]bool{}
	for _, b := range base {
		inBase[b.Version] = true
		newest = max(newest, b.Version)
		h, ok := byVersion[b.Version]
		switch {
		case !ok:
			findings = append(findings, Finding{Rule: RuleRemovedMigration, Level: Error, File: b.Up.File, Line: 1, Col: 1, Version: b.Version,
				Message: fmt.Sprintf("migration %s is in %s but was removed: databases that applied it keep it; keep the file and add a new migration that undoes it",
					migrate.Label(b.Version, b.Name, b), ref)})
		case h.Checksum != b.Checksum:
			findings = append(findings, Finding{Rule: RuleEditedMigration, Level: Error, File: h.Up.File, Line: 1, Col: 1, Version: h.Version,
				Message: fmt.Sprintf("migration %s changed since %s: databases that applied it will not run it again; add a new migration instead",
					migrate.Label(h.Version, h.Name, h), ref)})
		}
	}
	for _, h := range head {
		if inBase[h.Version] {
			continue
		}
		changes = append(changes, h)
		if h.Version < newest {
			findings = append(findings, Finding{Rule: RuleOutOfOrder, Level: Error, File: h.Up.File, Line: 1, Col: 1, Version: h.Version,
				Message: fmt.Sprintf("version %d is below %d, the newest of %s: renumber it above (ps-migrate new picks the next number)", h.Version, newest, ref)})
		}
	}
	return changes, findings
}
