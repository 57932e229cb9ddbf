package migrate

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate/internal/dircache"
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
			data, _ := os.ReadFile(path)
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(bytes.ToUpper(data)); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"size change, mtime restored", func(c *cacheDir, path string) {
			info, _ := os.Stat(path)
			data, _ := os.ReadFile(path)
			c.write(filepath.Base(path), string(data)+"-- more\n")
			if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced by rename", func(c *cacheDir, path string) {
			data, _ := os.ReadFile(path)
			tmp := path + ".new"
			if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
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
			first, _ := c.load()
			// The change time has the kernel's tick as resolution; let one pass.
			time.Sleep(20 * time.Millisecond)
			path := filepath.Join(c.dir, "0001_users.sql")
			tt.edit(c, path)
			migs, reads := c.load()
			if !reflect.DeepEqual(reads, []string{"0001_users.sql"}) {
				t.Fatalf("read %v, want only the edited file", reads)
			}
			want, _ := os.ReadFile(path)
			if migs[0].Up.SQL != string(want) || migs[0].Checksum == first[0].Checksum {
				t.Fatalf("SQL %q (checksum %s), want the edited %q", migs[0].Up.SQL, migs[0].Checksum, want)
			}
			if _, reads := c.load(); len(reads) != 0 {
				t.Fatalf("the load after the edit read %v, want nothing", reads)
			}
		})
		// A rollback the cache knows is not looked at by the load: its text is checked
		// and read when it is used, and the edit is seen then.
		t.Run(tt.name+", rollback", func(t *testing.T) {
			c := newCacheDir(t, cacheFiles)
			c.load()
			time.Sleep(20 * time.Millisecond)
			path := filepath.Join(c.dir, "0001_users.rollback.sql")
			tt.edit(c, path)
			migs, reads := c.load()
			if len(reads) != 0 {
				t.Fatalf("read %v, want nothing: a rollback is read when it is used", reads)
			}
			want, _ := os.ReadFile(path)
			if got, err := migs[0].Down.Text(); err != nil || got != string(want) {
				t.Fatalf("rollback text %q, %v; want the edited %q", got, err, want)
			}
		})
	}
}

// TestCachedRollbackCheckedBeforeUse: a rollback that the load took from the cache without
// looking is checked as the load checks files before anything uses it. A run with nothing to
// apply does not need it; one that applies something, a rollback, and SetDigest refuse it.
func TestCachedRollbackCheckedBeforeUse(t *testing.T) {
	ctx := context.Background()
	c := newCacheDir(t, map[string]string{
		"1_a.sql":          "create table a (id int);\n",
		"1_a.rollback.sql": "drop table a;\n",
	})
	conn := connect(t, freshDB(t))
	migs, _ := c.load()
	if _, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	c.write("1_a.rollback.sql", "\nbegin;\ndrop table a;\n")
	migs, reads := c.load()
	if len(reads) != 0 {
		t.Fatalf("the load read %v, want nothing", reads)
	}
	if res, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil || len(res) != 0 {
		t.Fatalf("up with nothing to apply: %v, %v", res, err)
	}
	want := c.dir + "/1_a.rollback.sql:2: \"begin\" would end the transaction"
	refused := func(what string, err error) {
		t.Helper()
		var se *SourceError
		if !errors.As(err, &se) || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: %v, want a *SourceError saying %s", what, err, want)
		}
	}
	_, err := newMigrator(t, conn, migs).Down(ctx, Steps(1))
	refused("down", err)
	if !tableExists(t, conn, "a") || len(ledgerVersions(t, conn)) != 1 {
		t.Fatal("down ran although the rollback is refused")
	}
	_, err = SetDigest(migs, DefaultSchema, DefaultTable)
	refused("SetDigest", err)

	c.write("2_b.sql", "create table b (id int);\n")
	migs, _ = c.load()
	_, err = newMigrator(t, conn, migs).Up(ctx, 0)
	refused("up with a migration to apply", err)
	if tableExists(t, conn, "b") {
		t.Fatal("up applied 2_b although a rollback file is refused")
	}
	_, err = newMigrator(t, conn, migs).Plan(ctx, 0)
	refused("plan", err)

	c.write("1_a.rollback.sql", "drop table a;\n")
	migs, _ = c.load()
	if res, err := newMigrator(t, conn, migs).Up(ctx, 0); err != nil || len(res) != 1 {
		t.Fatalf("up after the fix: %v, %v", res, err)
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
		t.Fatalf("second load read %v; files written within %s of the cache must be read again", reads, dircache.RacyWindow)
	}
	c.clockOffset = dircache.RacyWindow + time.Second
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
		{"other version", func(d []byte) []byte { d[len(dircache.Magic)] = 99; return d }},
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

	// Down checks the rollback file before it runs anything, too: the load took it from the
	// cache without looking, so a change to it is checked, not refused (see
	// TestCachedRollbackCheckedBeforeUse); one that breaks it stops Down.
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
	c.write("1_a.rollback.sql", "drop table b;\ncommit;\n")
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

// TestCacheListingSeesEntries: the cache keeps the directory's listing, trusted while the
// directory's stat is unchanged; an entry added, removed or replaced changes it, even with the
// directory's modification time put back.
func TestCacheListingSeesEntries(t *testing.T) {
	c := newCacheDir(t, cacheFiles)
	c.load()
	if got := dircache.ReadFile(c.cache, c.dir); got.Dir == (dircache.Key{}) || len(got.Entries) != 3 {
		t.Fatalf("cache after the first load: key %+v, %d entries; want the listing kept", got.Dir, len(got.Entries))
	}
	versions := func(migs []*Migration) []int64 {
		var out []int64
		for _, m := range migs {
			out = append(out, m.Version)
		}
		return out
	}
	restore := func() func() {
		info, err := os.Stat(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := os.Chtimes(c.dir, info.ModTime(), info.ModTime()); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(20 * time.Millisecond)
	back := restore()
	c.write("0003_new.sql", "select 3;\n")
	back()
	migs, reads := c.load()
	if !reflect.DeepEqual(versions(migs), []int64{1, 2, 3}) || !reflect.DeepEqual(reads, []string{"0003_new.sql"}) {
		t.Fatalf("after adding a file: versions %v, read %v", versions(migs), reads)
	}
	time.Sleep(20 * time.Millisecond)
	back = restore()
	if err := os.Remove(filepath.Join(c.dir, "0002_index.sql")); err != nil {
		t.Fatal(err)
	}
	back()
	if migs, _ := c.load(); !reflect.DeepEqual(versions(migs), []int64{1, 3}) {
		t.Fatalf("after removing a file: versions %v", versions(migs))
	}
	time.Sleep(20 * time.Millisecond)
	if err := os.Remove(filepath.Join(c.dir, "0003_new.sql")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(c.dir, "0003_new.sql"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.loadErr(); err == nil || !strings.Contains(err.Error(), "0003_new.sql: is a directory") {
		t.Fatalf("after replacing a file by a directory: %v", err)
	}
	// A directory changed just before the load: its listing is not trusted later.
	c.clockOffset = 0
	if err := os.Remove(filepath.Join(c.dir, "0003_new.sql")); err != nil {
		t.Fatal(err)
	}
	c.load()
	if got := dircache.ReadFile(c.cache, c.dir); got.Dir != (dircache.Key{}) || len(got.Entries) != 2 {
		t.Fatalf("cache after a load of a directory changed just now: key %+v, %d entries; want the entries, not the key", got.Dir, len(got.Entries))
	}
}
