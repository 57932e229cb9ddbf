// Package lint reviews new migrations by running them in a scratch database and asking
// PostgreSQL what each statement did, rather than guessing from the SQL text.
//
// Review brings the scratch database to the base state (the base migrations applied by a
// Migrator; a scratch that already holds them, applied by the same ledger, is used as it is),
// puts a few rows in every table (Options.Rows; generated per column type, referenced tables
// first, each insert under a savepoint, a table that refuses them is left empty) so that scans
// and rewrites show, then applies each change in version order, as ps-migrate up would (with
// its lock_timeout), and leaves it applied with its ledger row.
//
// # How detection works
//
// Before a change, one query lists the tables that exist (their OIDs, relfilenodes, sizes and
// the relfilenodes of their indexes). A transactional change runs in one transaction,
// statement by statement (pkg/sqlscan.Split), and after each statement one query reads, for
// this backend and those tables: the lock modes held (pg_locks), the tables whose relfilenode
// changed (a rewrite; new empty storage with no row read is a TRUNCATE, not a rewrite), the
// rows read so far (the counters behind pg_stat_xact_user_tables: seq_tup_read and heap
// fetches), the indexes whose storage is new (built, not reused as a binary-coercible type
// change reuses them), and lock_timeout. The difference between two observations is what the
// statement did; locks accumulate, so a table locked by one statement and scanned by a later
// one counts against the later one ("writes blocked since line N"). The rules key on those
// answers only; the statement's text only places the finding.
//
// A no-transaction change runs statement by statement; each statement that can run in a
// transaction runs in one of its own so it can be observed the same way (outside a transaction
// block it would be a transaction of its own anyway). One that cannot (SQLSTATE 25001: CREATE
// INDEX CONCURRENTLY, VACUUM …) runs outside while a second connection holds ROW EXCLUSIVE (the
// lock of INSERT, UPDATE, DELETE) on every table: a statement that needs a lock which blocks
// writes must wait for it, pg_locks shows the mode it waits for, and the second connection lets
// go at once (as it does when the statement waits for its transaction, as CONCURRENTLY does).
// Rewrites and index builds of such a statement are seen afterwards; the rows it reads are not.
//
// A transactional change that hits 25001 is reported (needs-no-transaction), rolled back and
// reviewed again as a no-transaction one, so the review goes on. A change that fails with
// another SQL error stops the review with a *migrate.MigrationError at file:line:col.
//
// A change with a rollback file is then rolled back and applied again, and the schema compared
// both times (pkg/pgschema), as ps-migrate verify --rollback does (migrate.CheckRollback). When
// the change and its rollback both run in a transaction, a trial finds what to compare first:
// before the change is applied, both run in a transaction that is rolled back, and the
// relations they lock (DDL locks what it alters; a new relation is locked by its creator), with
// the tables whose columns, defaults, constraints, indexes or triggers depend on something they
// lock (a renamed collation, function or referenced table), are the only tables and sequences
// the comparisons read (pgschema.Only); schemas, extensions, types, views and functions are
// read in full, so what changes without a lock (CREATE FUNCTION …) is compared too. The check
// then costs with what the change touches, not with the size of the schema. A trial that fails
// falls back to comparing whole schemas, as does a no-transaction change or rollback.
//
// After such a trial the check itself is made in its transaction, before the change is
// applied: back in the state before it, the change, its rollback and the change again run, and
// one query (pgschema.Fingerprint, equal only for equal snapshots) compares the state after
// each with the one it must equal. Nothing of it is committed; the change is then applied and
// observed as one without a rollback file. A difference, a failing statement, a deferred
// constraint that COMMIT would find violated, or a setting a step changed (SET LOCAL would end
// with its own transaction) sends the change to the committed check above, which also says
// what differs.
//
// # Rules
//
//   - table-rewrite (error): a table that existed before the change was rewritten while a lock
//     that blocks writes (SHARE, SHARE ROW EXCLUSIVE, EXCLUSIVE, ACCESS EXCLUSIVE) was held on it.
//   - blocking-index-build (error): an index was built on such a table under such a lock.
//   - blocking-scan (error): rows of such a table were read under such a lock. A scan under
//     SHARE UPDATE EXCLUSIVE (VALIDATE CONSTRAINT) or weaker is fine and not reported.
//   - lock-without-timeout (warning): a statement took a lock that blocks writes on such a table,
//     with no work as above, while lock_timeout was 0 (as the server reports it after the
//     statement): when the review runs with Options.LockTimeout < 0, or the change sets
//     lock_timeout to 0. With ps-migrate's lock_timeout such a brief lock is not reported.
//   - needs-no-transaction (error): the server refused a statement inside a transaction block
//     and the file is not marked -- poststack:no-transaction.
//   - mixed-no-transaction (warning): a no-transaction file of several statements, at least one
//     of which ran in a transaction and took a lock above ACCESS SHARE (it changed something),
//     and another that either needed no-transaction or changed something too; reported at the
//     first such statement. A SET or a SELECT beside CREATE INDEX CONCURRENTLY is fine.
//   - rollback-does-not-restore (error): the rollback left another schema than the one before
//     the change, or applying the change again gave another schema than the first time; at the
//     rollback file, line 1 (or where the rollback failed). A change without a rollback file is
//     not reported.
//
// "-- poststack:lint-ignore RULE reason", as a trailing comment on a statement's first line or
// on the comment lines right above it, moves that rule's finding for that statement to
// Report.Ignored; in a rollback file's leading comment lines it ignores rollback-does-not-restore.
// One without a reason, with an unknown rule or on no statement is a usage error (exit 2).
package lint
