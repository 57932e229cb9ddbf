package convert

import (
	"fmt"
	"strings"
)

// GooseFile is a goose SQL migration split into its sections, as goose's own parser
// (internal/sqlparser of pressly/goose v3) reads the annotations.
type GooseFile struct {
	// Header is the comment lines before "-- +goose Up".
	Header string
	// Up and Down are the sections' lines, the annotation lines removed.
	Up, Down string
	// NoTransaction is set by "-- +goose NO TRANSACTION", which covers both directions.
	NoTransaction bool
	// EnvsubLine is the line of the first "-- +goose ENVSUB ON" (0: none): goose then
	// substitutes environment variables into the SQL, which a converted file cannot do.
	EnvsubLine int
}

// LineError is a problem at a line of a file.
type LineError struct {
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

type gooseState int

const (
	gooseStart gooseState = iota
	gooseUp
	gooseUpBlock
	gooseDown
	gooseDownBlock
)

// annotations goose knows, as it spells them; they match case-insensitively.
var gooseAnnotations = []string{"Up", "Down", "StatementBegin", "StatementEnd", "NO TRANSACTION", "ENVSUB ON", "ENVSUB OFF"}

// ParseGoose splits the text of a goose .sql migration into its sections. It refuses what
// goose refuses — no "-- +goose Up", a second one, "Down" before "Up" or inside a statement
// block, an unknown annotation, one indented, a "StatementBegin" without its "StatementEnd",
// SQL before "Up" — with a *LineError, since goose cannot have applied such a file.
// "StatementBegin"/"StatementEnd" only told goose's splitter where a statement ends; they are
// dropped with the other annotation lines, which poststack's splitter does not need.
func ParseGoose(text string) (GooseFile, error) {
	var g GooseFile
	text = strings.TrimPrefix(strings.ReplaceAll(text, "\r\n", "\n"), "\ufeff")
	var header, up, down strings.Builder
	state := gooseStart
	blockLine := 0
	lines := strings.Split(text, "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, line := range lines {
		n := i + 1
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "--") && strings.Contains(line, "+goose") {
			a, err := gooseAnnotation(line)
			if err != nil {
				return g, &LineError{n, err.Error()}
			}
			switch a {
			case "Up":
				if state != gooseStart {
					return g, &LineError{n, `a second "-- +goose Up"`}
				}
				state = gooseUp
			case "Down":
				switch state {
				case gooseUp:
					state = gooseDown
				case gooseStart:
					return g, &LineError{n, `"-- +goose Down" before "-- +goose Up"`}
				case gooseUpBlock:
					return g, &LineError{n, fmt.Sprintf(`"-- +goose Down" inside the statement block of line %d`, blockLine)}
				default:
					return g, &LineError{n, `a second "-- +goose Down"`}
				}
			case "StatementBegin":
				switch state {
				case gooseUp:
					state = gooseUpBlock
				case gooseDown:
					state = gooseDownBlock
				case gooseStart:
					return g, &LineError{n, `"-- +goose StatementBegin" before "-- +goose Up"`}
				default:
					return g, &LineError{n, fmt.Sprintf(`"-- +goose StatementBegin" inside the statement block of line %d`, blockLine)}
				}
				blockLine = n
			case "StatementEnd":
				switch state {
				case gooseUpBlock:
					state = gooseUp
				case gooseDownBlock:
					state = gooseDown
				default:
					return g, &LineError{n, `"-- +goose StatementEnd" without "-- +goose StatementBegin"`}
				}
			case "NO TRANSACTION":
				g.NoTransaction = true
			case "ENVSUB ON":
				if g.EnvsubLine == 0 {
					g.EnvsubLine = n
				}
			}
			continue
		}
		switch state {
		case gooseStart:
			if trimmed != "" && !strings.HasPrefix(trimmed, "--") {
				return g, &LineError{n, `SQL before "-- +goose Up"`}
			}
			if header.Len() > 0 || trimmed != "" {
				header.WriteString(line)
				header.WriteByte('\n')
			}
		case gooseUp, gooseUpBlock:
			up.WriteString(line)
			up.WriteByte('\n')
		default:
			down.WriteString(line)
			down.WriteByte('\n')
		}
	}
	switch state {
	case gooseStart:
		return g, &LineError{max(len(lines), 1), `no "-- +goose Up" annotation`}
	case gooseUpBlock, gooseDownBlock:
		return g, &LineError{blockLine, `"-- +goose StatementBegin" without "-- +goose StatementEnd"`}
	}
	g.Header, g.Up, g.Down = header.String(), up.String(), down.String()
	return g, nil
}

// gooseAnnotation reads an annotation line the way goose does: every "--" and the first
// "+goose" removed, the rest trimmed and matched case-insensitively.
func gooseAnnotation(line string) (string, error) {
	if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
		return "", fmt.Errorf("annotation %q is indented; goose refuses it", excerpt(line))
	}
	cmd := strings.Replace(strings.ReplaceAll(line, "--", ""), "+goose", "", 1)
	if strings.Contains(cmd, "+goose") {
		return "", fmt.Errorf("more than one +goose annotation on the line %q", excerpt(line))
	}
	cmd = strings.TrimSpace(cmd)
	if cmd == "" {
		return "", fmt.Errorf("empty +goose annotation")
	}
	for _, a := range gooseAnnotations {
		if strings.EqualFold(a, cmd) {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown goose annotation %q", excerpt(cmd))
}

func excerpt(s string) string {
	const most = 60
	if len(s) <= most {
		return s
	}
	cut := most
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
