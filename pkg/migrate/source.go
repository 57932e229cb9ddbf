package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/poststack/poststack/pkg/exitcode"
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
	// then run one by one outside a transaction (CREATE INDEX CONCURRENTLY needs that).
	NoTransaction bool

	// lazy is set (its path is not empty) while SQL has not been read; see Text.
	lazy lazyText
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
	list := make([]dirEntry, len(entries))
	for i, e := range entries {
		list[i] = dirEntry{e.Name(), e.Type()}
	}
	migs, _, err := loadEntries(list, func(base string) string { return path.Join(dir, base) },
		func(base, file string, mode fs.FileMode, buf []byte) (loaded, []byte) {
			return loadFile(read, base, file, mode, buf)
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

// dirEntry is a directory entry as listed.
type dirEntry struct {
	name string
	// mode holds the entry's type bits only: 0 for a regular file, fs.ModeSymlink for a
	// symbolic link (not followed), fs.ModeDir, fs.ModeNamedPipe, ….
	mode fs.FileMode
}

// fileResult is the outcome of loading the file base.
type fileResult struct {
	base string
	loaded
}

// loadEntries loads the migration files among entries with load, in parallel, and puts them
// together. It returns, besides the migrations, what load returned for each file it was given.
func loadEntries(entries []dirEntry, join func(string) string, load func(base, file string, mode fs.FileMode, buf []byte) (loaded, []byte)) ([]*Migration, []fileResult, error) {
	type candidate struct {
		base, file string
		mode       fs.FileMode
		name       fileName
	}
	var problems []Problem
	cands := make([]candidate, 0, len(entries))
	for _, e := range entries {
		base := e.name
		if strings.HasPrefix(base, ".") || !strings.HasSuffix(strings.ToLower(base), sqlExt) {
			continue
		}
		file := join(base)
		if e.mode.IsDir() {
			problems = append(problems, Problem{File: file, Msg: "is a directory, not a migration file"})
			continue
		}
		fn, err := parseName(base)
		if err != nil {
			problems = append(problems, Problem{File: file, Msg: "bad migration file name: " + err.Error()})
			continue
		}
		cands = append(cands, candidate{base, file, e.mode, fn})
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
			buf := make([]byte, 0, 64<<10)
			for {
				next.Lock()
				i := idx
				idx += 16
				next.Unlock()
				if i >= len(cands) {
					return
				}
				for j := i; j < min(i+16, len(cands)); j++ {
					results[j].base = cands[j].base
					results[j].loaded, buf = load(cands[j].base, cands[j].file, cands[j].mode, buf)
				}
			}
		}()
	}
	wg.Wait()

	byVersion := make(map[int64]*Migration, len(cands))
	// One allocation for all migrations, one for all rollbacks, one for all checksums:
	// thousands of small ones show in a run that has little else to do.
	slab := make([]Migration, 0, len(cands))
	sums := make([][sha256.Size]byte, 0, len(cands))
	downs := make([]Script, 0, len(cands))
	var rollbacks []int // indexes of cands
	for i, c := range cands {
		l := &results[i].loaded
		problems = append(problems, l.problems...)
		if c.name.rollback {
			rollbacks = append(rollbacks, i)
			continue
		}
		if prev, ok := byVersion[c.name.version]; ok {
			problems = append(problems, Problem{File: c.file, Msg: fmt.Sprintf("duplicate version %d (also %s)", c.name.version, prev.Up.File)})
			continue
		}
		slab = append(slab, Migration{Version: c.name.version, Name: c.name.name, Description: l.desc, Up: l.script})
		sums = append(sums, l.sum)
		byVersion[c.name.version] = &slab[len(slab)-1]
	}
	for _, i := range rollbacks {
		r := cands[i]
		m, ok := byVersion[r.name.version]
		switch {
		case !ok || m.Name != r.name.name:
			want := fmt.Sprintf("%d_%s.sql", r.name.version, r.name.name)
			if ok {
				want += fmt.Sprintf("; version %d is %s", r.name.version, m.Up.File)
			}
			problems = append(problems, Problem{File: r.file, Msg: "rollback without migration (no " + want + ")"})
		case m.Down != nil:
			problems = append(problems, Problem{File: r.file, Msg: fmt.Sprintf("duplicate rollback for version %d (also %s)", r.name.version, m.Down.File)})
		default:
			downs = append(downs, results[i].script)
			m.Down = &downs[len(downs)-1]
		}
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool {
			if problems[i].File != problems[j].File {
				return problems[i].File < problems[j].File
			}
			return problems[i].Line < problems[j].Line
		})
		return nil, results, &SourceError{Problems: problems}
	}
	hexSums := make([]byte, hex.EncodedLen(sha256.Size)*len(sums))
	for i := range sums {
		hex.Encode(hexSums[i*hex.EncodedLen(sha256.Size):], sums[i][:])
	}
	all := string(hexSums)
	migs := make([]*Migration, len(slab))
	for i := range slab {
		slab[i].Checksum = all[i*hex.EncodedLen(sha256.Size) : (i+1)*hex.EncodedLen(sha256.Size)]
		migs[i] = &slab[i]
	}
	sort.Slice(migs, func(i, j int) bool { return migs[i].Version < migs[j].Version })
	return migs, results, nil
}
