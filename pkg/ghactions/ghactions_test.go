package ghactions

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

type kv struct{ k, v string }

// parseFileCommands reads GITHUB_OUTPUT/GITHUB_ENV content the way the
// runner does: "k=v" lines or "k<<DELIM" heredocs.
func parseFileCommands(t *testing.T, content string) []kv {
	t.Helper()
	var out []kv
	lines := strings.Split(content, "\n")
	if lines[len(lines)-1] != "" {
		t.Fatalf("content does not end in a newline: %q", content)
	}
	lines = lines[:len(lines)-1]
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if k, delim, ok := strings.Cut(line, "<<"); ok {
			var val []string
			i++
			for ; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("unterminated heredoc for %s", k)
			}
			out = append(out, kv{k, strings.Join(val, "\n")})
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		out = append(out, kv{k, v})
	}
	return out
}

func newEnabled(t *testing.T, w *bytes.Buffer) (*Actions, map[string]string) {
	dir := t.TempDir()
	env := map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_ENV":          filepath.Join(dir, "env"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
	}
	return New(w, func(k string) string { return env[k] }, ""), env
}

func TestOutputsAndEnvRoundTrip(t *testing.T) {
	hostile := []kv{
		{"plain", "value"},
		{"empty", ""},
		{"fixed-delim", "a\n_GitHubActionsFileCommandDelimeter_\ninjected<<X\nevil\nX"},
		{"newlines", "line1\nline2\n\n"},
		{"eof", "EOF\nEOF"},
		{"heredoc", "key<<x\nx\nother=1"},
		{"crlf", "a\r\nb"},
		{"equals", "a=b=c"},
		{"delim-like", "ghadelimiter_00\nghadelimiter_"},
	}
	var w bytes.Buffer
	a, env := newEnabled(t, &w)
	for _, p := range hostile {
		if err := a.SetOutput(p.k, p.v); err != nil {
			t.Fatalf("SetOutput(%q): %v", p.k, err)
		}
		if err := a.SetEnv(strings.ReplaceAll(p.k, "-", "_"), p.v); err != nil {
			t.Fatalf("SetEnv(%q): %v", p.k, err)
		}
	}
	for _, file := range []string{"GITHUB_OUTPUT", "GITHUB_ENV"} {
		b, err := os.ReadFile(env[file])
		if err != nil {
			t.Fatal(err)
		}
		got := parseFileCommands(t, string(b))
		want := hostile
		if file == "GITHUB_ENV" {
			want = nil
			for _, p := range hostile {
				want = append(want, kv{strings.ReplaceAll(p.k, "-", "_"), p.v})
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s parsed back to\n%q\nwant\n%q", file, got, want)
		}
	}
	if w.Len() != 0 {
		t.Errorf("file commands wrote to the command stream: %q", w.String())
	}
}

func TestDelimiterIsRandom(t *testing.T) {
	a, _ := fileCommand("k", "v")
	b, _ := fileCommand("k", "v")
	if a == b {
		t.Errorf("two entries share a delimiter: %q", a)
	}
}

func TestBadKeys(t *testing.T) {
	var w bytes.Buffer
	a, _ := newEnabled(t, &w)
	disabled := New(&w, func(string) string { return "" }, "")
	output := func(a *Actions) func(string) error { return func(k string) error { return a.SetOutput(k, "v") } }
	setenv := func(k string) error { return a.SetEnv(k, "v") }
	tests := []struct {
		name string
		set  func(k string) error
		key  string
	}{
		{"output empty", output(a), ""},
		{"output newline", output(a), "a\nb"},
		{"output heredoc", output(a), "a<<b"},
		{"env empty", setenv, ""},
		{"env cr", setenv, "a\rb"},
		{"env equals", setenv, "A=B"},
		{"disabled still validates", output(disabled), "a\nb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.set(tt.key); err == nil {
				t.Errorf("key %q: want error", tt.key)
			}
		})
	}
}

func TestMissingFileVariable(t *testing.T) {
	a := New(&bytes.Buffer{}, func(k string) string {
		if k == "GITHUB_ACTIONS" {
			return "true"
		}
		return ""
	}, "")
	if err := a.SetOutput("k", "v"); err == nil || !strings.Contains(err.Error(), "GITHUB_OUTPUT") {
		t.Errorf("err = %v, want GITHUB_OUTPUT is not set", err)
	}
	if err := a.AddStepSummary("x"); err == nil {
		t.Error("summary without GITHUB_STEP_SUMMARY: want error")
	}
}

func TestCommands(t *testing.T) {
	tests := []struct {
		name string
		do   func(a *Actions)
		want string
	}{
		{"error with position", func(a *Actions) { a.Error("syntax error at or near \"x\"", "migrations/0001_a.sql", 3, 7) },
			"::error col=7,file=migrations/0001_a.sql,line=3::syntax error at or near \"x\"\n"},
		{"escaped properties", func(a *Actions) { a.Warning("w", "dir,x/a:b%c\r\n.sql", 1, 0) },
			"::warning file=dir%2Cx/a%3Ab%25c%0D%0A.sql,line=1::w\n"},
		{"escaped message", func(a *Actions) { a.Notice("100% done\r\nnext: a,b", "", 0, 0) },
			"::notice::100%25 done%0D%0Anext: a,b\n"},
		{"group", func(a *Actions) { a.Group("Start postgres"); a.EndGroup() },
			"::group::Start postgres\n::endgroup::\n"},
		{"mask multi-line", func(a *Actions) { a.AddMask("line1\nline2\r\n\n  \nline3") },
			"::add-mask::line1\n::add-mask::line2\n::add-mask::line3\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			a, _ := newEnabled(t, &w)
			tt.do(a)
			if w.String() != tt.want {
				t.Errorf("got  %q\nwant %q", w.String(), tt.want)
			}
		})
	}
}

func TestStepSummary(t *testing.T) {
	a, env := newEnabled(t, &bytes.Buffer{})
	a.AddStepSummary("| a |\n|---|")
	a.AddStepSummary("done\n")
	b, _ := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	if string(b) != "| a |\n|---|\ndone\n" {
		t.Errorf("summary = %q", b)
	}
}

func TestDisabled(t *testing.T) {
	var w bytes.Buffer
	dir := t.TempDir()
	env := map[string]string{"GITHUB_OUTPUT": filepath.Join(dir, "o"), "GITHUB_ENV": filepath.Join(dir, "e")}
	a := New(&w, func(k string) string { return env[k] }, "")
	if a.Enabled() {
		t.Fatal("enabled without GITHUB_ACTIONS=true")
	}
	a.AddMask("s")
	a.Group("g")
	a.EndGroup()
	a.Error("e", "f", 1, 1)
	if err := a.SetOutput("k", "v"); err != nil {
		t.Error(err)
	}
	if err := a.SetEnv("k", "v"); err != nil {
		t.Error(err)
	}
	if err := a.AddStepSummary("x"); err != nil {
		t.Error(err)
	}
	if w.Len() != 0 {
		t.Errorf("disabled wrote %q", w.String())
	}
	for _, f := range []string{"o", "e"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("disabled touched %s", f)
		}
	}
	var nilActions *Actions
	if nilActions.Enabled() {
		t.Error("nil Actions enabled")
	}
}

// flakyWriter fails its first failures writes, as a closed pipe would, and
// records every write it was asked for.
type flakyWriter struct {
	failures int
	tried    []string
	written  strings.Builder
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.tried = append(w.tried, string(p))
	if w.failures > 0 {
		w.failures--
		return 0, errors.New("broken pipe")
	}
	return w.written.Write(p)
}

// TestWriteErrorsAreDropped breaks the log writer for the first two
// commands and asserts that each command was still tried as one whole line,
// that the commands after the failure reach the log, and that the file
// commands, which do not use the writer, still work and report no error.
func TestWriteErrorsAreDropped(t *testing.T) {
	out := filepath.Join(t.TempDir(), "output")
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": out}
	w := &flakyWriter{failures: 2}
	a := New(w, func(k string) string { return env[k] }, "")

	a.Group("g")
	a.AddMask("s3cret")
	a.Error("e", "f.sql", 3, 4)
	a.EndGroup()
	if err := a.SetOutput("k", "v"); err != nil {
		t.Errorf("SetOutput with a broken log writer: %v", err)
	}

	wantTried := []string{"::group::g\n", "::add-mask::s3cret\n", "::error col=4,file=f.sql,line=3::e\n", "::endgroup::\n"}
	if !reflect.DeepEqual(w.tried, wantTried) {
		t.Errorf("writes tried:\n%q\nwant\n%q", w.tried, wantTried)
	}
	if got, want := w.written.String(), strings.Join(wantTried[2:], ""); got != want {
		t.Errorf("written after the failures: %q, want %q", got, want)
	}
	content, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseFileCommands(t, string(content)); !reflect.DeepEqual(got, []kv{{"k", "v"}}) {
		t.Errorf("step outputs %v, want k=v", got)
	}
}

// TestWorkspacePath: annotations of a command run in a subdirectory of the workspace name the
// file from the workspace's root, through a symbolic link to the workspace too; files outside
// it, and everything outside Actions, stay as the command named them.
func TestWorkspacePath(t *testing.T) {
	ws := t.TempDir()
	sub := filepath.Join(ws, "examples", "app")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "ws")
	if err := os.Symlink(ws, link); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	tests := []struct {
		workspace, dir, file, want string
		actions                    bool
	}{
		{ws, sub, "migrations/0003_x.sql", "examples/app/migrations/0003_x.sql", true},
		{ws, sub, "./migrations/../migrations/0003_x.sql", "examples/app/migrations/0003_x.sql", true},
		{ws, ws, "migrations/0003_x.sql", "migrations/0003_x.sql", true},
		{ws, sub, filepath.Join(sub, "db", "seed.sql"), "examples/app/db/seed.sql", true},
		{link, sub, "migrations/0003_x.sql", "examples/app/migrations/0003_x.sql", true}, // the workspace through a link
		{ws, filepath.Join(link, "examples", "app"), "m.sql", "examples/app/m.sql", true},
		{ws, sub, "../../../elsewhere/m.sql", "../../../elsewhere/m.sql", true}, // leaves the workspace
		{ws, outside, "m.sql", "m.sql", true},
		{ws, sub, filepath.Join(outside, "m.sql"), filepath.Join(outside, "m.sql"), true},
		{"", sub, "m.sql", "m.sql", true},                                  // no workspace variable
		{"relative/ws", sub, "m.sql", "m.sql", true},                       // not a path to compare with
		{ws, "", "m.sql", "m.sql", true},                                   // no directory known
		{ws, sub, "migrations/0003_x.sql", "migrations/0003_x.sql", false}, // not under Actions
	}
	for _, tt := range tests {
		env := map[string]string{"GITHUB_WORKSPACE": tt.workspace}
		if tt.actions {
			env["GITHUB_ACTIONS"] = "true"
		}
		a := New(&bytes.Buffer{}, func(k string) string { return env[k] }, tt.dir)
		if got := a.WorkspacePath(tt.file); got != tt.want {
			t.Errorf("workspace %s, dir %s: WorkspacePath(%q) = %q, want %q", tt.workspace, tt.dir, tt.file, got, tt.want)
		}
	}

	// The annotation itself carries the workspace path.
	var w bytes.Buffer
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": ws}
	New(&w, func(k string) string { return env[k] }, sub).Error("boom", "migrations/0003_x.sql", 4, 2)
	if got, want := w.String(), "::error col=2,file=examples/app/migrations/0003_x.sql,line=4::boom\n"; got != want {
		t.Errorf("annotation %q, want %q", got, want)
	}
}
