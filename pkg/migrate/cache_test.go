package migrate

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// cacheDir is a migrations directory on disk with its cache file, loaded through a read
// counter.
type cacheDir struct {
	t           *testing.T
	dir, cache  string
	mu          sync.Mutex
	reads       []string
	clockOffset time.Duration
}

func newCacheDir(t *testing.T, files map[string]string) *cacheDir {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the load cache needs fstatat")
	}
	c := &cacheDir{t: t, dir: t.TempDir(), cache: filepath.Join(t.TempDir(), "cache"), clockOffset: time.Hour}
	for name, body := range files {
		c.write(name, body)
	}
	return c
}

func (c *cacheDir) write(name, body string) {
	c.t.Helper()
	if err := os.WriteFile(filepath.Join(c.dir, name), []byte(body), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// load runs LoadDir with the cache and returns the migrations and the files it read. The
// clock runs clockOffset ahead, so that files just written count as old (not racy) unless a
// test says otherwise.
func (c *cacheDir) load() ([]*Migration, []string) {
	c.t.Helper()
	migs, reads, err := c.loadErr()
	if err != nil {
		c.t.Fatalf("LoadDir: %v", err)
	}
	return migs, reads
}

func (c *cacheDir) loadErr() ([]*Migration, []string, error) {
	c.reads = nil
	hook := func(cfg *loadConfig) error {
		cfg.cacheMin = 0 // the test directories are small
		cfg.onRead = func(base string) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.reads = append(c.reads, base)
		}
		return nil
	}
	migs, err := LoadDir(c.dir, WithCache(c.cache), WithLoadClock(func() time.Time { return time.Now().Add(c.clockOffset) }), hook)
	sort.Strings(c.reads)
	return migs, c.reads, err
}

var cacheFiles = map[string]string{
	"0001_users.sql":          "-- Description: the users\ncreate table users (id int);\n",
	"0001_users.rollback.sql": "drop table users;\n",
	"0002_index.sql":          "-- poststack:no-transaction\ncreate index concurrently users_id on users (id);\n",
}

// summary is what a load says about the files, SQL aside.
func summary(migs []*Migration) []string {
	var out []string
	for _, m := range migs {
		s := []string{m.Name, m.Checksum, m.Description, m.Up.File}
		if m.Up.NoTransaction {
			s = append(s, "no-transaction")
		}
		if m.Down != nil {
			s = append(s, m.Down.File)
		}
		out = append(out, s...)
	}
	return out
}

func TestCacheHitSkipsReads(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	first, reads := c.load()
	if len(reads) != 3 {
		t.Fatalf("first load read %v, want all 3 files", reads)
	}
	if info, err := os.Stat(c.cache); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, %v; want mode 0600", info, err)
	}
	second, reads := c.load()
	if len(reads) != 0 {
		t.Fatalf("second load read %v, want nothing", reads)
	}
	if !reflect.DeepEqual(summary(first), summary(second)) {
		t.Fatalf("cached load differs:\n%q\n%q", summary(first), summary(second))
	}
	if second[0].Up.SQL != "" {
		t.Fatalf("SQL of a cached file was read: %q", second[0].Up.SQL)
	}
	for i, m := range second {
		for _, pair := range [][2]*Script{{&m.Up, &first[i].Up}, {m.Down, first[i].Down}} {
			if pair[0] == nil {
				continue
			}
			got, err := pair[0].Text()
			if err != nil || got != pair[1].SQL {
				t.Errorf("Text of %s = %q, %v; want %q", pair[0].File, got, err, pair[1].SQL)
			}
		}
	}
	// A cached problem-free run must not rewrite the cache.
	before, _ := os.Stat(c.cache)
	time.Sleep(20 * time.Millisecond)
	c.load()
	if after, _ := os.Stat(c.cache); !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("a load that read nothing rewrote the cache")
	}
}

func TestCacheSeesChanges(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *cacheDir, path string)
	}{
		{"in-place edit, same size, mtime restored", func(c *cacheDir, path string) {
			info, _ := os.Stat(path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			// Same length as "drop table users;\n".
			if _, err := f.WriteString("drop table USERS;\n"); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"size change, mtime restored", func(c *cacheDir, path string) {
			info, _ := os.Stat(path)
			c.write(filepath.Base(path), "drop table users cascade;\n")
			if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by rename", func(c *cacheDir, path string) {
			tmp := path + ".new"
			if err := os.WriteFile(tmp, []byte("drop table users;\n\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, path); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCacheDir(t, cacheFiles)
			c.load()
			// The change time has the kernel's tick as resolution; let one pass.
			time.Sleep(20 * time.Millisecond)
			path := filepath.Join(c.dir, "0001_users.rollback.sql")
			tt.edit(c, path)
			migs, reads := c.load()
			if !reflect.DeepEqual(reads, []string{"0001_users.rollback.sql"}) {
				t.Fatalf("read %v, want only the edited file", reads)
			}
			want, _ := os.ReadFile(path)
			if migs[0].Down.SQL != string(want) {
				t.Fatalf("rollback SQL %q, want the edited %q", migs[0].Down.SQL, want)
			}
			if _, reads := c.load(); len(reads) != 0 {
				t.Fatalf("the load after the edit read %v, want nothing", reads)
			}
		})
	}
}

func TestCacheChecksumAfterEdit(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	first, _ := c.load()
	time.Sleep(20 * time.Millisecond)
	path := filepath.Join(c.dir, "0001_users.sql")
	info, _ := os.Stat(path)
	// Same size, mtime restored: only the change time tells.
	c.write("0001_users.sql", "-- Description: the USERS\ncreate table users (id int);\n")
	if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
		t.Fatal(err)
	}
	second, _ := c.load()
	if second[0].Checksum == first[0].Checksum || second[0].Description != "the USERS" {
		t.Fatalf("checksum %s, description %q after the edit: the cache hid it", second[0].Checksum, second[0].Description)
	}
}

func TestCacheRacyEntryNotTrusted(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	c.clockOffset = 0 // the files were written just now
	c.load()
	if _, reads := c.load(); len(reads) != 3 {
		t.Fatalf("second load read %v; files written within %s of the cache must be read again", reads, racyWindow)
	}
	c.clockOffset = racyWindow + time.Second
	if _, reads := c.load(); len(reads) != 3 {
		t.Fatalf("the load once they are old enough read %v, want all 3 (not cached yet)", reads)
	}
	if _, reads := c.load(); len(reads) != 0 {
		t.Fatalf("the load after that read %v, want nothing", reads)
	}
}

func TestCacheCorruptIgnored(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(data []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"garbage", func([]byte) []byte { return []byte("not a cache at all, just some bytes") }},
		{"truncated", func(d []byte) []byte { return d[:len(d)/2] }},
		{"bit flipped", func(d []byte) []byte { d[len(d)/2] ^= 0x10; return d }},
		{"other version", func(d []byte) []byte { d[len(cacheMagic)] = 99; return d }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCacheDir(t, cacheFiles)
			want, _ := c.load()
			data, err := os.ReadFile(c.cache)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.cache, tt.corrupt(data), 0o600); err != nil {
				t.Fatal(err)
			}
			got, reads := c.load()
			if len(reads) != 3 || !reflect.DeepEqual(summary(got), summary(want)) {
				t.Fatalf("with a corrupt cache: read %v, got %q", reads, summary(got))
			}
			if _, reads := c.load(); len(reads) != 0 {
				t.Fatalf("the corrupt cache was not replaced: the next load read %v", reads)
			}
		})
	}
}

func TestCacheOtherDirectoryIgnored(t *testing.T) {
	a := newCacheDir(t, cacheFiles)
	a.load()
	b := newCacheDir(t, cacheFiles)
	b.cache = a.cache
	if _, reads := b.load(); len(reads) != 3 {
		t.Fatalf("a cache written for %s served %s: read %v", a.dir, b.dir, reads)
	}
}

func TestCacheUnwritableIsNotAnError(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	c.cache = filepath.Join(blocker, "cache") // its parent is a file
	if migs, reads := c.load(); len(migs) != 2 || len(reads) != 3 {
		t.Fatalf("load with an unwritable cache: %d migrations, read %v", len(migs), reads)
	}
}

func TestCacheProblemsStillReported(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	c.load()
	time.Sleep(20 * time.Millisecond)
	c.write("0002_index.sql", "-- poststack:no-transactoin\nselect 1;\n")
	for range 2 {
		_, reads, err := c.loadErr()
		var se *SourceError
		if !errors.As(err, &se) || len(reads) != 1 {
			t.Fatalf("a bad file: read %v, err %v; want it read and reported every time", reads, err)
		}
	}
}

func TestTextRefusesChangedFile(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	c.load()
	migs, _ := c.load()
	c.write("0001_users.sql", "drop table everything;\n")
	_, err := migs[0].Up.Text()
	var se *SourceError
	if !errors.As(err, &se) || exitcode.Of(err) != exitcode.Usage || migs[0].Up.SQL != "" {
		t.Fatalf("Text of a file changed after Load: %v (exit %d), SQL %q", err, exitcode.Of(err), migs[0].Up.SQL)
	}
}

func TestFileChangedBeforeApplyIsRefused(t *testing.T) {
	ctx := context.Background()
	c := newCacheDir(t, map[string]string{
		"1_a.sql":          "create table a (id int);\n",
		"1_a.rollback.sql": "drop table a;\n",
		"2_b.sql":          "create table b (id int);\n",
	})
	c.load()
	migs, _ := c.load()
	// The change lands between Load and Up, in a file Up would run second: nothing may run.
	c.write("2_b.sql", "create table b (id int); create table c (id int);\n")
	conn := connect(t, freshDB(t))
	_, err := newMigrator(t, conn, migs).Up(ctx, 0)
	var se *SourceError
	if !errors.As(err, &se) || exitcode.Of(err) != exitcode.Usage {
		t.Fatalf("Up after the file changed: %v, want a *SourceError", err)
	}
	if tableExists(t, conn, "a") || tableExists(t, conn, "b") || tableExists(t, conn, "c") {
		t.Fatal("Up ran migrations although a file changed under it")
	}

	// Down reads the rollback file before it runs anything, too.
	migs, _ = c.load()
	if _, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	migs, _ = c.load()
	migs, _ = c.load()
	if migs[0].Down.SQL != "" {
		t.Fatal("the rollback was not taken from the cache")
	}
	c.write("1_a.rollback.sql", "drop table b;\n")
	_, err = newMigrator(t, conn, migs).Down(ctx, ToVersion(0))
	if !errors.As(err, &se) || !tableExists(t, conn, "a") || !tableExists(t, conn, "b") || len(ledgerVersions(t, conn)) != 2 {
		t.Fatalf("Down after the rollback file changed: %v; tables a, b and their ledger rows must stay", err)
	}
}

func TestCachePath(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	p, err := CachePath("/srv/app/migrations", env(map[string]string{"XDG_CACHE_HOME": "/xdg", "HOME": "/home/u"}))
	if err != nil || filepath.Dir(p) != "/xdg/poststack/migrate" || len(filepath.Base(p)) != 64 {
		t.Errorf("with XDG_CACHE_HOME: %s, %v", p, err)
	}
	q, err := CachePath("/srv/app/migrations/", env(map[string]string{"XDG_CACHE_HOME": "relative", "HOME": "/home/u"}))
	if err != nil || q != filepath.Join("/home/u/.cache/poststack/migrate", filepath.Base(p)) {
		t.Errorf("with HOME: %s, %v (want the same name as %s)", q, err, p)
	}
	if _, err := CachePath("/srv", env(nil)); err == nil {
		t.Error("no HOME: want an error")
	}
	if _, err := CachePath("migrations", env(map[string]string{"HOME": "/home/u"})); err == nil {
		t.Error("relative dir: want an error")
	}
	if _, err := LoadDir(t.TempDir(), WithCache("relative/cache")); exitcode.Of(err) != exitcode.Usage {
		t.Errorf("WithCache(relative): %v", err)
	}
}

// TestSmallDirectoriesAreNotCached: below cacheMinFiles, reading every file
// is cheaper than a cache, and no cache file is written.
func TestSmallDirectoriesAreNotCached(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"1_a.sql", "1_a.rollback.sql", "2_b.sql"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("select 1;\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := filepath.Join(t.TempDir(), "cache")
	old := time.Now().Add(time.Hour)
	migs, err := LoadDir(dir, WithCache(cache), WithLoadClock(func() time.Time { return old }))
	if err != nil || len(migs) != 2 || migs[0].Up.SQL == "" {
		t.Fatalf("load: %v %d", err, len(migs))
	}
	if _, err := os.Stat(cache); !os.IsNotExist(err) {
		t.Fatalf("a cache was written for %d files: %v", 3, err)
	}
}
