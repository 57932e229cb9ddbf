package migrate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// The sum file, SumFile in the migrations directory, lists every migration file with its
// checksum, so that two branches which each add a migration conflict in git rather than merge
// silently, and a file changed or added without `ps-migrate hash` is seen before a run. Its
// format (version sum1) is text, one entry a line, each line ending in "\n":
//
//	sum1 sha256:<hex SHA-256 of every byte after this line>
//	0001_users.sql sha256:<hex>
//	0001_users.rollback.sql sha256:<hex>
//	0002_email_index.sql sha256:<hex>
//
// The entries come in version order, each migration followed by its rollback when it has one;
// a file is named by its base name, and its checksum is the ledger's: SHA-256 of the file with
// CRLF line endings read as LF (Migration.Checksum for a migration, the same for a rollback).
// Any change to the set of files changes the first line, and an added migration adds lines at
// the end, which is where two branches that each add one collide. The file is read with CRLF
// as LF too, so that a checkout converting line endings does not break it.

// SumFile is the name of the sum file in a migrations directory.
const SumFile = "poststack.sum"

// sumFormat is the first word of the sum file: the version of its format.
const sumFormat = "sum1"

// MaxSumSize is the largest sum file CheckSum reads: some 40,000 migrations with their
// rollbacks, far below what would hurt.
const MaxSumSize int64 = 8 << 20

// SumError is a sum file that does not match the migration files, or is not one: the first
// thing wrong, at the sum file's line when there is one. Its exit code is 3 (a check failed).
type SumError struct {
	// File is the sum file as the caller named its directory.
	File string
	// Line is 1-based; 0 when the problem is not at a line (a file missing from it).
	Line int
	Msg  string
}

func (e *SumError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// ExitCode is 3: a check found a problem.
func (e *SumError) ExitCode() int { return exitcode.Check }

// sumEntry is one line of a sum file after the first.
type sumEntry struct {
	name string
	sum  string // "sha256:<hex>"
}

// sumEntries returns the lines the sum file of migs holds after its first, in order.
func sumEntries(migs []*Migration) ([]sumEntry, error) {
	entries := make([]sumEntry, 0, 2*len(migs))
	for _, m := range migs {
		entries = append(entries, sumEntry{filepath.Base(m.Up.File), "sha256:" + m.Checksum})
		if m.Down != nil {
			sum, err := m.Down.fileSum()
			if err != nil {
				return nil, err
			}
			entries = append(entries, sumEntry{filepath.Base(m.Down.File), "sha256:" + hex.EncodeToString(sum[:])})
		}
	}
	return entries, nil
}

// fileSum returns the checksum of the script's file as Migration.Checksum is computed, without
// reading a file LoadDir took from its cache (a stat says whether it is still what the cache
// says; see Text).
func (s *Script) fileSum() ([sha256.Size]byte, error) {
	if probs := s.check(); len(probs) > 0 {
		return [sha256.Size]byte{}, &SourceError{Problems: probs}
	}
	if s.lazy.path != "" {
		return s.lazy.sum, nil
	}
	if s.sum != ([sha256.Size]byte{}) {
		return s.sum, nil
	}
	// A script made by hand rather than loaded: its text is all there is.
	text, err := s.Text()
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	return sha256.Sum256([]byte(text)), nil
}

// SumText returns the content of the sum file for migs (see SumFile).
func SumText(migs []*Migration) ([]byte, error) {
	entries, err := sumEntries(migs)
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	for _, e := range entries {
		body.WriteString(e.name)
		body.WriteByte(' ')
		body.WriteString(e.sum)
		body.WriteByte('\n')
	}
	head := fmt.Sprintf("%s sha256:%x\n", sumFormat, sha256.Sum256(body.Bytes()))
	return append([]byte(head), body.Bytes()...), nil
}

// WriteSum writes the sum file of migs into dir, the directory they were loaded from, unless
// it already holds exactly that (so that an unchanged directory stays unchanged). The file is
// replaced atomically, mode 0644. A symbolic link or anything but a regular file where the sum
// file goes is refused (exit code 2): the file is written in dir and nowhere else.
func WriteSum(dir string, migs []*Migration) error {
	text, err := SumText(migs)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, SumFile)
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return &safefile.Error{Path: path, Reason: "is a symbolic link; the sum file must be a regular file: remove the link, then run `ps-migrate hash`"}
	case !st.Mode().IsRegular():
		return safefile.CheckMode(path, st.Mode())
	default:
		if old, err := safefile.ReadFile(dir, path, safefile.WithMaxSize(MaxSumSize)); err == nil && bytes.Equal(old, text) && st.Mode().Perm() == 0o644 {
			return nil
		}
	}
	return atomicfile.Write(path, atomicfile.Public, func(f *os.File) error {
		if _, err := f.Write(text); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return f.Chmod(0o644)
	})
}

// CheckSum checks migs, loaded from dir, against the sum file there. It returns nil when dir
// has no sum file (the project does not keep one) or when the file lists exactly these files
// with these checksums; otherwise a *SumError (exit code 3) naming the first thing wrong: the
// file's own consistency first (git conflict markers, a first line that does not hash the
// rest, a malformed line), then each migration file in version order (changed, or missing
// from the sum file), then entries whose file is gone. A sum file that is a symbolic link, not
// a regular file, or larger than MaxSumSize is refused unread, with a *safefile.Error (exit
// code 2).
func CheckSum(dir string, migs []*Migration) error {
	path := filepath.Join(dir, SumFile)
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("%s: %w", path, err)
	case st.Mode()&fs.ModeSymlink != 0:
		return &safefile.Error{Path: path, Reason: "is a symbolic link, not read; the sum file must be a regular file: remove the link, then run `ps-migrate hash`"}
	}
	if err := safefile.CheckMode(path, st.Mode()); err != nil {
		return err
	}
	data, err := safefile.ReadFile(dir, path, safefile.WithMaxSize(MaxSumSize))
	if err != nil {
		return err
	}
	listed, err := parseSum(path, data)
	if err != nil {
		return err
	}
	want, err := sumEntries(migs)
	if err != nil {
		return err
	}
	byName := make(map[string]int, len(listed))
	for i, e := range listed {
		byName[e.name] = i
	}
	seen := make([]bool, len(listed))
	for _, w := range want {
		i, ok := byName[w.name]
		if !ok {
			return &SumError{File: path, Msg: w.name + " is not in the sum file: run `ps-migrate hash` after adding it"}
		}
		seen[i] = true
		if listed[i].sum != w.sum {
			return &SumError{File: path, Line: i + 2, Msg: fmt.Sprintf("%s changed since `ps-migrate hash` (checksum %s in the sum file, %s now): run `ps-migrate hash` if the change is meant",
				w.name, shortSum(listed[i].sum), shortSum(w.sum))}
		}
	}
	for i, e := range listed {
		if !seen[i] {
			return &SumError{File: path, Line: i + 2, Msg: "lists " + e.name + ", which is gone: run `ps-migrate hash` if it was removed on purpose"}
		}
	}
	return nil
}

// shortSum is a checksum as a message shows it: "sha256:" and 12 hex digits.
func shortSum(s string) string {
	const n = len("sha256:") + 12
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// conflictMarkers start the lines git writes into a file it could not merge.
var conflictMarkers = []string{"<<<<<<<", "|||||||", "=======", ">>>>>>>"}

// parseSum reads the entries of the sum file data, named path, after checking that the file
// is one and that its first line hashes the rest.
func parseSum(path string, data []byte) ([]sumEntry, error) {
	bad := func(line int, format string, args ...any) error {
		return &SumError{File: path, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	if bytes.Contains(data, []byte("\r\n")) {
		data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	}
	if len(data) == 0 {
		return nil, bad(1, "is empty: run `ps-migrate hash` to write it")
	}
	lines := strings.SplitAfter(string(data), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		for _, m := range conflictMarkers {
			if strings.HasPrefix(l, m) {
				return nil, bad(i+1, "git conflict marker %s: two branches changed the migrations; keep the files of both (each migration with its own version), then run `ps-migrate hash`", m)
			}
		}
	}
	if last := lines[len(lines)-1]; !strings.HasSuffix(last, "\n") {
		return nil, bad(len(lines), "the last line does not end in a newline: the file was cut or edited by hand; run `ps-migrate hash` to write it again")
	}
	head := strings.TrimSuffix(lines[0], "\n")
	format, sum, ok := strings.Cut(head, " ")
	switch {
	case strings.HasPrefix(format, "sum") && format != sumFormat && ok:
		return nil, bad(1, "format %q is not one this ps-migrate reads (%s): a newer ps-migrate wrote it", excerpt(format), sumFormat)
	case format != sumFormat || !validSum(sum):
		return nil, bad(1, "the first line is not `%s sha256:<hex>`: run `ps-migrate hash` to write the file again", sumFormat)
	}
	body := data[len(lines[0]):]
	if got := fmt.Sprintf("sha256:%x", sha256.Sum256(body)); got != sum {
		return nil, bad(1, "the first line does not match the rest: the file was edited by hand or merged badly; run `ps-migrate hash` to write it again from the migration files")
	}
	entries := make([]sumEntry, 0, len(lines)-1)
	where := make(map[string]int, len(lines)-1)
	for i, l := range lines[1:] {
		n := i + 2
		name, sum, ok := strings.Cut(strings.TrimSuffix(l, "\n"), " ")
		if _, _, _, err := ParseName(name); !ok || err != nil || !validSum(sum) {
			return nil, bad(n, "malformed line %q: want `<migration file> sha256:<hex>`", excerpt(strings.TrimSuffix(l, "\n")))
		}
		if prev, dup := where[name]; dup {
			return nil, bad(n, "lists %s twice (also line %d)", name, prev)
		}
		where[name] = n
		entries = append(entries, sumEntry{name, sum})
	}
	return entries, nil
}

// validSum reports whether s is "sha256:" and 64 lower-case hex digits.
func validSum(s string) bool {
	h, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	for _, c := range []byte(h) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
