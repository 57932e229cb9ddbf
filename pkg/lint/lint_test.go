package lint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// want is one expected finding: rule, level, file and line.
type want struct {
	rule  string
	level Level
	file  string
	line  int
}

func (w want) String() string { return fmt.Sprintf("%s:%d: %s %s", w.file, w.line, w.level, w.rule) }

func got(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, want{f.Rule, f.Level, f.File, f.Line}.String())
	}
	return out
}

func wanted(ws []want) []string {
	out := []string{}
	for _, w := range ws {
		out = append(out, w.String())
	}
	slices.Sort(out)
	return out
}

func connect(tb testing.TB) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testenv.Database(tb))
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func loadDir(tb testing.TB, dir string) []*migrate.Migration {
	tb.Helper()
	migs, err := migrate.Load(os.DirFS(dir), ".")
	if err != nil {
		tb.Fatalf("load %s: %v", dir, err)
	}
	return migs
}

func loadMap(tb testing.TB, files map[string]string) []*migrate.Migration {
	tb.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	migs, err := migrate.Load(fsys, ".")
	if err != nil {
		tb.Fatalf("load: %v", err)
	}
	return migs
}

func review(tb testing.TB, conn *pgx.Conn, base, changes []*migrate.Migration, opts Options) *Report {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Review(ctx, conn, base, changes, opts)
	if err != nil {
		tb.Fatalf("Review: %v", err)
	}
	return rep
}

// TestCorpus reviews each case of testdata/corpus (its migrations on top of corpus/base) in a
// database of its own and checks every finding: rule, level, file and line, and nothing on
// the safe ones. The comments in the files say why each is safe or not, after the PostgreSQL
// 15 documentation on ALTER TABLE and explicit locking.
func TestCorpus(t *testing.T) {
	cases := map[string]struct {
		findings []want
		ignored  []want
	}{
		"01_varchar_widen":               {},
		"02_int_to_bigint":               {findings: []want{{RuleTableRewrite, Error, "0100_quantity_bigint.sql", 2}}},
		"03_default_now":                 {},
		"04_default_random":              {findings: []want{{RuleTableRewrite, Error, "0100_sample.sql", 2}}},
		"05_default_uuid":                {findings: []want{{RuleTableRewrite, Error, "0100_token.sql", 2}}},
		"06_create_index":                {findings: []want{{RuleBlockingIndexBuild, Error, "0100_orders_note.sql", 2}}},
		"07_create_index_concurrently":   {},
		"08_add_fk":                      {findings: []want{{RuleBlockingScan, Error, "0100_orders_customer.sql", 2}}},
		"09_fk_not_valid_then_validate":  {},
		"10_set_not_null":                {findings: []want{{RuleBlockingScan, Error, "0100_quantity_not_null.sql", 2}}},
		"11_set_not_null_after_check":    {},
		"12_add_check":                   {findings: []want{{RuleBlockingScan, Error, "0100_amount_positive.sql", 2}}},
		"13_add_check_not_valid":         {},
		"14_index_on_new_table":          {},
		"15_add_column_nullable":         {},
		"16_drop_column":                 {},
		"17_varchar_to_text":             {},
		"18_text_to_varchar":             {findings: []want{{RuleTableRewrite, Error, "0100_name_varchar.sql", 2}}},
		"19_numeric_widen":               {},
		"20_concurrently_in_transaction": {findings: []want{{RuleNeedsNoTransaction, Error, "0100_orders_placed.sql", 2}}},
		"21_no_transaction_mixed":        {findings: []want{{RuleMixedNoTransaction, Warning, "0100_note_index_and_coupon.sql", 4}}},
		"22_rollback_not_restoring":      {findings: []want{{RuleRollbackNotRestored, Error, "0100_coupon.rollback.sql", 1}}},
		"23_rollback_restores":           {},
		"24_lint_ignore": {
			findings: []want{{RuleBlockingIndexBuild, Error, "0100_ignored.sql", 5}},
			ignored:  []want{{RuleBlockingIndexBuild, Error, "0100_ignored.sql", 2}, {RuleTableRewrite, Error, "0100_ignored.sql", 3}},
		},
		"25_add_primary_key":           {findings: []want{{RuleBlockingIndexBuild, Error, "0100_audit_pkey.sql", 2}}},
		"26_unique_using_index":        {},
		"27_vacuum_full":               {findings: []want{{RuleTableRewrite, Error, "0100_vacuum_orders.sql", 3}}},
		"28_backfill_under_lock":       {findings: []want{{RuleBlockingScan, Error, "0100_status.sql", 3}}},
		"29_validate_same_transaction": {findings: []want{{RuleBlockingScan, Error, "0100_amount_positive.sql", 3}}},
		"30_no_lock_timeout":           {findings: []want{{RuleLockWithoutTimeout, Warning, "0100_coupon.sql", 3}}},
		"31_cluster":                   {findings: []want{{RuleTableRewrite, Error, "0100_cluster_orders.sql", 2}}},
		"32_rollback_ignored":          {ignored: []want{{RuleRollbackNotRestored, Error, "0100_coupon.rollback.sql", 1}}},
	}
	dirs, err := os.ReadDir("testdata/corpus")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, d := range dirs {
		if d.Name() == "base" {
			continue
		}
		seen++
		if _, ok := cases[d.Name()]; !ok {
			t.Errorf("corpus case %s has no expectation", d.Name())
		}
	}
	if seen != len(cases) || seen < 20 {
		t.Errorf("corpus has %d cases, expectations %d (want at least 20)", seen, len(cases))
	}
	base := loadDir(t, "testdata/corpus/base")
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			changes := loadDir(t, filepath.Join("testdata/corpus", name))
			rep := review(t, connect(t), base, changes, Options{})
			t.Logf("findings:\n%signored:\n%s", messages(rep.Findings), messages(rep.Ignored))
			if g, w := got(rep.Findings), wanted(c.findings); !slices.Equal(g, w) {
				t.Errorf("findings:\n got %q\nwant %q\n%s", g, w, messages(rep.Findings))
			}
			if g, w := got(rep.Ignored), wanted(c.ignored); !slices.Equal(g, w) {
				t.Errorf("ignored:\n got %q\nwant %q", g, w)
			}
			for _, f := range rep.Ignored {
				if f.Reason == "" {
					t.Errorf("ignored %s has no reason", f)
				}
			}
			if len(rep.Reviewed) != len(changes) {
				t.Errorf("reviewed %d of %d changes", len(rep.Reviewed), len(changes))
			}
		})
	}
}

func messages(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.String() + "\n")
	}
	return b.String()
}

// TestServerNotText: the rules follow what the server did, so a statement that looks harmless
// but rewrites or scans is caught, and one that looks dangerous but does neither is not.
func TestServerNotText(t *testing.T) {
	base := loadMap(t, map[string]string{"0001_base.sql": `
CREATE TABLE t (id int PRIMARY KEY, v varchar(20), n int, ts timestamp, CONSTRAINT n_present CHECK (n IS NOT NULL));
CREATE INDEX t_v ON t (v);
CREATE TABLE p (id int PRIMARY KEY);
`})
	cases := []struct {
		name string
		sql  string
		want []want // file is always 0100_change.sql
	}{
		// Harmless-looking, but the server rewrites or reads the table under a lock that blocks writes.
		{"a serial column", "ALTER TABLE t ADD COLUMN seq serial;", []want{{RuleTableRewrite, Error, "", 1}}},
		{"a stored generated column", "ALTER TABLE t ADD COLUMN double int GENERATED ALWAYS AS (id * 2) STORED;", []want{{RuleTableRewrite, Error, "", 1}}},
		{"a type change to a domain", "CREATE DOMAIN positive AS int CHECK (VALUE > 0);\nALTER TABLE t ALTER COLUMN n TYPE positive;", []want{{RuleTableRewrite, Error, "", 2}}},
		{"timestamp to timestamptz outside UTC", "SET LOCAL TimeZone = 'Europe/Paris';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", []want{{RuleTableRewrite, Error, "", 2}}},
		{"a comment-only looking update", "UPDATE t SET v = v; -- touch\nLOCK TABLE t IN SHARE MODE;\nSELECT count(*) FROM t;", []want{{RuleBlockingScan, Error, "", 3}}},
		// Scary-looking, but a catalog change the server makes without reading the table.
		{"varchar(20) to varchar(200) on an indexed column", "ALTER TABLE t ALTER COLUMN v TYPE varchar(200);", nil},
		{"NOT NULL with a default", "ALTER TABLE t ADD COLUMN flag int NOT NULL DEFAULT 0;", nil},
		{"SET NOT NULL behind a validated CHECK", "ALTER TABLE t ALTER COLUMN n SET NOT NULL;", nil},
		{"a new column with a foreign key", "ALTER TABLE t ADD COLUMN p_id int REFERENCES p (id);", nil},
		{"timestamp to timestamptz in UTC", "SET LOCAL TimeZone = 'UTC';\nALTER TABLE t ALTER COLUMN ts TYPE timestamptz;", nil},
		{"an UPDATE of every row (ROW EXCLUSIVE blocks no writer)", "UPDATE t SET v = 'x';", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			changes := loadMap(t, map[string]string{"0100_change.sql": c.sql})
			rep := review(t, connect(t), base, changes, Options{})
			for i := range c.want {
				c.want[i].file = "0100_change.sql"
			}
			if g, w := got(rep.Findings), wanted(c.want); !slices.Equal(g, w) {
				t.Errorf("findings:\n got %q\nwant %q\n%s", g, w, messages(rep.Findings))
			}
		})
	}
}

// TestNoLockTimeout: a brief ACCESS EXCLUSIVE is a warning only when the review runs with no
// lock_timeout.
func TestNoLockTimeout(t *testing.T) {
	base := loadDir(t, "testdata/corpus/base")
	changes := loadDir(t, "testdata/corpus/15_add_column_nullable")
	rep := review(t, connect(t), base, changes, Options{LockTimeout: -1})
	if g, w := got(rep.Findings), []string{"0100_coupon.sql:2: warning lock-without-timeout"}; !slices.Equal(g, w) {
		t.Errorf("findings: got %q, want %q", g, w)
	}
	if !strings.Contains(rep.Findings[0].Message, "ACCESS EXCLUSIVE on orders") {
		t.Errorf("message %q does not name the lock and the table", rep.Findings[0].Message)
	}
}

// TestReport checks what a review leaves: the ledger as up would have it, the schema diff,
// the reviewed list, and the finding's text.
func TestReport(t *testing.T) {
	conn := connect(t)
	base := loadDir(t, "testdata/corpus/base")
	changes := loadDir(t, "testdata/corpus/11_set_not_null_after_check")
	changes = append(changes, loadDir(t, "testdata/corpus/06_create_index")[0])
	changes[3].Version = 103 // after the three of case 11
	rep := review(t, conn, base, changes, Options{Rows: 10})
	if rep.Errors() != 1 || rep.Warnings() != 0 {
		t.Fatalf("errors %d, warnings %d: %s", rep.Errors(), rep.Warnings(), messages(rep.Findings))
	}
	f := rep.Findings[0]
	if f.Version != 103 || f.Col != 1 || f.Statement != "CREATE INDEX orders_note ON orders (note)" {
		t.Errorf("finding %+v", f)
	}
	if s := f.String(); !strings.HasPrefix(s, "0100_orders_note.sql:2:1: error blocking-index-build: built index orders_note on orders (under SHARE)") ||
		!strings.Contains(s, "CONCURRENTLY") {
		t.Errorf("String() = %q", s)
	}
	var versions []int64
	rows, err := conn.Query(context.Background(), "SELECT version FROM poststack.schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(versions, []int64{1, 100, 101, 102, 103}) {
		t.Errorf("ledger versions %v", versions)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM orders").Scan(&n); err != nil || n != 10 {
		t.Errorf("orders has %d rows (%v), want 10", n, err)
	}
	if len(rep.Reviewed) != 4 || rep.Reviewed[2].Statements != 2 || rep.Reviewed[2].File != "0102_quantity_not_null.sql" {
		t.Errorf("reviewed %+v", rep.Reviewed)
	}
	joined := strings.Join(rep.Diff, "\n")
	if !strings.Contains(joined, "orders_note") || !strings.Contains(joined, "quantity") {
		t.Errorf("diff does not show the index and the NOT NULL:\n%s", joined)
	}
	if rep.Before == nil || rep.After == nil {
		t.Fatal("no schemas")
	}

	// The same scratch, holding exactly the base and these changes, is refused for another
	// review of the same changes, but an empty one holding only the base is fine (see below).
	_, err = Review(context.Background(), conn, base, changes, Options{})
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), "0100_quantity_check.sql") {
		t.Errorf("second review on the same scratch: %v (exit %d), want exit 2 naming the applied change", err, exitcode.Of(err))
	}
}

// TestScratchHoldingBase: a scratch database that already holds the base, applied by our
// ledger (a cached server), is used as it is; one holding anything else is refused.
func TestScratchHoldingBase(t *testing.T) {
	ctx := context.Background()
	base := loadDir(t, "testdata/corpus/base")
	changes := loadDir(t, "testdata/corpus/02_int_to_bigint")
	conn := connect(t)
	m, err := migrate.New(conn, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	rep := review(t, conn, base, changes, Options{})
	if got(rep.Findings)[0] != "0100_quantity_bigint.sql:2: error table-rewrite" {
		t.Errorf("findings %q", got(rep.Findings))
	}

	other := connect(t)
	if _, err := other.Exec(ctx, "CREATE TABLE stray (id int)"); err != nil {
		t.Fatal(err)
	}
	_, err = Review(ctx, other, base, changes, Options{})
	var ne *migrate.NotEmptyError
	if !errors.As(err, &ne) || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("scratch with a stray table: %v, want a *migrate.NotEmptyError (exit 2)", err)
	}
}

// TestFailingChange: a change that fails is reported as up reports it, at file:line:col.
func TestFailingChange(t *testing.T) {
	base := loadDir(t, "testdata/corpus/base")
	for _, c := range []struct{ name, sql, at string }{
		{"transactional", "ALTER TABLE orders ADD COLUMN coupon text;\nALTER TABLE orders ADD COLUMN nope nosuchtype;", "0100_bad.sql:2:36"},
		{"no-transaction", "-- poststack:no-transaction\nCREATE INDEX CONCURRENTLY orders_note ON orders (note);\nSELECT 1/0;", "0100_bad.sql:3:1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			changes := loadMap(t, map[string]string{"0100_bad.sql": c.sql})
			_, err := Review(context.Background(), connect(t), base, changes, Options{})
			var me *migrate.MigrationError
			if !errors.As(err, &me) || exitcode.Of(err) != exitcode.Failure || !strings.HasPrefix(err.Error(), c.at+": ERROR") {
				t.Errorf("err = %v (exit %d), want a *migrate.MigrationError at %s", err, exitcode.Of(err), c.at)
			}
		})
	}
}

// TestIgnoreUsage: a lint-ignore without a reason, with an unknown rule or on no statement is
// a usage error naming file:line, before anything runs.
func TestIgnoreUsage(t *testing.T) {
	for _, c := range []struct{ name, sql, want string }{
		{"no reason", "-- poststack:lint-ignore table-rewrite\nALTER TABLE orders ALTER COLUMN quantity TYPE bigint;", "0100_x.sql:1: lint-ignore table-rewrite needs a reason"},
		{"unknown rule", "ALTER TABLE orders ALTER COLUMN quantity TYPE bigint; -- poststack:lint-ignore rewrite ok", `0100_x.sql:1: lint-ignore names an unknown rule "rewrite"`},
		{"no rule", "SELECT 1;\n-- poststack:lint-ignore\nSELECT 2;", "0100_x.sql:2: lint-ignore needs a rule"},
		{"on no statement", "SELECT 1;\n\n-- poststack:lint-ignore table-rewrite fine\n", "0100_x.sql:3: lint-ignore is not on a statement"},
	} {
		t.Run(c.name, func(t *testing.T) {
			changes := loadMap(t, map[string]string{"0100_x.sql": c.sql})
			// No database: the files are checked before the scratch database is touched.
			_, err := Review(context.Background(), &pgx.Conn{}, nil, changes, Options{})
			if exitcode.Of(err) != exitcode.Usage || err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v (exit %d), want exit 2 with %q", err, exitcode.Of(err), c.want)
			}
		})
	}
}

func TestRules(t *testing.T) {
	rules := Rules()
	if !slices.IsSortedFunc(rules, func(a, b Rule) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("rules are not sorted by name")
	}
	for _, r := range rules {
		if r.Level != Error && r.Level != Warning || r.Summary == "" || len(r.Explain) < 100 {
			t.Errorf("rule %+v is incomplete", r)
		}
	}
	rules[0].Name = "changed"
	if Rules()[0].Name == "changed" {
		t.Error("Rules returns shared state")
	}
}

// TestRollbackCheckTouched: the rollback check reads only the tables a trial of the change and
// its rollback touched (and everything that is not a table), yet catches what the rollback
// leaves behind anywhere: in a table only the rollback touched, in a function no lock shows,
// in a table that only depends on something the rollback renamed; and it finds nothing when
// the rollback restores the schema.
func TestRollbackCheckTouched(t *testing.T) {
	base := loadMap(t, map[string]string{"0001_base.sql": `
CREATE COLLATION names FROM "C";
CREATE TABLE customers (id bigserial PRIMARY KEY, email text, name text COLLATE names);
CREATE INDEX customers_email ON customers (email);
CREATE TABLE orders (id int PRIMARY KEY, customer_id bigint REFERENCES customers (id), note text);
CREATE TABLE audit (id int, what text);
`})
	cases := []struct {
		name, up, down string
		restores       bool
		diff           string // in the finding's message
	}{
		{"the rollback drops an index of a table the change does not touch",
			"ALTER TABLE orders ADD COLUMN coupon text;",
			"ALTER TABLE orders DROP COLUMN coupon;\nDROP INDEX customers_email;",
			false, "index public.customers_email exists only before"},
		{"the change creates a function the rollback forgets",
			"ALTER TABLE orders ADD COLUMN coupon text;\nCREATE FUNCTION coupon_ok(c text) RETURNS bool LANGUAGE sql AS 'SELECT c IS NOT NULL';",
			"ALTER TABLE orders DROP COLUMN coupon;",
			false, "function public.coupon_ok(c text) exists only after"},
		{"the rollback renames a collation an untouched table uses",
			"CREATE TABLE promotions (code text);",
			"DROP TABLE promotions;\nALTER COLLATION names RENAME TO names2;",
			false, "column public.customers.name: collation names → names2"},
		{"the rollback renames a column another table's foreign key references",
			"ALTER TABLE orders ADD COLUMN coupon text;",
			"ALTER TABLE orders DROP COLUMN coupon;\nALTER TABLE customers RENAME COLUMN id TO customer_id;",
			false, "column public.customers.customer_id exists only after"},
		{"the rollback leaves a new table's sequence",
			"CREATE SEQUENCE coupon_seq;\nALTER TABLE orders ADD COLUMN coupon bigint DEFAULT nextval('coupon_seq');",
			"ALTER TABLE orders DROP COLUMN coupon;",
			false, "sequence public.coupon_seq exists only after"},
		{"the rollback restores everything",
			"CREATE TABLE promotions (code text PRIMARY KEY, customer_id bigint REFERENCES customers (id));\nCREATE INDEX orders_note ON orders (note);",
			"DROP INDEX orders_note;\nDROP TABLE promotions;",
			true, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			changes := loadMap(t, map[string]string{"0100_change.sql": c.up, "0100_change.rollback.sql": c.down})
			rep := review(t, connect(t), base, changes, Options{})
			var found []Finding
			for _, f := range rep.Findings {
				if f.Rule == RuleRollbackNotRestored {
					found = append(found, f)
				}
			}
			switch {
			case c.restores && len(found) > 0:
				t.Errorf("rollback reported as not restoring:\n%s", messages(found))
			case !c.restores && len(found) != 1:
				t.Errorf("want one %s finding, got:\n%s", RuleRollbackNotRestored, messages(rep.Findings))
			case !c.restores && !strings.Contains(found[0].Message, c.diff):
				t.Errorf("finding does not say %q:\n%s", c.diff, messages(found))
			}
		})
	}

	// What the trial finds: the tables the change and its rollback touch, and a table whose
	// foreign key references a touched one, not the others.
	t.Run("touched", func(t *testing.T) {
		ctx := context.Background()
		conn := connect(t)
		changes := loadMap(t, map[string]string{"0100_change.sql": "ALTER TABLE audit ADD COLUMN at timestamptz;",
			"0100_change.rollback.sql": "ALTER TABLE audit DROP COLUMN at;\nALTER TABLE customers ALTER COLUMN email SET NOT NULL;"})
		m, err := migrate.New(conn, slices.Concat(base, changes))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Up(ctx, 1); err != nil {
			t.Fatal(err)
		}
		down, _ := changes[0].Down.Text()
		text, _ := changes[0].Up.Text()
		r := &reviewer{conn: conn, m: m, ledgerSchema: m.LedgerSchema()}
		p := changePlan{mig: changes[0], text: text, stmts: sqlscan.Split(text), downStmts: sqlscan.Split(down)}
		only, err := r.trial(ctx, p)
		r.rollback(ctx)
		if err != nil {
			t.Fatal(err)
		}
		before, err := r.snapshotOnly(ctx, only)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"public.audit", "public.customers", "public.customers_id_seq", "public.orders"}
		if only == nil || !slices.Equal(only.Relations, want) {
			t.Fatalf("touched %v, want %v", only, want)
		}
		var tables []string
		for _, tb := range before.Tables {
			tables = append(tables, tb.Name)
		}
		if !slices.Equal(tables, []string{"audit", "customers", "orders"}) || len(before.Sequences) != 1 {
			t.Errorf("snapshot before holds tables %v and %d sequences", tables, len(before.Sequences))
		}
		var cols int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'audit'::regclass AND attname = 'at'").Scan(&cols); err != nil || cols != 0 {
			t.Errorf("the trial left audit.at (%d, %v)", cols, err)
		}
	})
}
