// Package subst substitutes ${VAR} references in text with the grammar and
// the results of docker compose, as implemented by compose-spec/compose-go's
// template package: same input and same mapping give the same output and the
// same success or failure.
//
// The grammar, all of it case-insensitive for letters:
//
//	$$              a literal $
//	$NAME           NAME is [_A-Za-z][_A-Za-z0-9]*
//	${NAME}
//	${NAME:-word}   word if NAME is unset or empty
//	${NAME-word}    word if NAME is unset
//	${NAME:+word}   word if NAME is set and not empty, else empty
//	${NAME+word}    word if NAME is set, else empty
//	${NAME:?msg}    an error if NAME is unset or empty
//	${NAME?msg}     an error if NAME is unset
//
// A $ that starts none of these is left alone; "${" that does not start one
// is an invalid template. The word is itself a template, expanded only when
// it is used. Compose-go's quirks are kept on purpose, since users test their
// files with docker compose: a braced expression with an operator reaches to
// the last "}" on its line, and the text after its first balanced "}" is
// expanded again and appended; names may contain U+017F and U+212A, which
// Go's case folding equates with s and k.
//
// Nothing ever spans a newline, so Stream works line by line with bounded
// memory (a single line is held whole only while it contains a pending
// "${NAME:-" whose end is not yet known).
//
// Problems. compose-go returns the first error and silently substitutes an
// empty string for unset variables; this package reports every problem, each
// at the position of its "$":
//
//   - Undefined: a plain $NAME or ${NAME} whose Lookup says unset, i.e. where
//     compose-go would look the value up and fall back to "". References with
//     :-, -, :+ or + handle unset explicitly and are never undefined.
//     Options.AllowUndefined turns these into silent empty strings.
//   - Required: ${NAME:?msg} or ${NAME?msg} failed. Always reported. When the
//     message itself fails to expand, both problems are reported.
//   - Invalid: "${" that does not start a valid expression.
//
// Evaluation is lazy exactly as in compose-go: a default or message that is
// not used is not expanded, so an undefined variable or an invalid template
// inside it is no problem. One extension: after a failed ${NAME:?msg}, the
// text compose-go would have appended (see above) is still checked, so that
// every problem on the line shows at once. The output for an expression that
// fails is what compose-go gives: empty.
package subst

import (
	"fmt"
	"strings"

	"github.com/poststack/poststack/pkg/exitcode"
)

// Lookup returns a variable's value and whether it is set. As with
// compose-go's Mapping, the value is used even when it reports unset, so it
// should return "" then. A nil Lookup has nothing set. One call of Expand,
// Stream or References may ask it about a name only once and reuse the
// answer, so it must give the same answer for the same name.
type Lookup func(name string) (string, bool)

// Position is 1-based; Col counts characters (runes) from the start of the
// line, and bytes where the line is not valid UTF-8.
type Position struct {
	File      string
	Line, Col int
}

// String formats p as FILE:LINE:COL, with "<stdin>" for an empty File.
func (p Position) String() string {
	f := p.File
	if f == "" {
		f = "<stdin>"
	}
	return fmt.Sprintf("%s:%d:%d", f, p.Line, p.Col)
}

// Kind classifies a Problem.
type Kind int

const (
	// Undefined is a variable with no value and no default.
	Undefined Kind = iota
	// Required is a ${V:?msg} or ${V?msg} whose variable has no value.
	Required
	// Invalid is bad template syntax.
	Invalid
)

// String names k for messages and JSON output.
func (k Kind) String() string {
	switch k {
	case Undefined:
		return "undefined"
	case Required:
		return "required"
	case Invalid:
		return "invalid"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Problem is one error at one place. Name is the variable, when there is
// one; Msg is the expanded message of a Required problem or the reason of an
// Invalid one.
type Problem struct {
	Pos  Position
	Kind Kind
	Name string
	Msg  string
}

// Error formats p the way compilers do, so that editors can jump to it.
func (p *Problem) Error() string {
	switch p.Kind {
	case Undefined:
		return fmt.Sprintf("%s: undefined variable %s", p.Pos, p.Name)
	case Required:
		if p.Msg != "" {
			return fmt.Sprintf("%s: required variable %s is missing a value: %s", p.Pos, p.Name, p.Msg)
		}
		return fmt.Sprintf("%s: required variable %s is missing a value", p.Pos, p.Name)
	default:
		return fmt.Sprintf("%s: invalid template: %s", p.Pos, p.Msg)
	}
}

// Problems is every problem found, in input order.
type Problems []*Problem

// Error lists the problems one per line.
func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// ExitCode is exitcode.Usage when a template is invalid (the input is bad),
// else exitcode.Check (the input is fine, the variables are not).
func (ps Problems) ExitCode() int {
	for _, p := range ps {
		if p.Kind == Invalid {
			return exitcode.Usage
		}
	}
	return exitcode.Check
}

// Options tune substitution.
type Options struct {
	// AllowUndefined makes an undefined variable expand to "" with no
	// problem, as docker compose does. Required failures are still problems.
	AllowUndefined bool
	// Inserted, when set, is told of every variable value that goes into
	// the output, with the position of its "$", in input order: how a
	// caller finds values that may change the structure of a text format.
	Inserted func(name, value string, pos Position)
}

// Expand substitutes s; pos is where s starts in its file (Line and Col
// advance through s; zero values mean 1). All problems are returned as
// Problems (nil error when none). The returned string is what compose-go
// would return, also when there are problems.
func Expand(s string, lookup Lookup, opt Options, pos Position) (string, error) {
	e := newEngine(lookup, opt, nil, pos)
	t := []byte(s)
	e.segment(t, true)
	if len(e.problems) == 0 {
		return string(e.out), nil
	}
	return string(e.out), e.problems
}

// Reference is one occurrence of a variable in a template. Op is "", ":-",
// "-", ":?", "?", ":+" or "+"; Default is the raw text after Op
// (unexpanded).
type Reference struct {
	Name    string
	Pos     Position
	Op      string
	Default string
}

// Required reports whether the reference needs a value (Op is "", ":?" or
// "?").
func (r Reference) Required() bool {
	return r.Op == "" || r.Op == ":?" || r.Op == "?"
}
