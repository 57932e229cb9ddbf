package build

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// From is one FROM instruction of a Dockerfile.
type From struct {
	Image string // the base image with build arguments expanded; "" for FROM scratch
	Stage string // the name after AS, lower-cased; "" when unnamed
	Line  int    // 1-based line of the FROM keyword
	// Internal is true when Image names an earlier stage of the same file.
	Internal bool
	// Dep is the name of the image of the plan that Image names, set by
	// NewPlan; "" for an image from elsewhere.
	Dep string
}

// ParseFroms reads a Dockerfile and returns its FROM instructions. Build
// arguments declared with ARG before the first FROM are expanded in the image
// names, args overriding their defaults, as the engines do. Only what decides
// the build order is read: comments, the escape directive, line continuations,
// ARG and FROM.
func ParseFroms(r io.Reader, args map[string]string) ([]From, error) {
	insts, err := instructions(r)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{} // ARGs declared before the first FROM
	stages := map[string]bool{}
	var froms []From
	for _, in := range insts {
		switch in.keyword {
		case "arg":
			if len(froms) > 0 {
				continue // a stage's ARGs do not reach FROM lines
			}
			for _, decl := range strings.Fields(in.rest) {
				name, def, hasDef := strings.Cut(decl, "=")
				if v, ok := args[name]; ok {
					meta[name] = v
				} else if hasDef {
					meta[name] = unquote(def)
				} else if _, seen := meta[name]; !seen {
					meta[name] = ""
				}
			}
		case "from":
			f, err := parseFrom(in, meta, stages)
			if err != nil {
				return nil, err
			}
			if f.Stage != "" {
				stages[f.Stage] = true
			}
			froms = append(froms, f)
		}
	}
	if len(froms) == 0 {
		return nil, fmt.Errorf("no FROM instruction")
	}
	return froms, nil
}

func parseFrom(in instruction, meta map[string]string, stages map[string]bool) (From, error) {
	fields := strings.Fields(in.rest)
	for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
		fields = fields[1:] // --platform=…
	}
	f := From{Line: in.line}
	switch {
	case len(fields) == 1:
	case len(fields) == 3 && strings.EqualFold(fields[1], "as"):
		f.Stage = strings.ToLower(fields[2])
	default:
		return f, fmt.Errorf("line %d: FROM wants an image and an optional AS name, got %q", in.line, strings.TrimSpace(in.rest))
	}
	image, err := expand(fields[0], meta)
	if err != nil {
		return f, fmt.Errorf("line %d: FROM %s: %w", in.line, fields[0], err)
	}
	if image == "" {
		return f, fmt.Errorf("line %d: FROM %s expands to nothing (is a build argument missing?)", in.line, fields[0])
	}
	switch {
	case strings.EqualFold(image, "scratch"):
	case stages[strings.ToLower(image)]:
		f.Image, f.Internal = strings.ToLower(image), true
	default:
		f.Image = image
	}
	return f, nil
}

// expand substitutes $NAME, ${NAME}, ${NAME:-word} and ${NAME:+word} from
// vars, the forms Dockerfiles allow in FROM.
func expand(s string, vars map[string]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		if s[i+1] == '{' {
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unterminated ${")
			}
			body := s[i+2 : i+end]
			i += end
			name, word, op := body, "", ""
			if j := strings.Index(body, ":"); j >= 0 {
				name, op, word = body[:j], body[j:min(j+2, len(body))], body[min(j+2, len(body)):]
			}
			if !validName(name) {
				return "", fmt.Errorf("bad substitution ${%s}", body)
			}
			v := vars[name]
			switch op {
			case "":
				b.WriteString(v)
			case ":-":
				if v == "" {
					v = word
				}
				b.WriteString(v)
			case ":+":
				if v != "" {
					b.WriteString(word)
				}
			default:
				return "", fmt.Errorf("bad substitution ${%s}", body)
			}
			continue
		}
		j := i + 1
		for j < len(s) && (s[j] == '_' || unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j]))) {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		b.WriteString(vars[s[i+1:j]])
		i = j - 1
	}
	return b.String(), nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if r != '_' && !unicode.IsLetter(r) && (i == 0 || !unicode.IsDigit(r)) {
			return false
		}
	}
	return true
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

type instruction struct {
	keyword string // lower-cased
	rest    string // the arguments, continuation lines joined
	line    int
}

// instructions splits a Dockerfile into instructions, honouring the escape
// parser directive, comments and line continuations.
func instructions(r io.Reader) ([]instruction, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	escape := byte('\\')
	directives := true
	var out []instruction
	var cur *instruction
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), "\r")
		trimmed := strings.TrimSpace(line)
		if directives {
			if k, v, ok := directive(trimmed); ok {
				if k == "escape" {
					if v != "\\" && v != "`" {
						return nil, fmt.Errorf("line %d: escape directive must be \\ or `, got %q", n, v)
					}
					escape = v[0]
				}
				continue
			}
			directives = false
		}
		if strings.HasPrefix(trimmed, "#") {
			continue // comments, also inside a continued instruction
		}
		if cur == nil {
			if trimmed == "" {
				continue
			}
			kw, rest, _ := strings.Cut(trimmed, " ")
			if i := strings.IndexAny(kw, "\t"); i >= 0 {
				kw, rest = kw[:i], kw[i+1:]+" "+rest
			}
			cur = &instruction{keyword: strings.ToLower(kw), line: n}
			trimmed = rest
		}
		if strings.HasSuffix(trimmed, string(escape)) {
			cur.rest += strings.TrimSuffix(trimmed, string(escape)) + " "
			continue
		}
		cur.rest += trimmed
		out = append(out, *cur)
		cur = nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if cur != nil {
		out = append(out, *cur)
	}
	return out, nil
}

// directive recognises a "# key=value" parser directive line.
func directive(line string) (key, value string, ok bool) {
	if !strings.HasPrefix(line, "#") {
		return "", "", false
	}
	k, v, found := strings.Cut(strings.TrimSpace(line[1:]), "=")
	k = strings.ToLower(strings.TrimSpace(k))
	if !found || (k != "escape" && k != "syntax" && k != "check") {
		return "", "", false
	}
	return k, strings.TrimSpace(v), true
}
