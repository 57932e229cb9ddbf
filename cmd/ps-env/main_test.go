package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
)

func TestRun(t *testing.T) {
	t.Chdir(t.TempDir()) // no stray .env or logs/
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // regexp
		stderr string // regexp
	}{
		{"version", []string{"--version"}, 0, `^ps-env \S+ \(\S+, go1\.\S+\)\n$`, `^$`},
		{"help", []string{"--help"}, 0, `(?s)^ps-env: .*USAGE.*--database-url.*EXAMPLES\n  \S*ps-env `, `^$`},
		{"bad flag", []string{"--bogus"}, 2, `^$`, `^ps-env: flag provided but not defined: -bogus \(see 'ps-env --help'\)\n$`},
		{"bad value", []string{"--log-level", "loud", "x"}, 2, `^$`, `^ps-env: invalid value "loud" for flag -log-level: unknown log level`},
		{"unknown command", []string{"frobnicate"}, 2, `^$`, `^ps-env: unknown command "frobnicate" \(see 'ps-env --help'\)\n$`},
		{"no command", nil, 2, `^$`, `(?s)^ps-env: .*USAGE.*\nps-env: missing command`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !regexp.MustCompile(tt.stdout).MatchString(stdout.String()) {
				t.Errorf("stdout = %q, want match for %s", stdout.String(), tt.stdout)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(stderr.String()) {
				t.Errorf("stderr = %q, want match for %s", stderr.String(), tt.stderr)
			}
		})
	}
}

// plannedCommands are the ps-env commands of DESIGN.md; most arrive later.
var plannedCommands = []string{"init", "list", "up", "down", "restart", "status", "deploy", "dry-run",
	"config", "validate", "logs", "switch", "url", "db", "ephemeral"}

// TestHelpNamesOnlyCommandsThatRun asserts that the root --help neither
// lists nor shows in an example a command that is not in the command tree,
// and that every example's command path takes --help.
func TestHelpNamesOnlyCommandsThatRun(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("--help: exit %d\n%s", code, stderr.String())
	}
	help := stdout.String()
	root := rootCommand(cli.New("ps-env", cli.Env{}))
	exists := map[string]bool{}
	var walk func(cs []*ffcli.Command)
	walk = func(cs []*ffcli.Command) {
		for _, c := range cs {
			exists[c.Name] = true
			walk(c.Subcommands)
		}
	}
	walk(root.Subcommands)

	// The prose and the command list: everything before FLAGS (the flags'
	// own help names containers, restart policies and the like).
	prose, _, _ := strings.Cut(help, "\nFLAGS\n")
	var named []string
	for _, name := range plannedCommands {
		if !exists[name] && regexp.MustCompile(`(^|[^\w-])`+regexp.QuoteMeta(name)+`([^\w-]|$)`).MatchString(prose) {
			named = append(named, name)
		}
	}
	if len(named) > 0 {
		t.Errorf("--help names %v, which are not commands:\n%s", named, prose)
	}

	_, examples, ok := strings.Cut(help, "\nEXAMPLES\n")
	if !ok {
		t.Fatalf("--help has no EXAMPLES:\n%s", help)
	}
	for _, line := range strings.Split(strings.TrimSpace(examples), "\n") {
		_, invocation, ok := strings.Cut(line, "ps-env ")
		if !ok {
			continue
		}
		invocation, _, _ = strings.Cut(invocation, "#")
		path := commandPath(t, root, strings.Fields(invocation))
		if len(path) == 0 {
			t.Errorf("example %q runs no command", line)
			continue
		}
		if code := run(context.Background(), append(path, "--help"), strings.NewReader(""), io.Discard, io.Discard); code != 0 {
			t.Errorf("example %q: ps-env %s --help exits %d", line, strings.Join(path, " "), code)
		}
	}
}

// commandPath is the chain of (sub)command names that args select in
// root, skipping root's flags and their values.
func commandPath(t *testing.T, root *ffcli.Command, args []string) []string {
	t.Helper()
	var path []string
	cmd := root
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			f := cmd.FlagSet.Lookup(name)
			if f == nil {
				return path
			}
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && b.IsBoolFlag()) {
				i++
			}
			continue
		}
		var next *ffcli.Command
		for _, c := range cmd.Subcommands {
			if c.Name == a {
				next = c
			}
		}
		if next == nil {
			if len(path) == 0 {
				t.Errorf("%q is not a ps-env command", a)
			}
			return path
		}
		path, cmd = append(path, a), next
	}
	return path
}
