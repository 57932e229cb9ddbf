// Package yamlsubst substitutes ${VAR} references inside the scalar values of
// a YAML stream, leaving keys, comments and key order alone, and writes YAML
// that parses back to exactly the substituted strings.
//
// Text substitution breaks YAML as soon as a value holds a quote, ": ", " #"
// or a newline; working on yaml.v3 nodes and letting the emitter quote keeps
// every value intact whatever it holds.
//
// # How a substituted value is written
//
// Only scalars whose text contains a "$" are touched; everything else keeps
// its original presentation.
//
//   - A plain (unquoted, untagged) template scalar is re-typed from its
//     result, as a text substitution would: "8080" comes out as the number
//     8080, "true" as a boolean, "" or "null" as null. Other results stay plain
//     when plain reads back as the same string, and are otherwise quoted
//     (single- or double-quoted) or, when multi-line, written as a literal
//     block. Strings that YAML 1.1 readers (Kubernetes, sigs.k8s.io/yaml) take
//     for booleans or base-60 numbers ("yes", "off", "1:20") are double-quoted,
//     as yaml.v3 itself does when marshalling a string.
//   - A single-quoted, double-quoted, literal (|) or folded (>) template scalar
//     stays a string in the same style, falling back to double quotes when the
//     style cannot carry the result (trailing spaces in a block, tabs in single
//     quotes, ...).
//   - A scalar with an explicit tag (!!str ${X}, !!int ${X}) keeps its tag.
//
// Every rendering is checked by parsing it back; a value that does not read
// back exactly is re-emitted double-quoted, which can carry any UTF-8 string.
package yamlsubst

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/subst"
)

// Render reads a YAML stream (one or more documents) from r, substitutes
// variables in scalar values only (not in keys, not in comments), and writes
// YAML to w. name is the file name used in error messages.
//
// Problems (undefined or required variables, invalid templates) name the
// position of the variable in the original file; all of them are returned, as
// subst.Problems, and nothing is written. Malformed YAML is an error carrying
// exit code 2.
func Render(w io.Writer, r io.Reader, name string, lookup subst.Lookup, opt subst.Options) error {
	src, docs, err := parse(r, name)
	if err != nil {
		return err
	}
	s := &substituter{name: name, src: src, lookup: lookup, opt: opt}
	for _, d := range docs {
		if err := s.walk(d); err != nil {
			return err
		}
	}
	if len(s.problems) > 0 {
		sortProblems(s.problems)
		return s.problems
	}
	out, err := s.render(docs)
	if err != nil {
		return err
	}
	if _, err := w.Write(out); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// References lists the variable references inside scalar values, with
// positions in the file, in file order. Keys and comments are not searched.
// Invalid references are returned as subst.Problems alongside the valid ones.
func References(r io.Reader, name string) ([]subst.Reference, error) {
	src, docs, err := parse(r, name)
	if err != nil {
		return nil, err
	}
	var refs []subst.Reference
	var problems subst.Problems
	for _, d := range docs {
		for _, n := range valueScalars(d, nil) {
			if !strings.Contains(n.Value, "$") {
				continue
			}
			got, err := subst.References(strings.NewReader(n.Value), name)
			m := src.mapper(n)
			for _, ref := range got {
				ref.Pos = m.remap(ref.Pos)
				refs = append(refs, ref)
			}
			if err != nil {
				ps, ok := asProblems(err)
				if !ok {
					return nil, fmt.Errorf("%s:%d:%d: %w", name, n.Line, n.Column, err)
				}
				for _, p := range ps {
					p.Pos = m.remap(p.Pos)
				}
				problems = append(problems, ps...)
			}
		}
	}
	sortProblems(problems)
	if len(problems) > 0 {
		return refs, problems
	}
	return refs, nil
}

// parse reads the whole stream (templates are small, and positions need the
// raw text) and decodes every document.
func parse(r io.Reader, name string) (*source, []*yaml.Node, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []*yaml.Node
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, exitcode.With(exitcode.Usage, yamlError(name, err))
		}
		docs = append(docs, doc)
	}
	return newSource(raw), docs, nil
}

// Compiled on first use: ps-subst --version must not pay for it.
var yamlLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: line (\d+): (.*)$`) })

// SyntaxError is malformed YAML, at the line yaml.v3 blames.
type SyntaxError struct {
	File string
	Line int
	Msg  string
	Err  error // yaml.v3's own error
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s:%d: yaml: %s", e.File, e.Line, e.Msg) }
func (e *SyntaxError) Unwrap() error { return e.Err }

// yamlError rewrites yaml.v3's "yaml: line N: msg" into the FILE:LINE: form
// every other poststack message uses. yaml.v3 counts lines from 1 for scanner
// errors but from 0 for parser errors (where the line is that of the enclosing
// collection), and leaves the line out when it would be 0.
func yamlError(name string, err error) error {
	msg := err.Error()
	m := yamlLine().FindStringSubmatch(msg)
	if m == nil {
		return &SyntaxError{File: name, Line: 1, Msg: strings.TrimPrefix(msg, "yaml: "), Err: err}
	}
	line, _ := strconv.Atoi(m[1])
	if parserProblem(m[2]) {
		line++
	}
	return &SyntaxError{File: name, Line: line, Msg: m[2], Err: err}
}

// parserProblem reports the messages of yaml.v3's parser (as opposed to its
// scanner), whose line numbers are 0-based.
func parserProblem(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>", "did not find expected <document start>",
		"did not find expected node content", "did not find expected '-' indicator",
		"did not find expected key", "did not find expected ',' or ']'",
		"did not find expected ',' or '}'", "found undefined tag handle",
		"found duplicate %YAML directive", "found incompatible YAML document",
		"found duplicate %TAG directive":
		return true
	}
	return false
}

// valueScalars appends, in document order, the scalar nodes under n that are
// values: mapping keys are skipped, and aliases are not followed, so an
// anchored scalar is listed once.
func valueScalars(n *yaml.Node, acc []*yaml.Node) []*yaml.Node {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			acc = valueScalars(c, acc)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			acc = valueScalars(n.Content[i], acc)
		}
	case yaml.ScalarNode:
		acc = append(acc, n)
	}
	return acc
}

// substituter carries one Render call: the source for positions, the variables,
// and what the walk found.
type substituter struct {
	name     string
	src      *source
	lookup   subst.Lookup
	opt      subst.Options
	problems subst.Problems
	changed  map[*yaml.Node]bool
}

// walk substitutes every value scalar of doc in place.
func (s *substituter) walk(doc *yaml.Node) error {
	for _, n := range valueScalars(doc, nil) {
		if !strings.Contains(n.Value, "$") {
			continue
		}
		m := s.src.mapper(n)
		out, err := subst.Expand(n.Value, s.lookup, s.opt, subst.Position{File: s.name, Line: 1, Col: 1})
		if err != nil {
			ps, ok := asProblems(err)
			if !ok {
				return fmt.Errorf("%s:%d:%d: %w", s.name, n.Line, n.Column, err)
			}
			for _, p := range ps {
				p.Pos = m.remap(p.Pos)
			}
			s.problems = append(s.problems, ps...)
			continue
		}
		if !utf8.ValidString(out) {
			// YAML is text: a byte string that is not UTF-8 cannot be written
			// as a string value at all.
			s.problems = append(s.problems, &subst.Problem{
				Pos:  subst.Position{File: s.name, Line: n.Line, Col: n.Column},
				Kind: subst.Invalid,
				Msg:  "substituted value is not valid UTF-8 and cannot be written as YAML",
			})
			continue
		}
		if out == n.Value {
			continue
		}
		restyle(n, out)
		if s.changed == nil {
			s.changed = map[*yaml.Node]bool{}
		}
		s.changed[n] = true
	}
	return nil
}

// asProblems copies the problems out of err so that remapping their positions
// does not touch anything the caller of subst still holds.
func asProblems(err error) (subst.Problems, bool) {
	var ps subst.Problems
	if !errors.As(err, &ps) {
		return nil, false
	}
	out := make(subst.Problems, len(ps))
	for i, p := range ps {
		c := *p
		out[i] = &c
	}
	return out, true
}

// sortProblems orders problems by position; the walk is already in document
// order, so this only matters for positions that fell back to a node start.
func sortProblems(ps subst.Problems) {
	slices.SortStableFunc(ps, func(a, b *subst.Problem) int {
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line - b.Pos.Line
		}
		return a.Pos.Col - b.Pos.Col
	})
}

const quoted = yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle

// restyle sets n's value to out and chooses how it is presented, following the
// rules in the package comment.
func restyle(n *yaml.Node, out string) {
	n.Value = out
	if n.Style&(quoted|yaml.TaggedStyle) != 0 {
		return
	}
	// An empty tag lets the value resolve to int, float, bool or null like a
	// hand-written plain scalar would, and lets the emitter quote a string
	// that plain would not carry.
	n.Tag = ""
	if isOldBool(out) || isBase60Float(out) {
		n.Style = yaml.DoubleQuotedStyle
	}
}

// render encodes docs and checks the result reads back to the substituted
// values, re-emitting double-quoted whatever did not.
func (s *substituter) render(docs []*yaml.Node) ([]byte, error) {
	var bad []*yaml.Node
	for attempt := range 3 {
		out, err := encode(docs)
		if err != nil {
			return nil, fmt.Errorf("%s: write YAML: %w", s.name, err)
		}
		v, err := s.verify(docs, out)
		switch {
		case err != nil:
			// The emitter produced something unreadable: quote every changed
			// value, which leaves it nothing to get wrong.
			bad = s.changedWhere(func(*yaml.Node) bool { return true })
		case len(v.bad) > 0:
			bad = v.bad
		case len(v.commentsMoved) > 0:
			// An empty plain value lets a comment slide onto another node;
			// suspect the empties on a line whose comments moved, then all
			// of them.
			bad = s.changedWhere(func(n *yaml.Node) bool {
				return n.Value == "" && n.Style&quoted == 0 &&
					(attempt > 0 || v.commentsMoved[n.Line])
			})
			if len(bad) == 0 {
				// The template's own comments do not survive yaml.v3; that
				// is not ours to fix, and every value is right.
				return out, nil
			}
		default:
			return out, nil
		}
		for _, n := range bad {
			n.Style = yaml.DoubleQuotedStyle | n.Style&yaml.TaggedStyle
		}
	}
	n := bad[0]
	return nil, fmt.Errorf("%s:%d:%d: substituted value %q does not survive a YAML round trip", s.name, n.Line, n.Column, n.Value)
}

// changedWhere lists the substituted nodes that satisfy keep, in file order.
func (s *substituter) changedWhere(keep func(*yaml.Node) bool) []*yaml.Node {
	var ns []*yaml.Node
	for n := range s.changed {
		if keep(n) {
			ns = append(ns, n)
		}
	}
	slices.SortFunc(ns, func(a, b *yaml.Node) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Column - b.Column
	})
	return ns
}

func encode(docs []*yaml.Node) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// verify parses out and compares it with docs: changed nodes whose value did
// not read back exactly are listed, and moved comments are noted ("- # note"
// reads back as a comment on the following item).
func (s *substituter) verify(docs []*yaml.Node, out []byte) (*verification, error) {
	v := &verification{changed: s.changed}
	if len(s.changed) == 0 {
		return v, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for _, want := range docs {
		got := new(yaml.Node)
		if err := dec.Decode(got); err != nil {
			return nil, err
		}
		if !v.compare(want, got) {
			return nil, errors.New("document structure changed")
		}
	}
	return v, nil
}

type verification struct {
	changed       map[*yaml.Node]bool
	bad           []*yaml.Node
	commentsMoved map[int]bool // template lines of nodes whose comments changed
}

// compare walks want and got together; it reports false when their shapes
// differ, which only a broken emission can cause.
func (v *verification) compare(want, got *yaml.Node) bool {
	if want.Kind != got.Kind || len(want.Content) != len(got.Content) {
		return false
	}
	if want.HeadComment != got.HeadComment || want.LineComment != got.LineComment || want.FootComment != got.FootComment {
		if v.commentsMoved == nil {
			v.commentsMoved = map[int]bool{}
		}
		v.commentsMoved[want.Line] = true
	}
	switch want.Kind {
	case yaml.ScalarNode:
		if v.changed[want] && want.Value != got.Value {
			v.bad = append(v.bad, want)
		}
	case yaml.AliasNode:
	default:
		for i := range want.Content {
			if !v.compare(want.Content[i], got.Content[i]) {
				return false
			}
		}
	}
	return true
}

// isOldBool reports the strings YAML 1.1 reads as booleans; yaml.v3 quotes
// them when marshalling strings, and so do we.
func isOldBool(s string) bool {
	switch s {
	case "y", "Y", "yes", "Yes", "YES", "on", "On", "ON",
		"n", "N", "no", "No", "NO", "off", "Off", "OFF":
		return true
	}
	return false
}

var base60float = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`)
})

// isBase60Float reports YAML 1.1 sexagesimal numbers ("1:20"), which YAML 1.1
// readers would turn into numbers.
func isBase60Float(s string) bool {
	return strings.IndexByte(s, ':') >= 0 && base60float().MatchString(s)
}
