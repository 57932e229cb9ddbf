package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate/internal/dircache"
	"github.com/poststack/poststack/pkg/safefile"
)

// LoadOption configures LoadDir; it returns an error for a nonsense value.
type LoadOption func(*loadConfig) error

type loadConfig struct {
	cache string
	// getenv, set by WithDefaultCache, finds the cache at CachePath.
	getenv func(string) string
	// root is where symbolic links among the files may lead ("" is the directory itself).
	root string
	// maxSize is the largest file read.
	maxSize int64
	// cacheMin is the fewest .sql files worth a cache; tests lower it.
	cacheMin int
	now      func() time.Time
	// onRead, for tests, is told of every file read.
	onRead func(base string)
}

// WithCache makes LoadDir keep what it learnt about each file in the file path, and take it
// from there on later runs for the files whose stat has not changed, instead of reading them.
// Their SQL is then read when it is about to run, and refused if the file no longer has the
// checksum it was checked with. A cache that is missing, unreadable or corrupt is ignored, and
// one that cannot be written is not written: the cache only ever saves time. An empty path
// turns the cache off. Commands use WithDefaultCache.
func WithCache(path string) LoadOption {
	return func(c *loadConfig) error {
		if path != "" && !filepath.IsAbs(path) {
			return fmt.Errorf("migrations cache %s: not an absolute path", path)
		}
		c.cache, c.getenv = path, nil
		return nil
	}
}

// WithDefaultCache is WithCache at the usual place, CachePath of the directory's absolute
// path, found with getenv (os.Getenv in a command). Without a usable cache directory (no HOME)
// LoadDir loads without a cache, which is only slower.
func WithDefaultCache(getenv func(string) string) LoadOption {
	return func(c *loadConfig) error {
		if getenv == nil {
			return errors.New("migrations cache: getenv is nil")
		}
		c.cache, c.getenv = "", getenv
		return nil
	}
}

// cachePath is where the cache of dir is, "" for none, and the absolute path of dir, which
// the cache file names.
func (c *loadConfig) cachePath(dir string) (path, abs string) {
	if c.cache == "" && c.getenv == nil {
		return "", ""
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", ""
	}
	if c.getenv == nil {
		return c.cache, abs
	}
	p, err := CachePath(abs, c.getenv)
	if err != nil {
		return "", ""
	}
	return p, abs
}

// WithRoot names the project directory: a symbolic link among the migration files is then
// followed when the file it leads to is inside root (by default, only inside the migrations
// directory), and refused otherwise, as is one to anything but a regular file. A migrations
// directory whose path lies inside root must really be there, not a symbolic link leading out;
// one whose path lies outside root was named by the user and is its own root.
func WithRoot(root string) LoadOption {
	return func(c *loadConfig) error {
		if root == "" {
			return errors.New("project directory is empty")
		}
		c.root = root
		return nil
	}
}

// WithMaxFileSize sets the largest migration file read, in bytes (default
// safefile.DefaultMaxSize, 16 MiB); a larger one is a problem of the load.
func WithMaxFileSize(n int64) LoadOption {
	return func(c *loadConfig) error {
		if n <= 0 {
			return fmt.Errorf("maximum migration file size %d: must be at least 1 byte", n)
		}
		c.maxSize = n
		return nil
	}
}

// cacheMinFiles is the fewest .sql files for which LoadDir uses its cache.
// Reading a few hundred files costs a few milliseconds, less than
// maintaining a cache; and a cache file per small directory (every test's
// temporary one) would only litter the cache directory.
const cacheMinFiles = 500

func countSQL(entries []dircache.Entry) int {
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name, sqlExt) {
			n++
		}
	}
	return n
}

// WithLoadClock replaces time.Now, for tests: the cache trusts only files whose timestamps
// were well in the past when it was written.
func WithLoadClock(now func() time.Time) LoadOption {
	return func(c *loadConfig) error {
		if now == nil {
			return errors.New("clock is nil")
		}
		c.now = now
		return nil
	}
}

// LoadDir is Load for a directory of the operating system's file system, named as the files
// are named in problems and errors. It reads the files with fewer system calls than an fs.FS
// can, which matters when thousands of files are checksummed on every run; WithCache (or
// WithDefaultCache) avoids reading the unchanged ones at all, and listing an unchanged
// directory.
//
// With the cache, a rollback file the cache knows is not looked at, not even stat'ed: a run
// with nothing to apply needs no rollback. It is checked, as LoadDir checks the other files,
// before it is used (Script.Text), and all of them before a Migrator changes anything; until
// then its Down.NoTransaction is what the cache says.
func LoadDir(dir string, opts ...LoadOption) ([]*Migration, error) {
	cfg := loadConfig{now: time.Now, cacheMin: cacheMinFiles, maxSize: safefile.DefaultMaxSize}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("load migrations: %w", err))
		}
	}
	ref := cfg.now()
	root, err := loadRoot(dir, cfg.root)
	if err != nil {
		return nil, &SourceError{Problems: []Problem{{File: dir, Msg: "cannot read directory: " + readProblem(err)}}}
	}
	d, err := dircache.Open(dir, root, cfg.maxSize)
	if err != nil {
		return nil, dirProblem(dir, err)
	}
	defer d.Close()
	read := d.Read
	if cfg.onRead != nil {
		read = func(base string, mode fs.FileMode, buf []byte) ([]byte, error) {
			cfg.onRead(base)
			return d.Read(base, mode, buf)
		}
	}

	cache, absDir := cfg.cachePath(dir)
	var old dircache.Cache
	var dirKey dircache.Key
	if cache != "" && d.CanStat() {
		// The directory's stat before its listing: an entry added after it changes it.
		var ok bool
		if dirKey, ok = d.Key(); ok {
			old = dircache.ReadFile(cache, absDir)
		} else {
			cache = ""
		}
	} else {
		cache = ""
	}
	var entries []dircache.Entry
	var recs []*dircache.Record // recs[i] is the cache's record of entries[i], if any
	listed := true
	if cache != "" && old.Dir != (dircache.Key{}) && old.Dir == dirKey {
		// Unchanged since the cache listed it: the same entries.
		listed = false
		entries, recs = old.Entries, old.Recs
	} else {
		all, err := d.List()
		if err != nil {
			return nil, dirProblem(dir, err)
		}
		// Only the names Load looks at: the cache keeps the listing.
		entries = all[:0]
		for _, e := range all {
			if isCandidate(e.Name) {
				entries = append(entries, e)
			}
		}
		recs = align(entries, old)
	}
	join := joinAll(dir, entries)
	if cache == "" || countSQL(entries) < cfg.cacheMin {
		migs, _, err := loadEntries(entries, join, func(i int, file string, dst *Script, buf []byte) (loaded, []byte) {
			return loadFile(read, entries[i].Name, file, entries[i].Mode, dst, buf)
		})
		return migs, err
	}
	migs, results, err := loadEntries(entries, join, func(i int, file string, dst *Script, buf []byte) (loaded, []byte) {
		e, rec := entries[i], recs[i]
		if e.Mode != 0 {
			// Only regular files are cached: a symbolic link is checked and followed on
			// every run.
			return loadFile(read, e.Name, file, e.Mode, dst, buf)
		}
		if rec != nil && strings.HasSuffix(e.Name, rollbackExt) {
			*dst = Script{File: file, NoTransaction: rec.NoTransaction, lazy: lazyText{path: file, sum: rec.Sum, max: cfg.maxSize, root: root, unchecked: rec}}
			return loaded{desc: rec.Desc, sum: rec.Sum, rec: rec}, buf
		}
		key, ok := d.Stat(e.Name)
		if !ok {
			return loadFile(read, e.Name, file, e.Mode, dst, buf)
		}
		if rec != nil && rec.Key == key {
			*dst = Script{File: file, NoTransaction: rec.NoTransaction, lazy: lazyText{path: file, sum: rec.Sum, max: cfg.maxSize}}
			return loaded{desc: rec.Desc, sum: rec.Sum, rec: rec}, buf
		}
		l, buf := loadFile(read, e.Name, file, e.Mode, dst, buf)
		if len(l.problems) == 0 && !key.Racy(ref) {
			l.rec = &dircache.Record{Key: key, Sum: l.sum, NoTransaction: dst.NoTransaction, Desc: l.desc}
			l.fresh = true
		}
		return l, buf
	})
	// Rewrite the cache only when it would say something new: a run that neither listed
	// the directory nor read a file leaves it alone.
	dirty := listed
	for _, r := range results {
		dirty = dirty || r.fresh || r.rec != recs[r.index]
	}
	if dirty {
		fresh := dircache.Cache{Entries: entries, Recs: make([]*dircache.Record, len(entries))}
		if !dirKey.Racy(ref) {
			fresh.Dir = dirKey
		}
		for _, r := range results {
			fresh.Recs[r.index] = r.rec
		}
		_ = dircache.WriteFile(cache, absDir, fresh) // a cache that cannot be written only costs time
	}
	return migs, err
}

// align returns, for each of the sorted entries, the record the cache has for it.
func align(entries []dircache.Entry, c dircache.Cache) []*dircache.Record {
	recs := make([]*dircache.Record, len(entries))
	j := 0
	for i, e := range entries {
		for j < len(c.Entries) && c.Entries[j].Name < e.Name {
			j++
		}
		if j < len(c.Entries) && c.Entries[j].Name == e.Name {
			recs[i] = c.Recs[j]
		}
	}
	return recs
}

// joinAll returns a function giving filepath.Join(dir, entries[i].Name) for the names Load
// looks at: one string for all of them rather than thousands of small ones.
func joinAll(dir string, entries []dircache.Entry) func(i int) string {
	prefix := filepath.Clean(dir)
	if prefix != string(filepath.Separator) {
		prefix += string(filepath.Separator)
	}
	n := 0
	for _, e := range entries {
		n += len(prefix) + len(e.Name)
	}
	b := make([]byte, 0, n)
	ends := make([]int, len(entries))
	for i, e := range entries {
		b = append(b, prefix...)
		b = append(b, e.Name...)
		ends[i] = len(b)
	}
	if len(b) == 0 {
		return func(int) string { return "" }
	}
	all := unsafe.String(&b[0], len(b)) // never written again
	return func(i int) string {
		// A listed name is one clean element: no separator, not "." or "..".
		if name := entries[i].Name; name == "" || name == "." || name == ".." || strings.ContainsRune(name, filepath.Separator) {
			return filepath.Join(dir, name)
		}
		name := entries[i].Name
		return all[ends[i]-len(prefix)-len(name) : ends[i]]
	}
}

func dirProblem(dir string, err error) error {
	return &SourceError{Problems: []Problem{{File: dir, Msg: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err))}}}
}

// loadRoot returns the directory inside which symbolic links among the files of dir may lead:
// root when dir's path is inside it (after checking that dir really is), else dir itself.
func loadRoot(dir, root string) (string, error) {
	if root == "" {
		return dir, nil
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	absRoot, err := filepath.Abs(root)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(absRoot, absDir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return dir, nil
	}
	if _, err := safefile.Inside(root, dir); err != nil {
		return "", err
	}
	return root, nil
}
