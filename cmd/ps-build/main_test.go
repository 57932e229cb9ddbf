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
		{"version", []string{"--version"}, 0, `^ps-build \S+ \(\S+, go1\.\S+\)\n$`, `^$`},
		{"help", []string{"--help"}, 0, `(?s)^ps-build: .*USAGE.*--database-url.*EXAMPLES\n  ps-build `, `^$`},
		{"help says what is never sent", []string{"--help"}, 0, `(?s)never \.poststack/ or \.env\* files .*at any depth,\s+nor logs/.*passed by name`, `^$`},
		{"bad flag", []string{"--bogus"}, 2, `^$`, `^ps-build: flag provided but not defined: -bogus \(see 'ps-build --help'\)\n$`},
		{"bad value", []string{"--log-level", "loud", "x"}, 2, `^$`, `^ps-build: invalid value "loud" for flag -log-level: unknown log level`},
		{"unknown image", []string{"frobnicate"}, 2, `^$`, `^ps-build: unknown image "frobnicate"; this project builds: base-debian, postgres\n$`},
		{"dry run", []string{"--dry-run"}, 0, `(?s)^#  IMAGE +REF .*\n1  base-debian +poststack/base-debian:latest +- +built-in base-debian\n2  postgres +poststack/postgres:latest +base-debian +built-in postgres\n$`, `^$`},
		{"dry run json", []string{"--dry-run", "--json", "--base-image", "localhost/debian:bookworm", "postgres"}, 0, `(?s)"project": "[a-z0-9].*"name": "base-debian".*"BASE_IMAGE": "localhost/debian:bookworm".*"name": "postgres"`, `^$`},
		{"bad jobs", []string{"-j", "-1"}, 2, `^$`, `^ps-build: -j must be at least 1, not -1\n$`},
		{"bad tag", []string{"--tag", "a b", "--dry-run"}, 2, `^$`, `^ps-build: --tag "a b": a tag is up to 128`},
		{"bad build arg", []string{"--build-arg", "NOVALUE", "--dry-run"}, 2, `^$`, `^ps-build: --build-arg "NOVALUE": want KEY=VALUE\n$`},
		{"bad pull", []string{"--pull", "sometimes", "--dry-run"}, 2, `^$`, `^ps-build: --pull must be missing, always or never, not "sometimes"\n$`},
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
