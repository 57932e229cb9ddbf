package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/sqlscan"
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

const (
	sqlExt      = ".sql"
	rollbackExt = ".rollback.sql"
	// directivePrefix starts a poststack directive in a leading comment line.
	directivePrefix = "poststack:"
	noTransaction   = "no-transaction"
)

// fileName is a parsed migration file name.
type fileName struct {
	version  int64
	name     string
	rollback bool
}

// ParseName parses a migration file name: "<version>_<name>.sql" or
// "<version>_<name>.rollback.sql". The version is the leading decimal digits (leading zeros
// allowed, at least 1); the name is non-empty and made of ASCII letters, digits, '_', '-' and '.'.
func ParseName(base string) (version int64, name string, rollback bool, err error) {
	f, err := parseName(base)
	return f.version, f.name, f.rollback, err
}

func parseName(base string) (fileName, error) {
	var f fileName
	stem, ok := strings.CutSuffix(base, rollbackExt)
	if ok {
		f.rollback = true
	} else if stem, ok = strings.CutSuffix(base, sqlExt); !ok {
		return f, errors.New(`name must end in ".sql"`)
	}
	digits := 0
	for digits < len(stem) && stem[digits] >= '0' && stem[digits] <= '9' {
		digits++
	}
	if digits == 0 {
		return f, errors.New("name must start with a version number (<version>_<name>.sql)")
	}
	v, err := strconv.ParseInt(stem[:digits], 10, 64)
	if err != nil {
		return f, fmt.Errorf("version %s is larger than %d", stem[:digits], int64(math.MaxInt64))
	}
	if v == 0 {
		return f, errors.New("version must be 1 or more")
	}
	if digits == len(stem) || stem[digits] != '_' {
		return f, errors.New(`version must be followed by "_<name>" (<version>_<name>.sql)`)
	}
	name := stem[digits+1:]
	if name == "" {
		return f, errors.New(`name after "<version>_" is empty`)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
			return f, fmt.Errorf("name %q has %q; use letters, digits, '_', '-' and '.'", name, r)
		}
	}
	f.version, f.name = v, name
	return f, nil
}

// Directives are the settings a file declares in its leading comment lines.
type Directives struct {
	NoTransaction bool
	Description   string
}

// lineProblem is a problem at a line of a file being parsed.
type lineProblem struct {
	line int
	msg  string
}

// ParseDirectives reads the leading comment lines of a SQL text (up to the first line that is
// neither blank nor a "--" comment): "-- poststack:no-transaction" and "-- Description: text".
// Any other "-- poststack:" directive is an error, so that a typo cannot silently run a
// migration inside a transaction it was meant to avoid.
func ParseDirectives(text string) (Directives, error) {
	d, probs := parseDirectives(text)
	if len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, p := range probs {
			msgs[i] = fmt.Sprintf("line %d: %s", p.line, p.msg)
		}
		return d, errors.New(strings.Join(msgs, "; "))
	}
	return d, nil
}

func parseDirectives(text string) (Directives, []lineProblem) {
	var d Directives
	var probs []lineProblem
	for lineNo := 1; text != ""; lineNo++ {
		line, rest, _ := strings.Cut(text, "\n")
		text = rest
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		body, ok := strings.CutPrefix(line, "--")
		if !ok {
			break
		}
		body = strings.TrimSpace(strings.TrimLeft(body, "-"))
		lower := strings.ToLower(body)
		switch {
		case strings.HasPrefix(lower, directivePrefix):
			name := strings.TrimSpace(lower[len(directivePrefix):])
			if name == noTransaction {
				d.NoTransaction = true
				continue
			}
			probs = append(probs, lineProblem{lineNo, fmt.Sprintf("unknown directive %q (known: %q)",
				excerpt(strings.TrimSpace(body)), directivePrefix+noTransaction)})
		case strings.HasPrefix(lower, "description:"):
			desc := strings.TrimSpace(body[len("description:"):])
			if d.Description != "" && desc != "" {
				d.Description += " " + desc
			} else if desc != "" {
				d.Description = desc
			}
		}
	}
	return d, probs
}

// normalize returns the text as the server sees it and the checksum of the file.
func normalize(data []byte) (sql string, sum [sha256.Size]byte) {
	if bytes.Contains(data, []byte("\r\n")) {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	return string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), sha256.Sum256(data)
}

// lineOf returns the 1-based line of byte offset off in data.
func lineOf(data []byte, off int) int {
	return 1 + bytes.Count(data[:off], []byte("\n"))
}

// invalidUTF8 returns the offset of the first byte that is not valid UTF-8, or -1.
func invalidUTF8(data []byte) int {
	for i := 0; i < len(data); {
		if data[i] < utf8.RuneSelf {
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// loaded is the outcome of reading one file.
type loaded struct {
	script   Script
	desc     string
	sum      [sha256.Size]byte
	problems []Problem
	// hit is set when the result came from the cache; entry, when it can go into the cache.
	hit   bool
	entry *cacheEntry
}

// readFunc reads the file base of the migrations directory, whose type as listed is mode (0 for
// a regular file), using buf as scratch space when it can; the result is only valid until the
// next call with the same buf. It refuses, with a *safefile.Error, a file that is not regular, is
// larger than the size cap, or is a symbolic link leading outside the project.
type readFunc func(base string, mode fs.FileMode, buf []byte) ([]byte, error)

// loadFile reads, checks and parses one migration or rollback file.
func loadFile(read readFunc, base, file string, mode fs.FileMode, buf []byte) (loaded, []byte) {
	out := loaded{script: Script{File: file}}
	data, err := read(base, mode, buf)
	if cap(data) > cap(buf) {
		buf = data[:0]
	}
	if err != nil {
		out.problems = append(out.problems, Problem{File: file, Msg: readProblem(err)})
		return out, buf
	}
	if off := invalidUTF8(data); off >= 0 {
		out.problems = append(out.problems, Problem{File: file, Line: lineOf(data, off), Msg: "not valid UTF-8"})
		return out, buf
	}
	if off := bytes.IndexByte(data, 0); off >= 0 {
		// The wire protocol ends query strings at NUL; the server would see a truncated file.
		out.problems = append(out.problems, Problem{File: file, Line: lineOf(data, off), Msg: "contains a NUL byte"})
		return out, buf
	}
	out.script.SQL, out.sum = normalize(data)
	d, probs := parseDirectives(out.script.SQL)
	for _, p := range probs {
		out.problems = append(out.problems, Problem{File: file, Line: p.line, Msg: p.msg})
	}
	out.script.NoTransaction, out.desc = d.NoTransaction, d.Description
	if !d.NoTransaction {
		if st, ok := sqlscan.HasTransactionControl(sqlscan.Split(out.script.SQL)); ok {
			out.problems = append(out.problems, Problem{File: file, Line: st.Line, Msg: fmt.Sprintf(
				"%q would end the transaction the migration runs in; remove it, or add %q to run the file outside a transaction",
				excerpt(firstLine(st.SQL)), "-- "+directivePrefix+noTransaction)})
		}
	}
	return out, buf
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

// maxExcerpt is the most of a file's text a problem quotes: a line of
// megabytes would otherwise be copied to stderr, the log and annotations.
const maxExcerpt = 80

// excerpt returns s, cut to maxExcerpt bytes with "…".
func excerpt(s string) string {
	head, more := cutText(s, maxExcerpt)
	if more == 0 {
		return s
	}
	return head + "…"
}

// readProblem is the message of a problem for a file that was not read: a refusal says why
// (the file's name is the problem's), another error what the system said.
func readProblem(err error) string {
	var se *safefile.Error
	if errors.As(err, &se) {
		return se.Reason
	}
	return fmt.Sprintf("cannot read: %v", unwrapPathError(err))
}

// unwrapPathError drops the *fs.PathError's repetition of the file name.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
