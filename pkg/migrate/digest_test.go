package migrate

import "testing"

// TestSetDigestCoversWhatAMigratedDatabaseHolds: every part of a set that ends up in a migrated
// database (or in its ledger) changes the digest, and nothing else does, since caches of
// migrated databases are keyed by it: a stale key would hand out a database built from other
// files.
func TestSetDigestCoversWhatAMigratedDatabaseHolds(t *testing.T) {
	base := map[string]string{
		"0001_init.sql":           "CREATE TABLE a (id int);\n",
		"0002_users.sql":          "CREATE TABLE users (id int);\n",
		"0002_users.rollback.sql": "DROP TABLE users;\n",
	}
	with := func(name, body string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		if body == "" {
			delete(m, name)
		} else {
			m[name] = body
		}
		return m
	}
	digest := func(m map[string]string, schema, table string) string {
		t.Helper()
		d, err := SetDigest(load(t, m), schema, table)
		if err != nil {
			t.Fatalf("SetDigest: %v", err)
		}
		return d
	}
	want := digest(base, DefaultSchema, DefaultTable)
	if len(want) != 64 {
		t.Fatalf("digest %q: want 64 hex digits", want)
	}
	if again := digest(base, DefaultSchema, DefaultTable); again != want {
		t.Errorf("same set, digest %s then %s", want, again)
	}
	crlf := with("0001_init.sql", "CREATE TABLE a (id int);\r\n")
	if got := digest(crlf, DefaultSchema, DefaultTable); got != want {
		t.Errorf("CRLF instead of LF (same checksum) changed the digest")
	}
	changes := []struct {
		name   string
		files  map[string]string
		schema string
		table  string
	}{
		{"forward SQL (checksum)", with("0001_init.sql", "CREATE TABLE b (id int);\n"), DefaultSchema, DefaultTable},
		{"name", func() map[string]string {
			m := with("0001_init.sql", "")
			m["0001_start.sql"] = base["0001_init.sql"]
			return m
		}(), DefaultSchema, DefaultTable},
		{"version", func() map[string]string {
			m := with("0001_init.sql", "")
			m["0003_init.sql"] = base["0001_init.sql"]
			return m
		}(), DefaultSchema, DefaultTable},
		{"rollback SQL", with("0002_users.rollback.sql", "DROP TABLE users CASCADE;\n"), DefaultSchema, DefaultTable},
		{"no rollback", with("0002_users.rollback.sql", ""), DefaultSchema, DefaultTable},
		{"one migration more", with("0004_more.sql", "SELECT 1;\n"), DefaultSchema, DefaultTable},
		{"ledger schema", base, "other", DefaultTable},
		{"ledger table", base, DefaultSchema, "other"},
	}
	seen := map[string]string{want: "the base set"}
	for _, c := range changes {
		got := digest(c.files, c.schema, c.table)
		if prev, ok := seen[got]; ok {
			t.Errorf("%s: digest %s equals that of %s", c.name, got, prev)
		}
		seen[got] = c.name
	}
}
