package migrate

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// LoadOption configures LoadDir; it returns an error for a nonsense value.
type LoadOption func(*loadConfig) error

type loadConfig struct {
	cache string
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

// WithCache makes LoadDir keep what it learnt about each file in the file path (CachePath
// names the usual place), and take it from there on later runs for the files whose stat has
// not changed, instead of reading them. Their SQL is then read when it is about to run, and
// refused if the file no longer has the checksum it was checked with. A cache that is missing,
// unreadable or corrupt is ignored, and one that cannot be written is not written: the cache
// only ever saves time. An empty path turns the cache off.
func WithCache(path string) LoadOption {
	return func(c *loadConfig) error {
		if path != "" && !filepath.IsAbs(path) {
			return fmt.Errorf("migrations cache %s: not an absolute path", path)
		}
		c.cache = path
		return nil
	}
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

func countSQL(entries []dirEntry) int {
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.name, sqlExt) {
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
// can, which matters when thousands of files are checksummed on every run; WithCache avoids
// reading the unchanged ones at all.
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
	d, err := openDir(dir, root, cfg.maxSize)
	if err != nil {
		return nil, &SourceError{Problems: []Problem{{File: dir, Msg: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err))}}}
	}
	defer d.close()
	entries, err := d.list()
	if err != nil {
		return nil, &SourceError{Problems: []Problem{{File: dir, Msg: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err))}}}
	}
	read := d.read
	if cfg.onRead != nil {
		read = func(base string, mode fs.FileMode, buf []byte) ([]byte, error) {
			cfg.onRead(base)
			return d.read(base, mode, buf)
		}
	}
	join := func(base string) string { return filepath.Join(dir, base) }
	if cfg.cache == "" || !d.canStat() || countSQL(entries) < cfg.cacheMin {
		migs, _, err := loadEntries(entries, join, func(base, file string, mode fs.FileMode, buf []byte) (loaded, []byte) {
			return loadFile(read, base, file, mode, buf)
		})
		return migs, err
	}
	old := readCache(cfg.cache, dir)
	lookup := func(base string) *cachedFile {
		i, found := sort.Find(len(old), func(i int) int { return strings.Compare(base, old[i].name) })
		if !found {
			return nil
		}
		return &old[i]
	}
	migs, results, err := loadEntries(entries, join, func(base, file string, mode fs.FileMode, buf []byte) (loaded, []byte) {
		// Only regular files are cached: a symbolic link is checked and followed on every run.
		key, ok := fileKey{}, false
		if mode == 0 {
			key, ok = d.stat(base)
		}
		if !ok {
			return loadFile(read, base, file, mode, buf)
		}
		if e := lookup(base); e != nil && e.key == key {
			return loaded{
				script: Script{File: file, NoTransaction: e.noTransaction, lazy: lazyText{path: file, sum: e.sum, max: cfg.maxSize}},
				desc:   e.desc, sum: e.sum, hit: true,
			}, buf
		}
		l, buf := loadFile(read, base, file, mode, buf)
		if len(l.problems) == 0 && !key.racy(ref) {
			l.entry = &cacheEntry{key: key, sum: l.sum, noTransaction: l.script.NoTransaction, desc: l.desc}
		}
		return l, buf
	})
	// Rewrite the cache only when it would say something new: a run that read nothing
	// leaves it alone.
	hits, dirty := 0, false
	for _, r := range results {
		if r.hit {
			hits++
		}
		dirty = dirty || r.entry != nil
	}
	if dirty || hits != len(old) {
		// results follow the sorted directory listing, so fresh is sorted too.
		fresh := make([]cachedFile, 0, len(results))
		for _, r := range results {
			switch {
			case r.hit:
				fresh = append(fresh, *lookup(r.base))
			case r.entry != nil:
				fresh = append(fresh, cachedFile{r.base, *r.entry})
			}
		}
		_ = writeCache(cfg.cache, dir, fresh) // a cache that cannot be written only costs time
	}
	return migs, err
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
