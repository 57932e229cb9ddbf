package variables

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

const secretEnv = "AWS_SECRET_ACCESS_KEY=TOPSECRET-aws\n"

// TestHostileProjectDotEnv: the project's own .env is found, not named by the user; a
// checkout that makes it a link to a file of the user's, to /dev/zero, or a FIFO gets exit 2
// naming it, and nothing of the file it leads to is read into the variables or the message.
func TestHostileProjectDotEnv(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "credentials")
	if err := os.WriteFile(secret, []byte(secretEnv), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		make   func(path string) error
		reason string
	}{
		{"symlink to a secret outside", func(p string) error { return os.Symlink(secret, p) }, "outside the project directory"},
		{"symlink to /dev/zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "outside the project directory"},
		{"FIFO", func(p string) error { return syscall.Mkfifo(p, 0o644) }, "is a named pipe (FIFO), not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, env := load(t, devYML)
			dotenv := filepath.Join(f.Dir, ".env")
			if err := tt.make(dotenv); err != nil {
				t.Fatal(err)
			}
			s, err := within(t, func() (*Set, error) { return ForEnvironment(f, env, Options{}) })
			if err == nil || exitcode.Of(err) != exitcode.Usage {
				t.Fatalf("err = %v (exit %d), want exit 2; variables %v", err, exitcode.Of(err), s)
			}
			if !strings.Contains(err.Error(), dotenv+": ") || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %q, want it to name %s and say %q", err, dotenv, tt.reason)
			}
			if strings.Contains(err.Error(), "TOPSECRET") {
				t.Errorf("err = %q holds the secret", err)
			}
		})
	}
}

// TestEnvFileNamedByUser: --env-file names a file the user chose: a link out of the project
// is followed, but a FIFO or /dev/zero is still refused at once.
func TestEnvFileNamedByUser(t *testing.T) {
	outside := t.TempDir()
	ci := filepath.Join(outside, "ci.env")
	if err := os.WriteFile(ci, []byte("FROM_CI=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	project := t.TempDir()
	link := filepath.Join(project, "ci.env")
	if err := os.Symlink(ci, link); err != nil {
		t.Fatal(err)
	}
	s, err := Standalone(Options{EnvFiles: []string{link}})
	if v, _ := s.Var("FROM_CI"); err != nil || v.Value != "1" {
		t.Fatalf("a link the user named: %v, %v", v, err)
	}
	fifo := filepath.Join(project, "fifo.env")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(project, "zero.env")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	for path, reason := range map[string]string{fifo: "is a named pipe (FIFO)", zero: "is a character device"} {
		_, err := within(t, func() (*Set, error) { return Standalone(Options{EnvFiles: []string{path}}) })
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), path+": "+reason) {
			t.Errorf("--env-file %s: err = %v (exit %d), want exit 2 saying %q", path, err, exitcode.Of(err), reason)
		}
	}
}

func within(t *testing.T, fn func() (*Set, error)) (*Set, error) {
	t.Helper()
	type result struct {
		s   *Set
		err error
	}
	done := make(chan result, 1)
	go func() { s, err := fn(); done <- result{s, err} }()
	select {
	case r := <-done:
		return r.s, r.err
	case <-time.After(time.Second):
		t.Fatal("blocked for more than a second")
		return nil, nil
	}
}
