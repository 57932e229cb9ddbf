package main

import (
	"strings"
	"testing"
)

// TestNestedAlternateOfAnEmptyName feeds an unterminated ${EMPTY:+…} whose
// alternate holds a closed ${FOO}: like compose-go, ps-subst skips the
// alternate (and its unclosed brace) while EMPTY is unset or empty, and
// rejects it with its position, exit 2 and nothing on stdout, once EMPTY is
// set.
func TestNestedAlternateOfAnEmptyName(t *testing.T) {
	const tmpl = "x${EMPTY:+${FOO}\n"
	tests := []struct {
		name    string
		environ []string
		code    int
		stdout  string
		stderr  string
	}{
		{"unset", []string{"FOO=f"}, 0, "x\n", ""},
		{"empty", []string{"EMPTY=", "FOO=f"}, 0, "x\n", ""},
		{"set", []string{"EMPTY=e", "FOO=f"}, 2, "", "<stdin>:1:11: invalid template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runIn(t, t.TempDir(), tt.environ, tmpl)
			if r.code != tt.code || r.stdout != tt.stdout || !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
					r.code, r.stdout, r.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
