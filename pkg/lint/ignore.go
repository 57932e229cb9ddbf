package lint

import (
	"regexp"
	"strings"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/sqlscan"
)

// ignoreRe finds a lint-ignore comment: "-- poststack:lint-ignore RULE reason".
var ignoreRe = regexp.MustCompile(`(?i)--+\s*poststack:lint-ignore(?:\s+(.*))?$`)

// ignore is one lint-ignore comment.
type ignore struct {
	line   int
	rule   string
	reason string
}

// ignores are the lint-ignore comments of one file, by statement index; file-level ones (the
// leading comment lines of a rollback file) are at index -1.
type ignores map[int][]ignore

// find returns the ignore of rule for statement i.
func (ig ignores) find(i int, rule string) (ignore, bool) {
	for _, x := range ig[i] {
		if x.rule == rule {
			return x, true
		}
	}
	return ignore{}, false
}

// parseIgnores reads the lint-ignore comments of a migration file and attaches each to the
// statement whose first line it ends, or to the statement right below the comment lines it is
// part of. A comment without a reason, with an unknown rule, or attached to no statement is a
// usage error naming file:line.
func parseIgnores(file, text string, stmts []sqlscan.Statement) (ignores, error) {
	lines := strings.Split(text, "\n")
	starts := map[int][]int{} // line → statements starting there
	for i, st := range stmts {
		starts[st.Line] = append(starts[st.Line], i)
	}
	out := ignores{}
	for n, l := range lines {
		line := n + 1
		ig, ok, err := parseIgnore(file, line, l)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		var attached []int
		if idx, ok := starts[line]; ok && !strings.HasPrefix(strings.TrimSpace(l), "--") {
			attached = idx // a trailing comment on the statement's first line
		} else if strings.HasPrefix(strings.TrimSpace(l), "--") {
			// A comment line: the statement starting right after this block of comment lines.
			next := line + 1
			for next <= len(lines) && strings.HasPrefix(strings.TrimSpace(lines[next-1]), "--") {
				next++
			}
			attached = starts[next]
			if len(attached) > 1 {
				attached = attached[:1]
			}
		}
		if len(attached) == 0 {
			return nil, exitcode.Usagef("%s:%d: lint-ignore is not on a statement's first line or on the comment lines right above one", file, line)
		}
		for _, i := range attached {
			out[i] = append(out[i], ig)
		}
	}
	return out, nil
}

// parseRollbackIgnores reads the lint-ignore comments of a rollback file: only
// rollback-does-not-restore, in its leading comment lines.
func parseRollbackIgnores(file, text string) (ignores, error) {
	out := ignores{}
	leading := true
	for n, l := range strings.Split(text, "\n") {
		t := strings.TrimSpace(l)
		if t != "" && !strings.HasPrefix(t, "--") {
			leading = false
		}
		ig, ok, err := parseIgnore(file, n+1, l)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if !leading || ig.rule != RuleRollbackNotRestored {
			return nil, exitcode.Usagef("%s:%d: a rollback file can only ignore %s, in its leading comment lines", file, n+1, RuleRollbackNotRestored)
		}
		out[-1] = append(out[-1], ig)
	}
	return out, nil
}

// parseIgnore parses line as a lint-ignore comment; ok is false when it holds none.
func parseIgnore(file string, line int, l string) (ignore, bool, error) {
	m := ignoreRe.FindStringSubmatch(l)
	if m == nil {
		return ignore{}, false, nil
	}
	rule, reason, _ := strings.Cut(strings.TrimSpace(m[1]), " ")
	reason = strings.TrimSpace(reason)
	if rule == "" {
		return ignore{}, false, exitcode.Usagef("%s:%d: lint-ignore needs a rule and a reason (-- poststack:lint-ignore RULE reason); rules: %s", file, line, ruleNames())
	}
	if _, known := ruleLevel(rule); !known {
		return ignore{}, false, exitcode.Usagef("%s:%d: lint-ignore names an unknown rule %q; rules: %s", file, line, rule, ruleNames())
	}
	if reason == "" {
		return ignore{}, false, exitcode.Usagef("%s:%d: lint-ignore %s needs a reason (-- poststack:lint-ignore %s why it is safe here)", file, line, rule, rule)
	}
	return ignore{line: line, rule: rule, reason: reason}, true, nil
}
