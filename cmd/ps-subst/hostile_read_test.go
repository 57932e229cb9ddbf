package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runWithin is runIn that fails the test when ps-subst blocks (a FIFO) or lasts (/dev/zero).
func runWithin(t *testing.T, dir string, args ...string) result {
	t.Helper()
	done := make(chan result, 1)
	go func() { done <- runIn(t, dir, nil, "", args...) }()
	select {
	case r := <-done:
		return r
	case <-time.After(2 * time.Second):
		t.Fatalf("ps-subst %v blocked", args)
		return result{}
	}
}

const hostileProjectYML = `environment: dev
project: {name: shop}
environments:
  dev:
    postgres: {database: shop_dev, port: 5433, user: shop_user, password: pw}
`

// TestHostileReads performs issue 9's reading attacks on ps-subst: templates, the project
// file and the project's .env that are FIFOs, links to /dev/zero or links to a file of the
// user's outside the project. Each is exit 2 at once, names the file, prints nothing of the
// secret, and leaves -o's target untouched.
func TestHostileReads(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "id_rsa")
	writeFile(t, secret, "project: {name: TOPSECRET\nKEY=TOPSECRET\n${TOPSECRET:?TOPSECRET}\n")
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string)
		args   []string
		stderr string // a part of the one-line message
	}{
		{"template is a FIFO", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "t.tmpl"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"t.tmpl"}, "ps-subst: t.tmpl: is a named pipe (FIFO), not a regular file\n"},
		{"template links to /dev/zero", func(t *testing.T, dir string) {
			symlink(t, "/dev/zero", filepath.Join(dir, "t.tmpl"))
		}, []string{"t.tmpl"}, "ps-subst: t.tmpl: is a character device, not a regular file\n"},
		{"template is huge", func(t *testing.T, dir string) {
			f, err := os.Create(filepath.Join(dir, "t.tmpl"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(17 << 20); err != nil {
				t.Fatal(err)
			}
		}, []string{"t.tmpl"}, "ps-subst: t.tmpl: is larger than 16 MiB"},
		{"project file links out", func(t *testing.T, dir string) {
			symlink(t, secret, filepath.Join(dir, ".poststack.yml"))
			writeFile(t, filepath.Join(dir, "t.tmpl"), "x\n")
		}, []string{"--env", "dev", "t.tmpl"}, "ps-subst: --env dev reads the project file .poststack.yml: is a symbolic link to"},
		{"project file is a FIFO", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, ".poststack.yml"), 0o644); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "t.tmpl"), "x\n")
		}, []string{"--env", "dev", "t.tmpl"}, "reads the project file .poststack.yml: is a named pipe (FIFO), not a regular file\n"},
		{"project .env links out", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ".poststack.yml"), hostileProjectYML)
			symlink(t, secret, filepath.Join(dir, ".env"))
			writeFile(t, filepath.Join(dir, "t.tmpl"), "x\n")
		}, []string{"--env", "dev", "t.tmpl"}, "/.env: is a symbolic link to"},
		{"project .env links to /dev/zero", func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, ".poststack.yml"), hostileProjectYML)
			symlink(t, "/dev/zero", filepath.Join(dir, ".env"))
			writeFile(t, filepath.Join(dir, "t.tmpl"), "x\n")
		}, []string{"--env", "dev", "t.tmpl"}, "/.env: is a symbolic link to \"/dev/zero\", outside the project directory"},
		{"--env-file is a FIFO", func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "ci.env"), 0o644); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "t.tmpl"), "x\n")
		}, []string{"--env-file", "ci.env", "t.tmpl"}, "ci.env: is a named pipe (FIFO), not a regular file\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			target := filepath.Join(dir, "out.txt")
			writeFile(t, target, "untouched\n")
			r := runWithin(t, dir, append([]string{"-o", "out.txt"}, tt.args...)...)
			if r.code != 2 || !strings.Contains(r.stderr, tt.stderr) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit 2 and one line with %q", r.code, r.stderr, tt.stderr)
			}
			if strings.Contains(r.stdout+r.stderr, "TOPSECRET") {
				t.Errorf("the secret reached the output: %q %q", r.stdout, r.stderr)
			}
			if data, err := os.ReadFile(target); err != nil || string(data) != "untouched\n" {
				t.Errorf("-o target now %q, %v", data, err)
			}
		})
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}
