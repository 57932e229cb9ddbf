// Package ghactions is poststack's face to the GitHub Actions runner: masks,
// groups, annotations, step summaries, step outputs and environment
// variables.
//
// It speaks the protocol of github.com/sethvargo/go-githubactions (whose
// escaping the tests check byte for byte) without importing it: that
// library pulls in net/http, crypto/tls and html/template, whose package
// initialisation alone tripled the start-up time of every binary, and
// ps-subst must answer --version in milliseconds. The library's SetOutput
// and SetEnv also use a fixed heredoc delimiter, so a value containing that
// delimiter line could end the heredoc early and inject further outputs or
// variables; here each entry gets a random delimiter absent from its value.
//
// Outside Actions (GITHUB_ACTIONS is not "true") every method is a no-op
// that returns nil (keys are still validated): callers report through their
// normal output as well, so plain-text copies of annotations would only be
// noise, and there is no runner to read outputs or environment files.
package ghactions

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Actions talks to the runner through a writer (workflow commands) and the
// files the runner names in GITHUB_OUTPUT, GITHUB_ENV and
// GITHUB_STEP_SUMMARY.
type Actions struct {
	mu      sync.Mutex
	w       io.Writer
	getenv  func(string) string
	dir     string
	enabled bool
}

// New returns an Actions writing workflow commands to w (the runner reads
// both stdout and stderr; poststack uses stderr to keep stdout for data)
// and reading the runner's variables through getenv. dir is the directory
// relative file names are relative to (the process's working directory):
// annotations name files relative to GITHUB_WORKSPACE, see WorkspacePath.
func New(w io.Writer, getenv func(string) string, dir string) *Actions {
	return &Actions{
		w:       w,
		getenv:  getenv,
		dir:     dir,
		enabled: getenv("GITHUB_ACTIONS") == "true",
	}
}

// Enabled reports whether the process runs as a GitHub Actions step.
func (a *Actions) Enabled() bool { return a != nil && a.enabled }

// AddMask asks the runner to hide v in the job log. The runner matches
// masks line by line, so a multi-line value is registered one line at a
// time.
func (a *Actions) AddMask(v string) {
	if !a.Enabled() {
		return
	}
	for _, line := range strings.Split(strings.ReplaceAll(v, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		a.command("add-mask", nil, line)
	}
}

// Group starts a collapsible group in the job log.
func (a *Actions) Group(title string) {
	if a.Enabled() {
		a.command("group", nil, title)
	}
}

// EndGroup ends the group Group started.
func (a *Actions) EndGroup() {
	if a.Enabled() {
		a.command("endgroup", nil, "")
	}
}

// Error annotates file:line:col with msg. file may be empty and line or
// col zero when unknown.
func (a *Actions) Error(msg, file string, line, col int) {
	a.annotate("error", msg, file, line, col)
}

// Warning annotates like Error at warning level.
func (a *Actions) Warning(msg, file string, line, col int) {
	a.annotate("warning", msg, file, line, col)
}

// Notice annotates like Error at notice level.
func (a *Actions) Notice(msg, file string, line, col int) {
	a.annotate("notice", msg, file, line, col)
}

func (a *Actions) annotate(kind, msg, file string, line, col int) {
	if !a.Enabled() {
		return
	}
	fields := map[string]string{}
	if file != "" {
		fields["file"] = a.WorkspacePath(file)
	}
	if line > 0 {
		fields["line"] = strconv.Itoa(line)
	}
	if col > 0 {
		fields["col"] = strconv.Itoa(col)
	}
	a.command(kind, fields, msg)
}

// WorkspacePath names file (relative to the Actions' directory, or absolute)
// as GitHub wants it in annotations and step summaries: relative to
// GITHUB_WORKSPACE, with forward slashes, so that a step run in a
// subdirectory (working-directory) points at the right file of the pull
// request. A file outside the workspace, or any file outside Actions, is
// returned unchanged. The directories are compared as given and with
// symbolic links resolved (the runner's workspace path may be a link).
func (a *Actions) WorkspacePath(file string) string {
	ws := ""
	if a.Enabled() {
		ws = a.getenv("GITHUB_WORKSPACE")
	}
	if file == "" || ws == "" || !filepath.IsAbs(ws) || (!filepath.IsAbs(file) && !filepath.IsAbs(a.dir)) {
		return file
	}
	under := func(ws, dir string) (string, bool) {
		abs := file
		if !filepath.IsAbs(abs) {
			abs = filepath.Join(dir, file)
		}
		rel, err := filepath.Rel(ws, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return "", false
		}
		return filepath.ToSlash(rel), true
	}
	if rel, ok := under(filepath.Clean(ws), a.dir); ok {
		return rel
	}
	rws, err1 := filepath.EvalSymlinks(ws)
	rdir, err2 := filepath.EvalSymlinks(a.dir)
	if err1 == nil && err2 == nil {
		if rel, ok := under(rws, rdir); ok {
			return rel
		}
	}
	return file
}

// command writes "::name k=v,k=v::message", escaped as the runner expects.
// Write errors are dropped: a lost workflow command is not worth failing
// a migration over.
func (a *Actions) command(name string, props map[string]string, msg string) {
	var b strings.Builder
	b.WriteString("::")
	b.WriteString(name)
	if len(props) > 0 {
		keys := make([]string, 0, len(props))
		for k := range props {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i == 0 {
				b.WriteByte(' ')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(k + "=" + escapeProperty(props[k]))
		}
	}
	b.WriteString("::")
	b.WriteString(escapeData(msg))
	b.WriteByte('\n')
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = io.WriteString(a.w, b.String())
}

// escapeData and escapeProperty follow actions/toolkit's command.ts.
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}

// AddStepSummary appends markdown to the job summary.
func (a *Actions) AddStepSummary(markdown string) error {
	if !a.Enabled() {
		return nil
	}
	if !strings.HasSuffix(markdown, "\n") {
		markdown += "\n"
	}
	return a.appendFile("GITHUB_STEP_SUMMARY", markdown)
}

// SetOutput sets the step output key to value.
func (a *Actions) SetOutput(key, value string) error {
	if err := validateKey(key, false); err != nil {
		return fmt.Errorf("step output: %w", err)
	}
	if !a.Enabled() {
		return nil
	}
	entry, err := fileCommand(key, value)
	if err != nil {
		return fmt.Errorf("step output %s: %w", key, err)
	}
	return a.appendFile("GITHUB_OUTPUT", entry)
}

// SetEnv sets key=value in the environment of the job's later steps.
func (a *Actions) SetEnv(key, value string) error {
	if err := validateKey(key, true); err != nil {
		return fmt.Errorf("step environment: %w", err)
	}
	if !a.Enabled() {
		return nil
	}
	entry, err := fileCommand(key, value)
	if err != nil {
		return fmt.Errorf("step environment %s: %w", key, err)
	}
	return a.appendFile("GITHUB_ENV", entry)
}

func validateKey(key string, env bool) error {
	switch {
	case key == "":
		return errors.New("empty name")
	case strings.ContainsAny(key, "\r\n"):
		return fmt.Errorf("name %q contains a line break", key)
	case strings.Contains(key, "<<"):
		return fmt.Errorf("name %q contains <<", key)
	case env && strings.Contains(key, "="):
		return fmt.Errorf("name %q contains =", key)
	}
	return nil
}

// fileCommand renders a "key<<delim" heredoc entry with a delimiter that
// occurs nowhere in value.
func fileCommand(key, value string) (string, error) {
	for range 10 {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("random delimiter: %w", err)
		}
		delim := "ghadelimiter_" + hex.EncodeToString(b[:])
		if strings.Contains(value, delim) {
			continue
		}
		return key + "<<" + delim + "\n" + value + "\n" + delim + "\n", nil
	}
	return "", errors.New("no delimiter found that is absent from the value")
}

func (a *Actions) appendFile(envName, content string) error {
	path := a.getenv(envName)
	if path == "" {
		return fmt.Errorf("%s is not set", envName)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open %s file: %w", envName, err)
	}
	_, err = io.WriteString(f, content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s file: %w", envName, err)
	}
	return nil
}
