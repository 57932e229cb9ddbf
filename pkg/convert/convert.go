// Package convert rewrites the migration files of other tools into poststack's layout
// (<version>_<name>.sql and <version>_<name>.rollback.sql): pressly/goose's single files with
// "-- +goose Up" and "-- +goose Down" sections, and golang-migrate's <version>_<name>.up.sql and
// .down.sql pairs. Versions keep their digits as they are (goose's timestamps included).
//
// The directory read may come from anywhere, so it is read as pkg/migrate reads ours: only
// regular files, no larger than safefile.DefaultMaxSize, and no symbolic link leading out of
// it. Writing never overwrites a file and never follows a symbolic link.
package convert

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing/fstest"
	"unicode/utf8"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// Tool names a migration tool whose files can be converted.
type Tool string

// The tools.
const (
	Goose         Tool = "goose"
	GolangMigrate Tool = "golang-migrate"
)

// ParseTool returns the Tool named s, or an error (exit code 2).
func ParseTool(s string) (Tool, error) {
	switch Tool(s) {
	case Goose, GolangMigrate:
		return Tool(s), nil
	case "":
		return "", exitcode.Usagef("--from is required: goose or golang-migrate")
	}
	return "", exitcode.Usagef("unknown tool %q for --from: goose or golang-migrate", s)
}

// File is one file of our layout to write.
type File struct {
	// Name is the file's base name ("0001_users.sql").
	Name string
	Text string
}

// Migration is one converted migration.
type Migration struct {
	Version int64
	Name    string
	// From are the other tool's files it comes from, as Read named them.
	From []string
	Up   File
	// Down is nil when there is nothing to roll back with (an empty Down section, no
	// .down.sql).
	Down          *File
	NoTransaction bool
	// Notes say what the conversion changed besides the layout.
	Notes []string
}

// Problem is a file of the directory that is not converted.
type Problem struct {
	File string
	Line int
	Msg  string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Msg)
	}
	return fmt.Sprintf("%s: %s", p.File, p.Msg)
}

// Result is a directory of the other tool's files, converted in memory.
type Result struct {
	Tool       Tool
	Dir        string
	Migrations []Migration
	// Invalid are files the tool itself could not have run, or that cannot be read: bad input.
	Invalid []Problem
	// Unconvertible are migrations poststack's layout cannot express: goose's Go migrations
	// and its ENVSUB substitution.
	Unconvertible []Problem
}

// ProblemError lists the files that stop a conversion; nothing is written. Its exit code is
// 2 when a file is invalid, 3 when all are valid but some cannot be converted.
type ProblemError struct {
	Problems []Problem
	code     int
}

func (e *ProblemError) Error() string {
	what := "cannot convert"
	if e.code == exitcode.Usage {
		what = "invalid migration files"
	}
	if len(e.Problems) == 1 {
		return what + ": " + e.Problems[0].String() + "; nothing was written"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d problems; nothing was written):", what, len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// ExitCode is 2 for invalid files, 3 for unconvertible ones.
func (e *ProblemError) ExitCode() int { return e.code }

// Err returns what stops r from being written: a *ProblemError, or nil.
func (r *Result) Err() error {
	if len(r.Invalid) > 0 {
		return &ProblemError{Problems: append(slices.Clone(r.Invalid), r.Unconvertible...), code: exitcode.Usage}
	}
	if len(r.Unconvertible) > 0 {
		return &ProblemError{Problems: r.Unconvertible, code: exitcode.Check}
	}
	return nil
}

// Read reads the tool's migrations in dir (named by the user, so dir itself may be a symbolic
// link; the files in it may not lead out of it) and converts them. Files the tool ignores
// (other extensions, directories, dot files) are ignored. What is wrong with the files is in
// the Result (see Result.Err); the error is for a directory that cannot be listed.
func Read(tool Tool, dir string) (*Result, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, exitcode.Usagef("cannot read directory %s: %v", dir, unwrap(err))
	}
	r := &Result{Tool: tool, Dir: dir}
	read := func(name string) (string, bool) {
		path := filepath.Join(dir, name)
		data, err := safefile.ReadFile(dir, path)
		if err != nil {
			var se *safefile.Error
			if errors.As(err, &se) {
				r.Invalid = append(r.Invalid, Problem{File: path, Msg: se.Reason})
			} else {
				r.Invalid = append(r.Invalid, Problem{File: path, Msg: unwrap(err).Error()})
			}
			return "", false
		}
		if !utf8.Valid(data) {
			r.Invalid = append(r.Invalid, Problem{File: path, Msg: "not valid UTF-8"})
			return "", false
		}
		if i := bytes.IndexByte(data, 0); i >= 0 {
			r.Invalid = append(r.Invalid, Problem{File: path, Line: 1 + bytes.Count(data[:i], []byte("\n")), Msg: "contains a NUL byte"})
			return "", false
		}
		return string(data), true
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	switch tool {
	case Goose:
		r.readGoose(names, read)
	case GolangMigrate:
		r.readGolangMigrate(names, read)
	default:
		return nil, exitcode.Usagef("convert: unknown tool %q", tool)
	}
	slices.SortStableFunc(r.Migrations, func(a, b Migration) int {
		switch {
		case a.Version < b.Version:
			return -1
		case a.Version > b.Version:
			return 1
		}
		return 0
	})
	r.check()
	return r, nil
}

func (r *Result) readGoose(names []string, read func(string) (string, bool)) {
	for _, name := range names {
		path := filepath.Join(r.Dir, name)
		ext := filepath.Ext(name)
		if ext != ".sql" && ext != ".go" {
			continue
		}
		if ext == ".go" && strings.HasSuffix(name, "_test.go") {
			continue
		}
		digits, title, err := splitName(strings.TrimSuffix(name, ext))
		if err != nil {
			if ext == ".go" {
				continue // a Go file beside the migrations (main.go), not one of them
			}
			r.Invalid = append(r.Invalid, Problem{File: path, Msg: err.Error()})
			continue
		}
		if ext == ".go" {
			r.Unconvertible = append(r.Unconvertible, Problem{File: path, Msg: "a Go migration: rewrite it as SQL (poststack runs SQL files only)"})
			continue
		}
		text, ok := read(name)
		if !ok {
			continue
		}
		g, err := ParseGoose(text)
		if err != nil {
			var le *LineError
			if errors.As(err, &le) {
				r.Invalid = append(r.Invalid, Problem{File: path, Line: le.Line, Msg: le.Msg})
			} else {
				r.Invalid = append(r.Invalid, Problem{File: path, Msg: err.Error()})
			}
			continue
		}
		if g.EnvsubLine > 0 {
			r.Unconvertible = append(r.Unconvertible, Problem{File: path, Line: g.EnvsubLine,
				Msg: `"-- +goose ENVSUB ON" substitutes environment variables when goose runs it; write the values into the SQL`})
			continue
		}
		m := Migration{From: []string{path}, NoTransaction: g.NoTransaction}
		m.Version, _ = strconv.ParseInt(digits, 10, 64)
		m.Name = ourName(title)
		stem := digits + "_" + m.Name
		m.Up = File{Name: stem + ".sql", Text: compose(g.NoTransaction, g.Header+g.Up)}
		if hasSQL(g.Down) {
			m.Down = &File{Name: stem + ".rollback.sql", Text: compose(g.NoTransaction, g.Down)}
		}
		if m.Name != title {
			m.Notes = append(m.Notes, fmt.Sprintf("name %q written as %q", title, m.Name))
		}
		r.Migrations = append(r.Migrations, m)
	}
}

func (r *Result) readGolangMigrate(names []string, read func(string) (string, bool)) {
	type pair struct {
		digits, title string
		up, down      string // file names
	}
	byVersion := map[int64]*pair{}
	var order []int64
	for _, name := range names {
		path := filepath.Join(r.Dir, name)
		var dir string
		var stem string
		switch {
		case strings.HasSuffix(name, ".up.sql"):
			dir, stem = "up", strings.TrimSuffix(name, ".up.sql")
		case strings.HasSuffix(name, ".down.sql"):
			dir, stem = "down", strings.TrimSuffix(name, ".down.sql")
		default:
			continue // golang-migrate skips names it cannot parse too
		}
		digits, title, err := splitName(stem)
		if err != nil {
			r.Invalid = append(r.Invalid, Problem{File: path, Msg: err.Error()})
			continue
		}
		v, _ := strconv.ParseInt(digits, 10, 64)
		p := byVersion[v]
		if p == nil {
			p = &pair{digits: digits, title: title}
			byVersion[v] = p
			order = append(order, v)
		}
		slot := &p.up
		if dir == "down" {
			slot = &p.down
		}
		if *slot != "" {
			r.Invalid = append(r.Invalid, Problem{File: path, Msg: fmt.Sprintf("version %d has a second %s file beside %s", v, dir, *slot)})
			continue
		}
		*slot = name
	}
	for _, v := range order {
		p := byVersion[v]
		if p.up == "" {
			r.Invalid = append(r.Invalid, Problem{File: filepath.Join(r.Dir, p.down), Msg: "a down file without its .up.sql"})
			continue
		}
		upText, ok := read(p.up)
		if !ok {
			continue
		}
		m := Migration{Version: v, Name: ourName(p.title), From: []string{filepath.Join(r.Dir, p.up)}}
		stem := p.digits + "_" + m.Name
		up, noTx, notes := golangMigrateText(upText)
		m.NoTransaction, m.Notes = noTx, notes
		m.Up = File{Name: stem + ".sql", Text: up}
		if p.down != "" {
			downText, ok := read(p.down)
			if !ok {
				continue
			}
			m.From = append(m.From, filepath.Join(r.Dir, p.down))
			if hasSQL(downText) {
				down, _, dnotes := golangMigrateText(downText)
				for _, n := range dnotes {
					m.Notes = append(m.Notes, "rollback: "+n)
				}
				m.Down = &File{Name: stem + ".rollback.sql", Text: down}
			}
		}
		if m.Name != p.title {
			m.Notes = append(m.Notes, fmt.Sprintf("name %q written as %q", p.title, m.Name))
		}
		r.Migrations = append(r.Migrations, m)
	}
}

// golangMigrateText maps a golang-migrate file, which its Postgres driver sends as one
// multi-statement query (one implicit transaction), to ours: a BEGIN … COMMIT wrapped around
// the whole file is dropped (ours runs in a transaction with its ledger row); other
// transaction control, or a statement PostgreSQL refuses to run in a transaction block
// (CREATE INDEX CONCURRENTLY, VACUUM, …), makes it a no-transaction migration.
func golangMigrateText(text string) (out string, noTx bool, notes []string) {
	text = strings.TrimPrefix(strings.ReplaceAll(text, "\r\n", "\n"), "\ufeff")
	stmts := sqlscan.Split(text)
	if n := len(stmts); n >= 2 && isBegin(stmts[0].SQL) && isCommit(stmts[n-1].SQL) {
		if _, ok := sqlscan.HasTransactionControl(stmts[1 : n-1]); !ok {
			first, last := stmts[0], stmts[n-1]
			middle := skipTerminator(text[first.Offset+len(first.SQL) : last.Offset])
			text = text[:first.Offset] + strings.Trim(middle, " \t\n") + "\n" + skipTerminator(text[last.Offset+len(last.SQL):])
			notes = append(notes, "the BEGIN/COMMIT around the file dropped: it runs in a transaction with its ledger row")
			stmts = sqlscan.Split(text)
		}
	}
	if st, ok := sqlscan.HasTransactionControl(stmts); ok {
		noTx = true
		notes = append(notes, fmt.Sprintf("line %d: %q controls the transaction: marked %s", st.Line, excerpt(firstLine(st.SQL)), noTxDirective))
	} else {
		for _, st := range stmts {
			if outsideTransaction(st.SQL) {
				noTx = true
				notes = append(notes, fmt.Sprintf("line %d: %q cannot run in a transaction block: marked %s", st.Line, excerpt(firstLine(st.SQL)), noTxDirective))
				break
			}
		}
	}
	return compose(noTx, text), noTx, notes
}

// skipTerminator drops the ';' that ends the statement before rest, and the rest of its line
// when blank.
func skipTerminator(rest string) string {
	rest = strings.TrimPrefix(strings.TrimLeft(rest, " \t"), ";")
	return strings.TrimPrefix(strings.TrimLeft(rest, " \t"), "\n")
}

func words(sql string, n int) []string {
	var out []string
	for _, f := range strings.Fields(strings.ToLower(sql)) {
		if len(out) == n {
			break
		}
		out = append(out, strings.TrimSuffix(f, ";"))
	}
	return out
}

func isBegin(sql string) bool {
	w := words(sql, 2)
	return len(w) > 0 && (w[0] == "begin" && (len(w) == 1 || w[1] == "transaction" || w[1] == "work") ||
		w[0] == "start" && len(w) > 1 && w[1] == "transaction")
}

func isCommit(sql string) bool {
	w := words(sql, 2)
	return len(w) > 0 && (w[0] == "commit" || w[0] == "end") && (len(w) == 1 || w[1] == "transaction" || w[1] == "work")
}

// outsideTransaction tells a statement PostgreSQL runs only outside a transaction block.
func outsideTransaction(sql string) bool {
	w := words(sql, 4)
	has := func(i int, s string) bool { return len(w) > i && w[i] == s }
	switch {
	case has(0, "create") && has(1, "index") && has(2, "concurrently"),
		has(0, "create") && has(1, "unique") && has(2, "index") && has(3, "concurrently"),
		has(0, "drop") && has(1, "index") && has(2, "concurrently"),
		has(0, "reindex") && slices.Contains(w, "concurrently"),
		has(0, "vacuum"),
		has(0, "create") && has(1, "database"),
		has(0, "drop") && has(1, "database"),
		has(0, "alter") && has(1, "system"),
		has(0, "create") && has(1, "tablespace"),
		has(0, "drop") && has(1, "tablespace"):
		return true
	}
	return false
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.TrimSpace(s)
}

const noTxDirective = "-- poststack:no-transaction"

// compose is a file of ours: the directive first when no-transaction, the SQL without the
// blank lines around it, one final newline.
func compose(noTx bool, sql string) string {
	sql = strings.Trim(sql, "\n")
	var b strings.Builder
	if noTx {
		b.WriteString(noTxDirective + "\n")
	}
	b.WriteString(sql)
	if sql != "" {
		b.WriteByte('\n')
	}
	return b.String()
}

// hasSQL tells whether text holds a statement, not only comments and blank lines.
func hasSQL(text string) bool { return len(sqlscan.Split(text)) > 0 }

// splitName splits "<digits>_<title>" as goose and golang-migrate number their files.
func splitName(stem string) (digits, title string, err error) {
	i := 0
	for i < len(stem) && stem[i] >= '0' && stem[i] <= '9' {
		i++
	}
	if i == 0 {
		return "", "", errors.New("name must start with a version number")
	}
	v, perr := strconv.ParseInt(stem[:i], 10, 64)
	switch {
	case perr != nil:
		return "", "", fmt.Errorf("version %s is too large", stem[:i])
	case v == 0:
		return "", "", errors.New("version must be 1 or more")
	case i == len(stem) || stem[i] != '_':
		return "", "", errors.New(`version must be followed by "_<name>"`)
	}
	return stem[:i], stem[i+1:], nil
}

// ourName is title with what our file names do not allow replaced by '_'.
func ourName(title string) string {
	var b strings.Builder
	for _, r := range title {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "migration"
	}
	return b.String()
}

// check loads the converted files as ps-migrate would and records what it refuses (a
// duplicate version, transaction control in a transactional file, …) as invalid.
func (r *Result) check() {
	fsys := fstest.MapFS{}
	from := map[string]string{}
	for _, m := range r.Migrations {
		for _, f := range m.files() {
			fsys["m/"+f.Name] = &fstest.MapFile{Data: []byte(f.Text)}
			from["m/"+f.Name] = strings.Join(m.From, ", ")
		}
	}
	if len(fsys) == 0 {
		return
	}
	_, err := migrate.Load(fsys, "m")
	var se *migrate.SourceError
	if !errors.As(err, &se) {
		return
	}
	for _, p := range se.Problems {
		file := from[p.File]
		if file == "" {
			file = p.File
		}
		r.Invalid = append(r.Invalid, Problem{File: file, Msg: "converted to " + strings.TrimPrefix(p.String(), "m/") + "; fix it before converting"})
	}
}

func (m Migration) files() []File {
	if m.Down == nil {
		return []File{m.Up}
	}
	return []File{m.Up, *m.Down}
}

// Files returns the files of every migration, in version order.
func (r *Result) Files() []File {
	var out []File
	for _, m := range r.Migrations {
		out = append(out, m.files()...)
	}
	return out
}

// WriteOption configures Write.
type WriteOption func(*writeConfig) error

type writeConfig struct {
	root   string
	dryRun bool
}

// WithRoot names the project directory: a destination whose path lies inside it must really
// be there, with no symbolic link on the way leading out.
func WithRoot(root string) WriteOption {
	return func(c *writeConfig) error {
		if root == "" {
			return errors.New("project directory is empty")
		}
		c.root = root
		return nil
	}
}

// WithDryRun makes Write check everything and write nothing.
func WithDryRun(dry bool) WriteOption {
	return func(c *writeConfig) error { c.dryRun = dry; return nil }
}

// Write writes r's files into dest, creating it when missing, and returns their paths. It
// refuses (exit code 2), before writing anything: a result with problems (Result.Err), a
// destination that is a symbolic link or not a directory, the directory read, a file that
// exists already, and a version dest has already. When a write fails, the files written
// before it are removed.
func Write(r *Result, dest string, opts ...WriteOption) ([]string, error) {
	var c writeConfig
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("convert: %w", err))
		}
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	if err := checkDest(r.Dir, dest, c.root); err != nil {
		return nil, err
	}
	files := r.Files()
	taken, err := versionsIn(dest)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, f := range files {
		p := filepath.Join(dest, f.Name)
		if _, err := os.Lstat(p); err == nil {
			return nil, exitcode.Usagef("%s exists already; convert never overwrites a file", p)
		}
		if v, _, _, err := migrate.ParseName(f.Name); err == nil {
			if other, ok := taken[v]; ok {
				return nil, exitcode.Usagef("%s: version %d is %s already", p, v, filepath.Join(dest, other))
			}
		}
		paths = append(paths, p)
	}
	if c.dryRun {
		return paths, nil
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	// Checked again now that it exists: MkdirAll follows a link planted on the way.
	if err := checkDest(r.Dir, dest, c.root); err != nil {
		return nil, err
	}
	var written []string
	for i, f := range files {
		if err := writeNew(paths[i], f.Text); err != nil {
			for _, p := range written {
				os.Remove(p)
			}
			if errors.Is(err, fs.ErrExist) {
				return nil, exitcode.Usagef("%s exists already; convert never overwrites a file", paths[i])
			}
			return nil, fmt.Errorf("write %s: %w", paths[i], unwrap(err))
		}
		written = append(written, paths[i])
	}
	return written, nil
}

// versionsIn maps the versions of dest's migration files to their names.
func versionsIn(dest string) (map[int64]string, error) {
	entries, err := os.ReadDir(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, exitcode.Usagef("cannot read %s: %v", dest, unwrap(err))
	}
	out := map[int64]string{}
	for _, e := range entries {
		if v, _, rollback, err := migrate.ParseName(e.Name()); err == nil && !rollback {
			out[v] = e.Name()
		}
	}
	return out, nil
}

func checkDest(src, dest, root string) error {
	st, err := os.Lstat(dest)
	switch {
	case err == nil && st.Mode()&fs.ModeSymlink != 0:
		return exitcode.Usagef("migrations directory %s is a symbolic link; convert writes only into a real directory", dest)
	case err == nil && !st.IsDir():
		return exitcode.Usagef("migrations directory %s is not a directory", dest)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return exitcode.Usagef("migrations directory %s: %v", dest, unwrap(err))
	}
	if root != "" && lexicallyInside(root, dest) && !safefile.Contains(root, dest) {
		return exitcode.Usagef("migrations directory %s leads outside the project directory %s (a symbolic link on the way)", dest, root)
	}
	if a, b := realOrAbs(src), realOrAbs(dest); a == b {
		return exitcode.Usagef("migrations directory %s is the directory converted; write into another one (--migrations-path)", dest)
	}
	return nil
}

func lexicallyInside(root, path string) bool {
	r, err1 := filepath.Abs(root)
	p, err2 := filepath.Abs(path)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(r, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func realOrAbs(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		p = r
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// writeNew creates path, which must not exist (O_EXCL, and no symbolic link followed).
func writeNew(path, text string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.WriteString(text)
	if err := errors.Join(werr, f.Close()); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
