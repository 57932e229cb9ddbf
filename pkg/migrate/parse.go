package migrate

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/poststack/poststack/pkg/migrate/internal/dircache"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/sqlscan"
)

const (
	sqlExt      = ".sql"
	rollbackExt = ".rollback.sql"
	// directivePrefix starts a poststack directive in a leading comment line.
	directivePrefix = "poststack:"
	noTransaction   = "no-transaction"
	lintIgnore      = "lint-ignore"
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
// "-- poststack:lint-ignore …" is pkg/lint's and passes; any other "-- poststack:" directive is
// an error, so that a typo cannot silently run a migration inside a transaction it was meant to avoid.
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
			if name == lintIgnore || strings.HasPrefix(name, lintIgnore+" ") || strings.HasPrefix(name, lintIgnore+"\t") {
				continue // pkg/lint's; it checks them
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

// loaded is what loading one file learnt, besides its script.
type loaded struct {
	desc     string
	sum      [sha256.Size]byte
	problems []Problem
	// rec is what the cache is to keep about the file (nil: nothing); fresh is set when the
	// file was read to make it, rather than taken from the cache.
	rec   *dircache.Record
	fresh bool
}

// readFunc reads the file base of the migrations directory, whose type as listed is mode (0 for
// a regular file), using buf as scratch space when it can; the result is only valid until the
// next call with the same buf. It refuses, with a *safefile.Error, a file that is not regular, is
// larger than the size cap, or is a symbolic link leading outside the project.
type readFunc func(base string, mode fs.FileMode, buf []byte) ([]byte, error)

// loadFile reads, checks and parses one migration or rollback file into *s.
func loadFile(read readFunc, base, file string, mode fs.FileMode, s *Script, buf []byte) (loaded, []byte) {
	var out loaded
	*s = Script{File: file}
	if buf == nil {
		buf = make([]byte, 0, 64<<10)
	}
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
	s.SQL, out.sum = normalize(data)
	s.sum = out.sum
	d, probs := parseDirectives(s.SQL)
	for _, p := range probs {
		out.problems = append(out.problems, Problem{File: file, Line: p.line, Msg: p.msg})
	}
	s.NoTransaction, out.desc = d.NoTransaction, d.Description
	if !d.NoTransaction {
		if st, ok := sqlscan.HasTransactionControl(sqlscan.Split(s.SQL)); ok {
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
