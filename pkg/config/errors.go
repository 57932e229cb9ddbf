package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/poststack/poststack/pkg/exitcode"
)

// Pos is a place in a configuration file. Later stages keep it so that their
// errors, too, can point at the line that caused them.
type Pos struct {
	File string
	Line int
	Col  int
}

// String renders the position as FILE:LINE:COL, the form editors jump to.
func (p Pos) String() string {
	return p.File + ":" + strconv.Itoa(p.Line) + ":" + strconv.Itoa(p.Col)
}

// Errorf returns an *Error at p.
func (p Pos) Errorf(format string, args ...any) error {
	return &Error{Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// Error is one problem in a configuration file. Its exit code is 2: the
// input is bad and nothing was changed.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ExitCode reports exitcode.Usage.
func (e *Error) ExitCode() int { return exitcode.Usage }

// joinErrors sorts the problems by position so that the report reads top to
// bottom even when merge keys or checks visit the file out of order, and
// marks the whole with exit code 2.
func joinErrors(errs []*Error) error {
	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	// A problem inside an anchor merged into several places is found once
	// per place; report it once.
	errs = slices.CompactFunc(errs, func(a, b *Error) bool { return *a == *b })
	list := make([]error, len(errs))
	for i, e := range errs {
		list[i] = e
	}
	return exitcode.With(exitcode.Usage, errors.Join(list...))
}

// suggest returns the known word closest to word, or "" when none is close
// enough to be a plausible typo.
func suggest(word string, known []string) string {
	best, bestDist := "", -1
	for _, k := range known {
		d := levenshtein(word, k)
		if bestDist < 0 || d < bestDist {
			best, bestDist = k, d
		}
	}
	limit := max(2, len(word)/3)
	if bestDist < 0 || bestDist > limit {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
