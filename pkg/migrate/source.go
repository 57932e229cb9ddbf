package migrate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unsafe"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate/internal/dircache"
	"github.com/poststack/poststack/pkg/safefile"
)

// Script is one SQL file of a migration: the migration itself or its rollback.
type Script struct {
	// File is the path of the file inside the fs.FS given to Load, as errors name it.
	File string
	// SQL is the file's text as sent to the server: CRLF line endings turned into LF and a
	// UTF-8 byte order mark removed, so that line and column numbers match what an editor shows.
	// It is empty when LoadDir took the file's checks from its cache and did not read it: Text
	// reads it then (the Migrator calls Text before it runs anything).
	SQL string
	// NoTransaction is set by a leading "-- poststack:no-transaction" comment: the statements
	// then run one by one outside a transaction (CREATE INDEX CONCURRENTLY needs that). For a
	// rollback LoadDir took from its cache without looking at the file, it is what the cache
	// says until Text has checked the file (see LoadDir).
	NoTransaction bool

	// lazy is set (its path is not empty) while SQL has not been read; see Text.
	lazy lazyText
	// sum is the checksum of the file as read (see Migration.Checksum), when it was read; the
	// sum file's entry for a rollback (see scriptSum).
	sum [sha256.Size]byte
}

// Migration is one version of the schema: its forward script and, optionally, its rollback.
type Migration struct {
	Version int64
	Name    string
	// Description comes from a leading "-- Description: text" comment of the forward file.
	Description string
	// Checksum is the hex SHA-256 of the forward file with CRLF normalised to LF; the ledger
	// keeps it to detect a file edited after it was applied.
	Checksum string
	Up       Script
	// Down is nil when there is no rollback file.
	Down *Script
}

// Problem is one thing wrong with the migration files.
type Problem struct {
	File string
	Line int // 0 when the problem is about the file as a whole
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// SourceError lists every problem found in the migration files. Load reports all of them at
// once, before anything connects to a database, so one run shows the whole list.
type SourceError struct {
	Problems []Problem
}

func (e *SourceError) Error() string {
	var b strings.Builder
	if len(e.Problems) == 1 {
		b.WriteString("invalid migration files: ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "invalid migration files (%d problems):", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ExitCode is 2: bad input, nothing was changed.
func (e *SourceError) ExitCode() int { return exitcode.Usage }

// sortProblems puts problems in the order a SourceError lists them: by file, then line.
func sortProblems(problems []Problem) {
	sort.SliceStable(problems, func(i, j int) bool {
		if problems[i].File != problems[j].File {
			return problems[i].File < problems[j].File
		}
		return problems[i].Line < problems[j].Line
	})
}

// Load reads the migrations in dir of fsys, sorted by version. Files whose names do not start
// with '.' and end in ".sql" must be migrations ("<version>_<name>.sql") or rollbacks
// ("<version>_<name>.rollback.sql"); other files (README.md, …) and directories are ignored.
// Every problem — unparsable names, duplicate versions, rollbacks without a migration,
// unreadable or non-UTF-8 files, unknown directives, transaction control in a transactional
// file — is collected into one *SourceError (exit code 2).
//
// A file that contains BEGIN, COMMIT, ROLLBACK, END or ABORT as a statement is rejected here
// rather than at run time unless it is marked no-transaction: the engine wraps each
// transactional file and its ledger row in one transaction, and such a statement would break
// that guarantee halfway through an apply.
//
// Only regular files of at most safefile.DefaultMaxSize bytes are read: a symbolic link is
// refused, since where it leads cannot be checked through an fs.FS (LoadDir follows the ones
// that stay inside the project), and so are FIFOs and devices, which are never opened.
func Load(fsys fs.FS, dir string) ([]*Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, &SourceError{Problems: []Problem{{File: dir, Msg: fmt.Sprintf("cannot read directory: %v", unwrapPathError(err))}}}
	}
	read := func(base string, mode fs.FileMode, _ []byte) ([]byte, error) {
		return readFS(fsys, path.Join(dir, base), mode, safefile.DefaultMaxSize)
	}
	list := make([]dircache.Entry, len(entries))
	for i, e := range entries {
		list[i] = dircache.Entry{Name: e.Name(), Mode: e.Type()}
	}
	migs, _, err := loadEntries(list, func(i int) string { return path.Join(dir, list[i].Name) },
		func(i int, file string, dst *Script, buf []byte) (loaded, []byte) {
			return loadFile(read, list[i].Name, file, list[i].Mode, dst, buf)
		})
	return migs, err
}

// readFS reads the regular file name of fsys, listed with type mode, up to limit bytes.
func readFS(fsys fs.FS, name string, mode fs.FileMode, limit int64) ([]byte, error) {
	if mode&fs.ModeSymlink != 0 {
		return nil, &safefile.Error{Path: name, Reason: "is a symbolic link; migrations read from an fs.FS must be regular files"}
	}
	if err := safefile.CheckMode(name, mode); err != nil {
		return nil, err
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if err := safefile.CheckMode(name, st.Mode()); err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, safefile.TooLarge(name, limit)
	}
	return safefile.ReadAll(name, f, st.Size(), limit)
}

// fileResult is the outcome of loading the file entries[index] of loadEntries.
type fileResult struct {
	index int
	loaded
}

// isCandidate reports whether a listed name is one Load looks at: the others are ignored.
func isCandidate(base string) bool {
	return !strings.HasPrefix(base, ".") && (strings.HasSuffix(base, sqlExt) || strings.HasSuffix(strings.ToLower(base), sqlExt))
}

// loadFunc loads the file entries[i], named file in problems, into *dst, using buf as scratch
// space; it returns what else it learnt and the buffer to use next.
type loadFunc func(i int, file string, dst *Script, buf []byte) (loaded, []byte)

// loadEntries loads the migration files among entries with load, in parallel, and puts them
// together. It returns, besides the migrations, what load returned for each file it was given.
//
// The names alone decide where each file's script goes (a migration, its rollback, or nowhere
// for a file that is a problem by its name), so that the loads write the scripts in place:
// with thousands of files, every copy and every allocation shows in a run that has little
// else to do.
func loadEntries(entries []dircache.Entry, join func(i int) string, load loadFunc) ([]*Migration, []fileResult, error) {
	type candidate struct {
		index int
		file  string
		name  fileName
		dst   *Script
		mig   int // index in slab of the migration, or of the one a rollback belongs to; -1: none
	}
	var problems []Problem
	cands := make([]candidate, 0, len(entries))
	nDown := 0
	for i, e := range entries {
		if !isCandidate(e.Name) {
			continue
		}
		file := join(i)
		if e.Mode.IsDir() {
			problems = append(problems, Problem{File: file, Msg: "is a directory, not a migration file"})
			continue
		}
		fn, err := parseName(e.Name)
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: "bad migration file name: " + err.Error()})
			continue
		}
		if fn.rollback {
			nDown++
		}
		cands = append(cands, candidate{index: i, file: file, name: fn, mig: -1})
	}

	// One allocation for all migrations, one for all rollbacks: thousands of small ones show.
	slab := make([]Migration, 0, len(cands)-nDown)
	downs := make([]Script, nDown)
	var spare []Script // the scripts of files that are problems by their names
	byVersion := make(map[int64]int, len(cands)-nDown)
	for i := range cands {
		c := &cands[i]
		if c.name.rollback {
			continue
		}
		if prev, ok := byVersion[c.name.version]; ok {
			problems = append(problems, Problem{File: c.file, Msg: fmt.Sprintf("duplicate version %d (also %s)", c.name.version, slab[prev].Up.File)})
			continue
		}
		c.mig = len(slab)
		byVersion[c.name.version] = c.mig
		slab = append(slab, Migration{Version: c.name.version, Name: c.name.name, Up: Script{File: c.file}})
	}
	nd := 0
	for i := range cands {
		c := &cands[i]
		switch k, ok := byVersion[c.name.version]; {
		case !c.name.rollback:
			if c.mig >= 0 {
				c.dst = &slab[c.mig].Up
			}
		case !ok || slab[k].Name != c.name.name:
			want := fmt.Sprintf("%d_%s.sql", c.name.version, c.name.name)
			if ok {
				want += fmt.Sprintf("; version %d is %s", c.name.version, slab[k].Up.File)
			}
			problems = append(problems, Problem{File: c.file, Msg: "rollback without migration (no " + want + ")"})
		case slab[k].Down != nil:
			problems = append(problems, Problem{File: c.file, Msg: fmt.Sprintf("duplicate rollback for version %d (also %s)", c.name.version, slab[k].Down.File)})
		default:
			c.mig, c.dst = k, &downs[nd]
			c.dst.File = c.file
			slab[k].Down = c.dst
			nd++
		}
		if c.dst == nil {
			// Still read: its own problems are reported too.
			spare = append(spare, Script{})
		}
	}
	si := 0
	for i := range cands {
		if cands[i].dst == nil {
			cands[i].dst = &spare[si]
			si++
		}
	}

	// System calls dominate; more workers than cores keep them overlapping.
	results := make([]fileResult, len(cands))
	workers := min(max(runtime.GOMAXPROCS(0)*2, 8), len(cands))
	var wg sync.WaitGroup
	var next sync.Mutex
	idx := 0
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte // made by the first read: a load from the cache reads nothing
			for {
				next.Lock()
				i := idx
				idx += 16
				next.Unlock()
				if i >= len(cands) {
					return
				}
				for j := i; j < min(i+16, len(cands)); j++ {
					c := &cands[j]
					results[j].index = c.index
					results[j].loaded, buf = load(c.index, c.file, c.dst, buf)
				}
			}
		}()
	}
	wg.Wait()

	for i := range cands {
		problems = append(problems, results[i].problems...)
	}
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, results, &SourceError{Problems: problems}
	}
	if len(slab) == 0 {
		return []*Migration{}, results, nil
	}
	// One string for all checksums.
	const hexLen = 2 * sha256.Size
	hexSums := make([]byte, hexLen*len(slab))
	for i := range cands {
		if c := &cands[i]; !c.name.rollback {
			hex.Encode(hexSums[c.mig*hexLen:], results[i].sum[:])
			slab[c.mig].Description = results[i].desc
		}
	}
	all := unsafe.String(&hexSums[0], len(hexSums)) // never written again
	migs := make([]*Migration, len(slab))
	for i := range slab {
		slab[i].Checksum = all[i*hexLen : (i+1)*hexLen]
		migs[i] = &slab[i]
	}
	slices.SortFunc(migs, func(a, b *Migration) int { return cmp.Compare(a.Version, b.Version) })
	return migs, results, nil
}
