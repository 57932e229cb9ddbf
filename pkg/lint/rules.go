package lint

import (
	"fmt"
	"slices"
	"strings"
)

// Level is how serious a finding is: an error makes ps-migrate lint exit 3, a warning does not.
type Level string

// Levels.
const (
	Error   Level = "error"
	Warning Level = "warning"
)

// Rule is one kind of finding.
type Rule struct {
	Name    string `json:"name"`
	Level   Level  `json:"level"`
	Summary string `json:"summary"`
	Explain string `json:"explain"`
}

// Rule names.
const (
	RuleTableRewrite        = "table-rewrite"
	RuleBlockingIndexBuild  = "blocking-index-build"
	RuleBlockingScan        = "blocking-scan"
	RuleLockWithoutTimeout  = "lock-without-timeout"
	RuleNeedsNoTransaction  = "needs-no-transaction"
	RuleMixedNoTransaction  = "mixed-no-transaction"
	RuleRollbackNotRestored = "rollback-does-not-restore"
)

// Rules returns every rule, sorted by name.
func Rules() []Rule {
	rules := []Rule{
		{RuleTableRewrite, Error,
			"rewrites an existing table while holding a lock that blocks writes",
			"The server copied every row of a table that existed before the migration into new storage (its relfilenode changed), " +
				"and the lock it held meanwhile blocks writes (ACCESS EXCLUSIVE also blocks reads) for as long as the copy takes, which grows with the table. " +
				"Column type changes that are not binary-coercible (int to bigint, text to varchar(n), a domain with a check), " +
				"ADD COLUMN with a volatile default (random(), gen_random_uuid(), clock_timestamp(), serial) or a stored generated column, " +
				"VACUUM FULL and CLUSTER do this. The safe way: add a new column without a volatile default, backfill it in batches " +
				"outside the migration that locks, then swap the columns in a short migration; for a default, add the column first and set " +
				"the default afterwards (a non-volatile default such as now() or a constant is free since PostgreSQL 11); " +
				"for bloat, pg_repack instead of VACUUM FULL."},
		{RuleBlockingIndexBuild, Error,
			"builds an index on an existing table while holding a lock that blocks writes",
			"CREATE INDEX without CONCURRENTLY holds SHARE on the table, and ADD PRIMARY KEY / ADD UNIQUE hold ACCESS EXCLUSIVE, " +
				"for the whole build, which reads every row. The safe way: CREATE INDEX CONCURRENTLY in a migration of its own that starts with " +
				"-- poststack:no-transaction; for a primary key or unique constraint, CREATE UNIQUE INDEX CONCURRENTLY first (no-transaction), " +
				"then ALTER TABLE … ADD CONSTRAINT … PRIMARY KEY / UNIQUE USING INDEX in a later migration, which takes its lock only briefly."},
		{RuleBlockingScan, Error,
			"reads an existing table while holding a lock that blocks writes",
			"The server read the rows of a table that existed before the migration while the migration held SHARE or a stronger lock on it, " +
				"so writes (and with ACCESS EXCLUSIVE, reads) wait for the whole scan. Validating a new CHECK or FOREIGN KEY constraint, " +
				"SET NOT NULL without a validated CHECK (col IS NOT NULL), and a backfill UPDATE after an ALTER TABLE in the same transaction do this. " +
				"The safe way: add constraints NOT VALID and run ALTER TABLE … VALIDATE CONSTRAINT in a later migration (it takes SHARE UPDATE EXCLUSIVE, " +
				"which blocks neither reads nor writes); before SET NOT NULL add CHECK (col IS NOT NULL) NOT VALID, validate it in a later migration, " +
				"then SET NOT NULL skips the scan (PostgreSQL 12+) and the check can be dropped; backfill in batches in a migration that takes no lock beyond ROW EXCLUSIVE."},
		{RuleLockWithoutTimeout, Warning,
			"takes a lock that blocks writes on an existing table with no lock_timeout",
			"Even a brief lock (ADD COLUMN, a binary-coercible type change, CREATE TRIGGER) has to wait for every transaction using the table, " +
				"and while it waits every query that needs the table queues behind it: a long-running SELECT then stops the application. " +
				"ps-migrate runs migrations with a lock_timeout (--lock-timeout, 10s by default) so that such a migration fails instead, " +
				"which is why this warning only appears when the review runs without one or the migration sets lock_timeout to 0. " +
				"The safe way: keep the lock_timeout, and retry the migration when it times out."},
		{RuleNeedsNoTransaction, Error,
			"cannot run inside a transaction, but the file is not marked no-transaction",
			"PostgreSQL refused the statement inside a transaction block (SQLSTATE 25001: CREATE INDEX CONCURRENTLY, REINDEX CONCURRENTLY, " +
				"VACUUM, ALTER SYSTEM, CREATE DATABASE…), so ps-migrate up fails on it. The safe way: put it in a migration of its own whose first " +
				"line is -- poststack:no-transaction. The review goes on as if the file were marked, so that the findings after it are real."},
		{RuleMixedNoTransaction, Warning,
			"a no-transaction migration also holds statements that could run in a transaction",
			"A file marked -- poststack:no-transaction runs statement by statement: when one fails, the ones before it stay applied and the " +
				"migration is not recorded, so running it again fails on what is already there. Only statements that need it (CREATE INDEX CONCURRENTLY…) " +
				"belong there, ideally one per file. The safe way: move the statements that can run in a transaction (those that change something: " +
				"the review saw them take a lock) into a migration of their own without the marker."},
		{RuleRollbackNotRestored, Error,
			"the rollback does not give back the schema the migration started from",
			"The review rolled the migration back with its .rollback.sql file and compared the catalog (pkg/pgschema) with the one before the " +
				"migration, then applied it again and compared with its first application, as ps-migrate verify --rollback does. " +
				"A difference means ps-migrate down would leave another schema than the one the previous version expects. " +
				"The safe way: make the rollback undo exactly what the migration does (drop what it creates, recreate what it drops). " +
				"A migration without a rollback file is not reported."},
	}
	rules = append(rules, baseRules()...)
	slices.SortFunc(rules, func(a, b Rule) int { return strings.Compare(a.Name, b.Name) })
	return rules
}

// ruleLevel returns the level of the rule named name.
func ruleLevel(name string) (Level, bool) {
	for _, r := range Rules() {
		if r.Name == name {
			return r.Level, true
		}
	}
	return "", false
}

// ruleNames lists the rule names, for a usage error.
func ruleNames() string {
	var names []string
	for _, r := range Rules() {
		names = append(names, r.Name)
	}
	return strings.Join(names, ", ")
}

// String is "FILE:LINE:COL: level RULE: message".
func (f Finding) String() string {
	return fmt.Sprintf("%s:%d:%d: %s %s: %s", f.File, f.Line, f.Col, f.Level, f.Rule, f.Message)
}
