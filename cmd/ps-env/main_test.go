package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
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
		{"help", []string{"--help"}, 0, `(?s)^ps-env: .*USAGE.*--database-url.*EXAMPLES\n  ps-env `, `^$`},
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
