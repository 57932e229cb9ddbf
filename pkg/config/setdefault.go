package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/exitcode"
)

// SetDefault returns data, a project file, with its top-level `environment:`
// set to env. Only the value of that key changes (its quoting style is kept
// where env allows it); every other byte, comments and line endings included,
// stays as it is. When the key is absent a line `environment: ENV` is added
// just before the first top-level key. A file whose top level is not a block
// mapping, or whose `environment:` value is not a one-line string scalar, is
// refused (exit 2) rather than rewritten; so is any rewrite that would not
// parse back to the same document with only `environment` changed. Errors
// at a place in data are *Error with an empty Pos.File.
func SetDefault(data []byte, env string) ([]byte, error) {
	if !ValidName(env) {
		return nil, exitcode.Usagef("environment name %q: use lower-case letters, digits, '.', '_' and '-'", env)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("invalid YAML: %w", err))
	}
	if len(doc.Content) == 0 {
		return nil, exitcode.Usagef("file is empty")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || len(root.Content) == 0 {
		return nil, posErr(root, "the top level must be a mapping (environments: …), got %s", describe(root))
	}
	if root.Style&yaml.FlowStyle != 0 {
		return nil, posErr(root, "the top level is a flow mapping ({…}); set environment: by hand or write it as a block mapping")
	}
	var key, val *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Kind == yaml.ScalarNode && k.Tag != "!!merge" && k.Value == "environment" {
			if key != nil {
				return nil, posErr(k, "duplicate key \"environment\" (first defined at line %d)", key.Line)
			}
			key, val = k, root.Content[i+1]
		}
	}
	var out []byte
	var err error
	if key == nil {
		out, err = insertDefault(data, root.Content[0], env)
	} else {
		out, err = replaceDefault(data, val, env)
	}
	if err != nil {
		return nil, err
	}
	if err := sameExceptDefault(data, out, env); err != nil {
		return nil, err
	}
	return out, nil
}

// posErr is a usage error at n. Its Pos has no File: SetDefault sees only
// bytes, and the caller, who knows the file's name, may set it.
func posErr(n *yaml.Node, format string, args ...any) error {
	return &Error{Pos: Pos{Line: n.Line, Col: n.Column}, Msg: fmt.Sprintf(format, args...)}
}

// lineBounds returns the byte offsets of the start and end (before its line
// break) of 1-based line n of data.
func lineBounds(data []byte, n int) (start, end int, ok bool) {
	for line := 1; line < n; line++ {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			return 0, 0, false
		}
		start += i + 1
	}
	end = len(data)
	if i := bytes.IndexByte(data[start:], '\n'); i >= 0 {
		end = start + i
	}
	if end > start && data[end-1] == '\r' {
		end--
	}
	return start, end, true
}

// offset turns node n's 1-based line and (character) column into a byte
// offset into data, with the end of n's line.
func offset(data []byte, n *yaml.Node) (at, lineEnd int, ok bool) {
	start, end, ok := lineBounds(data, n.Line)
	if !ok {
		return 0, 0, false
	}
	at = start
	for c := 1; c < n.Column; c++ {
		if at >= end {
			return 0, 0, false
		}
		_, size := utf8.DecodeRune(data[at:end])
		at += size
	}
	return at, end, true
}

func insertDefault(data []byte, first *yaml.Node, env string) ([]byte, error) {
	at, end, ok := offset(data, first)
	start, _, _ := lineBounds(data, first.Line)
	if !ok || len(bytes.TrimLeft(data[start:at], " ")) != 0 {
		return nil, posErr(first, "cannot tell where to add environment: (the first key does not start its line); add it by hand")
	}
	nl := "\n"
	if end < len(data) && data[end] == '\r' {
		nl = "\r\n"
	}
	line := string(data[start:at]) + "environment: " + plainOrQuoted(env, yaml.Style(0)) + nl
	out := make([]byte, 0, len(data)+len(line))
	out = append(out, data[:start]...)
	out = append(out, line...)
	return append(out, data[start:]...), nil
}

func replaceDefault(data []byte, val *yaml.Node, env string) ([]byte, error) {
	if val.Kind != yaml.ScalarNode || val.Tag == "!!null" || val.Anchor != "" || val.Style&(yaml.TaggedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return nil, posErr(val, "environment must be a plain or quoted string to be rewritten, got %s; edit it by hand", describe(val))
	}
	at, lineEnd, ok := offset(data, val)
	if !ok {
		return nil, posErr(val, "cannot find the value of environment:; edit it by hand")
	}
	n, ok := scalarLen(data[at:lineEnd], val.Style)
	if !ok {
		return nil, posErr(val, "the value of environment: spans lines; write it on one line or edit it by hand")
	}
	repl := plainOrQuoted(env, val.Style)
	out := make([]byte, 0, len(data)-n+len(repl))
	out = append(out, data[:at]...)
	out = append(out, repl...)
	return append(out, data[at+n:]...), nil
}

// scalarLen is the length of the one-line scalar token at the start of line,
// written in style.
func scalarLen(line []byte, style yaml.Style) (int, bool) {
	switch {
	case style&yaml.DoubleQuotedStyle != 0:
		for i := 1; i < len(line); i++ {
			switch line[i] {
			case '\\':
				i++
			case '"':
				return i + 1, true
			}
		}
		return 0, false
	case style&yaml.SingleQuotedStyle != 0:
		for i := 1; i < len(line); i++ {
			if line[i] == '\'' {
				if i+1 < len(line) && line[i+1] == '\'' {
					i++
					continue
				}
				return i + 1, true
			}
		}
		return 0, false
	}
	// A plain scalar ends at " #" (a comment) or the end of the line; its
	// trailing blanks are not part of it.
	n := len(line)
	for i := 1; i < len(line); i++ {
		if line[i] == '#' && (line[i-1] == ' ' || line[i-1] == '\t') {
			n = i
			break
		}
	}
	return len(bytes.TrimRight(line[:n], " \t")), true
}

// plainOrQuoted writes env in style, plain only when YAML reads it back as
// that string (not as a number, a boolean or null).
func plainOrQuoted(env string, style yaml.Style) string {
	switch {
	case style&yaml.SingleQuotedStyle != 0:
		return "'" + env + "'" // a valid name holds no quote
	case style&yaml.DoubleQuotedStyle != 0:
		return strconv.Quote(env)
	}
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(env), &n); err == nil && len(n.Content) == 1 {
		if c := n.Content[0]; c.Kind == yaml.ScalarNode && c.Tag == "!!str" && c.Value == env {
			return env
		}
	}
	return strconv.Quote(env)
}

// sameExceptDefault checks a rewrite: out must decode to what data decodes
// to, with environment set to env.
func sameExceptDefault(data, out []byte, env string) error {
	var before, after map[string]any
	if err := yaml.Unmarshal(data, &before); err != nil {
		return exitcode.With(exitcode.Usage, fmt.Errorf("invalid YAML: %w", err))
	}
	if err := yaml.Unmarshal(out, &after); err != nil {
		return exitcode.With(exitcode.Usage, fmt.Errorf("setting environment: would break the file (%v); edit it by hand", err))
	}
	got, ok := after["environment"].(string)
	delete(before, "environment")
	delete(after, "environment")
	if !ok || got != env || !reflect.DeepEqual(before, after) {
		return exitcode.With(exitcode.Usage, errors.New("setting environment: would change more than that line; edit it by hand"))
	}
	return nil
}
