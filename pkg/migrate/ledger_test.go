package migrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1", 1, true}, {"0042", 42, true}, {"-7", -7, true}, {"20240101120000", 20240101120000, true},
		{"999999999999999999", 999999999999999999, true},
		// Left to pgx's scan: what the text format of a bigint never is, or might overflow.
		{"", 0, false}, {"-", 0, false}, {"1.0", 0, false}, {" 1", 0, false}, {"1e3", 0, false},
		{"9223372036854775807", 0, false}, {"99999999999999999999", 0, false},
	} {
		got, ok := parseVersion([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseVersion(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// TestCheckLedgerHandMadeLedger: a ledger whose version column is text (made by hand, or by
// another tool) sorts "10" before "2"; the checks still match every row with its file.
func TestCheckLedgerHandMadeLedger(t *testing.T) {
	ctx := context.Background()
	conn := connect(t, freshDB(t))
	migs := load(t, map[string]string{"1_a.sql": "select 1;\n", "2_b.sql": "select 2;\n", "10_c.sql": "select 10;\n"})
	if _, err := conn.Exec(ctx, `CREATE SCHEMA poststack;
CREATE TABLE poststack.schema_migrations (version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
	rollback_sql text, applied_at timestamptz NOT NULL DEFAULT now(), execution_time interval, applied_by text NOT NULL DEFAULT current_user)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range migs {
		if _, err := conn.Exec(ctx, "INSERT INTO poststack.schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", fmt.Sprint(m.Version), m.Name, m.Checksum); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil || len(res) != 0 {
		t.Fatalf("up with every version applied: %v, %v", res, err)
	}
	if _, err := conn.Exec(ctx, "UPDATE poststack.schema_migrations SET checksum = 'x' WHERE version = '2'"); err != nil {
		t.Fatal(err)
	}
	_, err := newMigrator(t, conn, migs).Up(ctx, 0)
	var de *DriftError
	if !errors.As(err, &de) || len(de.Drifts) != 1 || de.Drifts[0].Version != 2 || de.Drifts[0].AppliedChecksum != "x" {
		t.Fatalf("up with version 2 changed: %v, want a drift of version 2 only", err)
	}
}

func TestWithDefaultCache(t *testing.T) {
	if _, err := LoadDir(t.TempDir(), WithDefaultCache(nil)); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("WithDefaultCache(nil): %v, want a usage error", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "1_a.sql"), "select 1;\n")
	xdg := t.TempDir()
	getenv := func(k string) string {
		if k == "XDG_CACHE_HOME" {
			return xdg
		}
		return ""
	}
	// The test directory is small, and its file just written: old enough an hour later.
	lowCacheMin := func(c *loadConfig) error {
		c.cacheMin, c.now = 0, func() time.Time { return time.Now().Add(time.Hour) }
		return nil
	}
	if _, err := LoadDir(dir, lowCacheMin, WithDefaultCache(getenv)); err != nil {
		t.Fatal(err)
	}
	want, err := CachePath(dir, getenv)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(want); err != nil {
		t.Fatalf("no cache at CachePath: %v", err)
	}
	// A relative spelling of the directory shares the cache of its absolute path.
	t.Chdir(filepath.Dir(dir))
	var reads []string
	counter := func(c *loadConfig) error { c.onRead = func(b string) { reads = append(reads, b) }; return nil }
	if _, err := LoadDir(filepath.Base(dir), lowCacheMin, WithDefaultCache(getenv), counter); err != nil || len(reads) != 0 {
		t.Fatalf("load by a relative path: %v, read %v; want the cache of %s", err, reads, dir)
	}
	// No usable cache directory: loading works without one.
	migs, err := LoadDir(dir, lowCacheMin, WithDefaultCache(func(string) string { return "" }))
	if err != nil || len(migs) != 1 || !reflect.DeepEqual(migs[0].Up.SQL, "select 1;\n") {
		t.Fatalf("without HOME: %v, %v", migs, err)
	}
	entries, _ := os.ReadDir(filepath.Join(xdg, "poststack", "migrate"))
	if len(entries) != 1 || !strings.HasPrefix(want, filepath.Join(xdg, "poststack", "migrate")) {
		t.Fatalf("cache files %v, want one at %s", entries, want)
	}
}
