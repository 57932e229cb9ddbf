package lint

import (
	"testing"
	"testing/fstest"

	"github.com/poststack/poststack/pkg/migrate"
)

func load(t *testing.T, files map[string]string) []*migrate.Migration {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, text := range files {
		fsys["m/"+name] = &fstest.MapFile{Data: []byte(text)}
	}
	migs, err := migrate.Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	return migs
}

func TestCompareBase(t *testing.T) {
	base := load(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (id int);\n",
		"0002_b.sql": "CREATE TABLE b (id int);\n",
		"0004_d.sql": "CREATE TABLE d (id int);\n",
	})
	head := load(t, map[string]string{
		"0001_a.sql": "CREATE TABLE a (id bigint);\n", // edited
		// 0002 removed
		"0003_c.sql": "CREATE TABLE c (id int);\n", // below 4: out of order
		"0004_d.sql": "CREATE TABLE d (id int);\n",
		"0005_e.sql": "CREATE TABLE e (id int);\n", // new
	})
	changes, findings := CompareBase(base, head, "origin/main")
	if len(changes) != 2 || changes[0].Version != 3 || changes[1].Version != 5 {
		t.Fatalf("changes = %v", changes)
	}
	want := []struct {
		rule, file string
	}{
		{RuleEditedMigration, "m/0001_a.sql"},
		{RuleRemovedMigration, "m/0002_b.sql"},
		{RuleOutOfOrder, "m/0003_c.sql"},
	}
	if len(findings) != len(want) {
		t.Fatalf("findings = %v", findings)
	}
	for i, w := range want {
		f := findings[i]
		if f.Rule != w.rule || f.File != w.file || f.Line != 1 || f.Level != Error {
			t.Errorf("finding %d = %+v, want %s at %s:1", i, f, w.rule, w.file)
		}
	}
	// The same files on both sides: nothing new, nothing wrong.
	if changes, findings := CompareBase(base, base, "main"); len(changes) != 0 || len(findings) != 0 {
		t.Fatalf("identical sets: %v %v", changes, findings)
	}
	names := map[string]bool{}
	for _, r := range Rules() {
		names[r.Name] = true
	}
	for _, r := range []string{RuleEditedMigration, RuleRemovedMigration, RuleOutOfOrder} {
		if !names[r] {
			t.Errorf("Rules() lacks %s", r)
		}
	}
}
