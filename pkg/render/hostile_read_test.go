package render

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// TestHostileTemplates: templates that are FIFOs, links to /dev/zero or links out of the
// project are refused at once, exit 2, naming the file; nothing reaches the output and
// nothing of a secret reaches the message.
func TestHostileTemplates(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("${TOPSECRET:?x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	project := t.TempDir()
	fifo := filepath.Join(project, "fifo.tmpl")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(project, "zero.tmpl")
	out := filepath.Join(project, "out.tmpl")
	for target, link := range map[string]string{"/dev/zero": zero, secret: out} {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name   string
		in     Input
		reason string
	}{
		{"FIFO", File(fifo), "is a named pipe (FIFO), not a regular file"},
		{"FIFO in the project", ProjectFile(project, fifo), "is a named pipe (FIFO), not a regular file"},
		{"link to /dev/zero", File(zero), "is a character device, not a regular file"},
		{"link out of the project", ProjectFile(project, out), "outside the project directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w bytes.Buffer
			done := make(chan error, 1)
			go func() { done <- To(&w, []Input{tt.in}, lookup(nil), Options{}) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Second):
				t.Fatal("blocked for more than a second")
			}
			if exitcode.Of(err) != exitcode.Usage || !strings.HasPrefix(err.Error(), tt.in.Name+": ") || !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("err = %v (exit %d), want exit 2 naming %s: %s", err, exitcode.Of(err), tt.in.Name, tt.reason)
			}
			if strings.Contains(err.Error(), "TOPSECRET") || w.Len() != 0 {
				t.Errorf("err = %v, output %q: want neither to carry anything", err, w.String())
			}
		})
	}
	// A link the user named is followed wherever it leads.
	var w bytes.Buffer
	if err := To(&w, []Input{File(out)}, lookup(map[string]string{"TOPSECRET": "ok"}), Options{}); err != nil || w.String() != "ok\n" {
		t.Fatalf("a template the user named through a link: %q, %v", w.String(), err)
	}
}
