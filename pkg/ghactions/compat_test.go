package ghactions

import (
	"bytes"
	"strconv"
	"testing"

	githubactions "github.com/sethvargo/go-githubactions"
)

// TestMatchesLibrary checks that the workflow commands we write are byte for
// byte those of github.com/sethvargo/go-githubactions, which we do not link
// into the binaries (see the package comment).
func TestMatchesLibrary(t *testing.T) {
	env := func(k string) string {
		if k == "GITHUB_ACTIONS" {
			return "true"
		}
		return ""
	}
	messages := []string{"plain", "100% done", "a\r\nb\nc", "key: value, more", "::error::x", ""}
	files := []string{"", "migrations/0001_init.sql", "a,b:c%d\r\ne.sql"}
	for _, msg := range messages {
		for _, file := range files {
			for _, pos := range [][2]int{{0, 0}, {12, 0}, {3, 7}} {
				var ours, theirs bytes.Buffer
				a := New(&ours, env, "")
				lib := githubactions.New(githubactions.WithWriter(&theirs), githubactions.WithGetenv(env))
				fields := map[string]string{}
				if file != "" {
					fields["file"] = file
				}
				if pos[0] > 0 {
					fields["line"] = strconv.Itoa(pos[0])
				}
				if pos[1] > 0 {
					fields["col"] = strconv.Itoa(pos[1])
				}
				a.Error(msg, file, pos[0], pos[1])
				lib.WithFieldsMap(fields).Errorf("%s", msg)
				a.Warning(msg, file, pos[0], pos[1])
				lib.WithFieldsMap(fields).Warningf("%s", msg)
				a.Notice(msg, file, pos[0], pos[1])
				lib.WithFieldsMap(fields).Noticef("%s", msg)
				if ours.String() != theirs.String() {
					t.Errorf("msg %q file %q pos %v:\nours   %q\ntheirs %q", msg, file, pos, ours.String(), theirs.String())
				}
			}
		}
		var ours, theirs bytes.Buffer
		a := New(&ours, env, "")
		lib := githubactions.New(githubactions.WithWriter(&theirs), githubactions.WithGetenv(env))
		a.Group(msg)
		lib.Group(msg)
		a.EndGroup()
		lib.EndGroup()
		if msg != "" && msg == firstLineOnly(msg) {
			a.AddMask(msg)
			lib.AddMask(msg)
		}
		if ours.String() != theirs.String() {
			t.Errorf("group/mask %q:\nours   %q\ntheirs %q", msg, ours.String(), theirs.String())
		}
	}
}

func firstLineOnly(s string) string {
	for i := range s {
		if s[i] == '\n' || s[i] == '\r' {
			return s[:i]
		}
	}
	return s
}
