// Package dotenv reads .env files exactly as docker compose does (the
// dotenv package of compose-spec/compose-go v2): `export` prefixes,
// `KEY=value` and `KEY: value`, unquoted, single- and double-quoted values,
// quoted values spanning lines, shell escapes in double quotes, inline
// comments, bare `KEY` lines inherited from the lookup, and `${VAR}`
// expansion in unquoted and double-quoted values against the lookup and the
// keys already read.
//
// It exists because compose-go's package pulls in compose-go's template
// package, whose package-level regexp and logrus dependency cost a
// noticeable part of a command's start-up; this one expands through
// pkg/subst and compiles nothing at init. Compose-go's quirks are kept (a
// last line without "=" or newline becomes the value of the empty key, for
// example), since users check their files with docker compose; only the
// error messages differ: every error carries the line it was found on.
package dotenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode"

	"github.com/poststack/poststack/pkg/subst"
)

// LookupFn resolves a variable that a value references or that a bare KEY
// line inherits. It takes precedence over the keys read so far, as in
// compose-go. A nil LookupFn has nothing set.
type LookupFn func(string) (string, bool)

// Error is a syntax or substitution error in a dotenv input.
type Error struct {
	// Line is 1-based: the line of the offending key or character, or the
	// line where the offending value starts.
	Line int
	// Msg says what is wrong.
	Msg string
	// Err is the *subst.Problem behind a substitution error, else nil.
	Err error
}

// Error formats e as compose-go does, "line N: message", so that callers
// prefixing a file name keep their format.
func (e *Error) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// Unwrap gives the substitution problem, if any.
func (e *Error) Unwrap() error { return e.Err }

// Parse reads a dotenv input with nothing set in the lookup.
func Parse(r io.Reader) (map[string]string, error) {
	return ParseWithLookup(r, nil)
}

// ParseWithLookup reads a dotenv input, skipping a leading UTF-8 byte order
// mark. On error the map holds the entries read before it, as compose-go's
// does.
func ParseWithLookup(r io.Reader, lookup LookupFn) (map[string]string, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return map[string]string{}, fmt.Errorf("read dotenv: %w", err)
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF"))
	return UnmarshalWithLookup(string(data), lookup)
}

// UnmarshalWithLookup parses src; unlike ParseWithLookup it does not skip a
// byte order mark (which then fails as a character in a name).
func UnmarshalWithLookup(src string, lookup LookupFn) (map[string]string, error) {
	out := map[string]string{}
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	p := parser{src: src, out: out, lookup: lookup}
	return out, p.parse()
}

// ReadWithLookup reads the named files of fsys (".env" when none is named)
// and merges them, later files winning. Keys starting with a digit are
// dropped. Each file expands against lookup and its own earlier keys only.
// This is compose-go's ReadWithLookup, on an fs.FS.
func ReadWithLookup(fsys fs.FS, lookup LookupFn, filenames ...string) (map[string]string, error) {
	if len(filenames) == 0 {
		filenames = []string{".env"}
	}
	env := map[string]string{}
	for _, name := range filenames {
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return env, fmt.Errorf("dotenv: %w", err)
		}
		vals, err := ParseWithLookup(bytes.NewReader(data), lookup)
		if err != nil {
			return env, fmt.Errorf("%s: %w", name, err)
		}
		for k, v := range vals {
			if !startsWithDigit(k) {
				env[k] = v
			}
		}
	}
	return env, nil
}

// startsWithDigit is compose-go's `^\s*\d.*` without a regexp: leading
// ASCII white space, then an ASCII digit.
func startsWithDigit(s string) bool {
	s = strings.TrimLeft(s, " \t\n\f\r")
	return s != "" && '0' <= s[0] && s[0] <= '9'
}

// parser walks src once. Positions are offsets into src, so that line
// numbers are counted only when an error needs one.
type parser struct {
	src    string
	out    map[string]string
	lookup LookupFn
}

func (p *parser) parse() error {
	rest := p.src
	for {
		rest = statementStart(rest)
		if rest == "" {
			return nil
		}
		key, after, inherited, err := p.keyName(rest)
		if err != nil {
			return err
		}
		if strings.Contains(key, " ") {
			return p.errorAt(rest, "key cannot contain a space", nil)
		}
		if inherited {
			if v, ok := p.lookup(key); ok {
				p.out[key] = v
			}
			rest = after
			continue
		}
		value, after, err := p.value(after)
		if err != nil {
			return err
		}
		p.out[key] = value
		rest = after
	}
}

// statementStart skips white space and comment lines.
func statementStart(src string) string {
	for {
		i := strings.IndexFunc(src, func(r rune) bool { return !unicode.IsSpace(r) })
		if i < 0 {
			return ""
		}
		src = src[i:]
		if src[0] != '#' {
			return src
		}
		i = strings.IndexByte(src, '\n')
		if i < 0 {
			return ""
		}
		src = src[i:]
	}
}

// keyName reads the key at the start of src and returns the text after
// its separator; inherited means the key stood alone on its line.
func (p *parser) keyName(src string) (key, rest string, inherited bool, err error) {
	// compose-go's `^export\s+`: \s is ASCII and excludes \v.
	if len(src) > len("export") && strings.HasPrefix(src, "export") && strings.IndexByte(" \t\n\f\r", src[len("export")]) >= 0 {
		src = strings.TrimLeftFunc(src[len("export"):], isSpace)
	}
	offset := 0
loop:
	for i, r := range src {
		if isSpace(r) {
			continue
		}
		switch r {
		case '=', ':', '\n':
			key = src[:i]
			offset = i + 1
			inherited = r == '\n'
			break loop
		case '_', '.', '-', '[', ']':
		default:
			if unicode.IsLetter(r) || unicode.IsNumber(r) {
				continue
			}
			line, _, _ := strings.Cut(src, "\n")
			return "", "", false, p.errorAt(src[i:],
				fmt.Sprintf("unexpected character %q in variable name %q", string(r), line), nil)
		}
	}
	if src == "" {
		return "", "", false, p.errorAt(src, "zero length string", nil)
	}
	key = strings.TrimRightFunc(key, unicode.IsSpace)
	return key, strings.TrimLeftFunc(src[offset:], isSpace), inherited, nil
}

// value reads the value at the start of src and returns the text after it.
func (p *parser) value(src string) (string, string, error) {
	if src == "" || (src[0] != '"' && src[0] != '\'') {
		value, rest, _ := strings.Cut(src, "\n")
		value, _, _ = strings.Cut(value, " #")
		value = strings.TrimRightFunc(value, unicode.IsSpace)
		v, err := p.expand(src, value)
		return v, rest, err
	}
	quote := src[0]
	var chars []byte
	escaped := false
	for i := 1; i < len(src); i++ {
		c := src[i]
		if c != quote {
			if !escaped && c == '\\' {
				escaped = true
				continue
			}
			if escaped {
				escaped = false
				chars = append(chars, '\\')
			}
			chars = append(chars, c)
			continue
		}
		if escaped {
			escaped = false
			chars = append(chars, c)
			continue
		}
		value := string(chars)
		if quote == '"' {
			v, err := p.expand(src, expandEscapes(value))
			if err != nil {
				return "", "", err
			}
			value = v
		}
		return value, src[i+1:], nil
	}
	line, _, _ := strings.Cut(src, "\n")
	return "", "", p.errorAt(src, "unterminated quoted value "+line, nil)
}

// expand substitutes ${VAR} references in value, which starts at at.
func (p *parser) expand(at, value string) (string, error) {
	v, err := subst.Expand(value, func(k string) (string, bool) {
		if v, ok := p.lookup(k); ok {
			return v, true
		}
		v, ok := p.out[k]
		return v, ok
	}, subst.Options{AllowUndefined: true}, subst.Position{})
	if err == nil {
		return v, nil
	}
	var prob *subst.Problem
	var probs subst.Problems
	if errors.As(err, &probs) && len(probs) > 0 {
		prob = probs[0]
	}
	if prob == nil {
		return "", p.errorAt(at, err.Error(), err)
	}
	msg := "invalid template: " + prob.Msg
	if prob.Kind == subst.Required {
		msg = "required variable " + prob.Name + " is missing a value"
		if prob.Msg != "" {
			msg += ": " + prob.Msg
		}
	}
	return "", p.errorAt(at, msg, prob)
}

// errorAt builds an Error for the line on which at, a suffix of p.src,
// starts.
func (p *parser) errorAt(at, msg string, err error) *Error {
	off := len(p.src) - len(at)
	return &Error{Line: 1 + strings.Count(p.src[:off], "\n"), Msg: msg, Err: err}
}

// expandEscapes applies the escapes compose-go recognises in double-quoted
// values (its regexp `\\(?:[abcfnrtv$"\\]|0\d{0,3})`, scanned leftmost
// first): the C escapes, \$ as $$ (a literal $ for substitution), and \0
// followed by up to three digits as an octal byte. An octal escape that is
// not exactly three octal digits up to 377 loses its 0 and stays as text.
func expandEscapes(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		c := s[i+1]
		if r, ok := simpleEscape(c); ok {
			if c == '$' {
				b.WriteString("$$")
			} else {
				b.WriteRune(r)
			}
			i += 2
			continue
		}
		if c != '0' {
			b.WriteByte('\\')
			i++
			continue
		}
		j := i + 2
		for j < len(s) && j < i+5 && '0' <= s[j] && s[j] <= '9' {
			j++
		}
		digits := s[i+2 : j]
		if r, ok := octal(digits); ok {
			b.WriteRune(r)
		} else {
			b.WriteByte('\\')
			b.WriteString(digits)
		}
		i = j
	}
	return b.String()
}

func simpleEscape(c byte) (rune, bool) {
	switch c {
	case 'a':
		return '\a', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case 'v':
		return '\v', true
	case '$', '"', '\\':
		return rune(c), true
	}
	return 0, false
}

// octal is what strconv.UnquoteChar accepts after a backslash: exactly
// three octal digits with a value up to 255.
func octal(d string) (rune, bool) {
	if len(d) != 3 {
		return 0, false
	}
	var v rune
	for i := 0; i < 3; i++ {
		if d[i] > '7' {
			return 0, false
		}
		v = v*8 + rune(d[i]-'0')
	}
	if v > 255 {
		return 0, false
	}
	return v, true
}

// isSpace is white space other than a line break, compose-go's set.
func isSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xA0:
		return true
	}
	return false
}
