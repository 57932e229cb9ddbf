package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/poststack/poststack/pkg/migrate/internal/dircache"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/xdg"
)

// The load cache (see internal/dircache) remembers, per file of a migrations directory, what
// loading it computed (checksum, directives, description), keyed by what one stat says about
// the file, and the directory's listing, keyed by what a stat says about the directory. Only
// files that loaded without a problem are kept.

// CachePath returns where LoadDir's cache for the directory dir lives:
// $XDG_CACHE_HOME/poststack/migrate/<hex SHA-256 of the absolute dir>, or ~/.cache/… when
// XDG_CACHE_HOME is unset. dir must be absolute, so that two spellings of it share one cache.
func CachePath(dir string, getenv func(string) string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("migrations cache: %s is not an absolute path", dir)
	}
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	p, err := xdg.CacheDir(getenv, "migrate", hex.EncodeToString(sum[:]))
	if err != nil {
		return "", fmt.Errorf("migrations cache: %w", err)
	}
	return p, nil
}

// lazyText is where a script loaded from the cache reads its text when it is needed, and the
// checksum the text must have: the one the checks and the drift detection were done with.
type lazyText struct {
	path string
	sum  [sha256.Size]byte
	max  int64 // the size cap of the load
	// unchecked is set on a rollback that LoadDir took from its cache without even a stat
	// (a run with nothing to apply needs no rollback): the record it took. The file is
	// stat'ed, and read and checked again if it changed, before anything uses it (see check);
	// root is where a symbolic link may then lead.
	unchecked *dircache.Record
	root      string
}

// Text returns the script's SQL, reading the file first when Load took what it needed from its
// cache and left SQL empty. The file must still hold what Load checked: when its checksum
// differs, Text returns a *SourceError and the script is not run from it. On success SQL is
// filled in, so Text reads a file at most once.
//
// A rollback file of a large directory is not even stat'ed by LoadDir when the cache knows it;
// Text then checks it first, as LoadDir would have (see Migration.Down).
func (s *Script) Text() (string, error) {
	if probs := s.check(); len(probs) > 0 {
		return "", &SourceError{Problems: probs}
	}
	if s.lazy.path == "" {
		return s.SQL, nil
	}
	data, err := readCached(s.lazy.path, s.lazy.max)
	if err != nil {
		return "", &SourceError{Problems: []Problem{{File: s.File, Msg: readProblem(err)}}}
	}
	sql, sum := normalize(data)
	if sum != s.lazy.sum {
		return "", &SourceError{Problems: []Problem{{File: s.File, Msg: "changed after it was checked; nothing was run from it, run again"}}}
	}
	s.SQL, s.sum = sql, sum
	s.lazy = lazyText{}
	return s.SQL, nil
}

// readCached reads a file that was a regular file directly in its directory when LoadDir
// cached it, by the same rules as LoadDir: while an lstat still finds a regular file within the
// cap, it is read as dircache.Dir.Read reads one (no symbolic link followed, no wait on a FIFO,
// a device refused by the fstat, the cap). Anything else, and whatever that read fails on (the
// file replaced meanwhile), goes to safefile.ReadFile with the directory as the root, which
// reads or refuses it and says why in its words. Resolving every link of the path, as
// safefile.ReadFile does for the directory and the file, costs eight stats more for each
// script of a run on a path four levels deep (measured: a fifth of ps-migrate's CPU time
// applying 500 small migrations, 163 against 132 ms).
func readCached(path string, max int64) ([]byte, error) {
	dir := filepath.Dir(path)
	if _, ok := dircache.StatPath(path, max); ok {
		if d, err := dircache.Open(dir, dir, max); err == nil {
			data, err := d.Read(filepath.Base(path), 0, nil)
			d.Close()
			if err == nil {
				return data, nil
			}
		}
	}
	return safefile.ReadFile(dir, path, safefile.WithMaxSize(max))
}

// check does, for a script LoadDir left unchecked, what LoadDir does for the others: a file
// whose stat still matches its cache record is what the record says; another is read and
// checked now, and its problems returned (it stays unchecked: the next call reads it again). A
// checked script returns nil at once.
func (s *Script) check() []Problem {
	u := s.lazy.unchecked
	if u == nil {
		return nil
	}
	if key, ok := dircache.StatPath(s.lazy.path, s.lazy.max); ok && key == u.Key {
		s.lazy.unchecked = nil
		return nil
	}
	// Changed since the record was made: read it as LoadDir reads a file it has no record
	// for, a symbolic link only to a regular file inside the project.
	read := func(string, fs.FileMode, []byte) ([]byte, error) {
		return safefile.ReadFile(s.lazy.root, s.lazy.path, safefile.WithMaxSize(s.lazy.max))
	}
	var fresh Script
	if l, _ := loadFile(read, filepath.Base(s.lazy.path), s.File, 0, &fresh, nil); len(l.problems) > 0 {
		return l.problems
	}
	s.SQL, s.NoTransaction, s.lazy, s.sum = fresh.SQL, fresh.NoTransaction, lazyText{}, fresh.sum
	return nil
}

// checkFiles checks the rollback files LoadDir left unchecked, so that a run that changes
// something reports every problem of the migration files before it starts, as LoadDir does
// for the files it reads.
func checkFiles(migs []*Migration) error {
	var todo []*Script
	for _, m := range migs {
		if m.Down != nil && m.Down.lazy.unchecked != nil {
			todo = append(todo, m.Down)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	// A stat each, as LoadDir's: more workers than cores keep the system calls overlapping.
	const chunk = 64
	found := make([][]Problem, len(todo))
	workers := min(max(runtime.GOMAXPROCS(0)*2, 8), (len(todo)+chunk-1)/chunk)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * chunk; i < len(todo); i += workers * chunk {
				for j := i; j < min(i+chunk, len(todo)); j++ {
					found[j] = todo[j].check()
				}
			}
		}()
	}
	wg.Wait()
	var problems []Problem
	for _, p := range found {
		problems = append(problems, p...)
	}
	if len(problems) == 0 {
		return nil
	}
	sortProblems(problems)
	return &SourceError{Problems: problems}
}
