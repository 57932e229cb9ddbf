package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A repository's .env (or a stray variable) names an output file of its choosing, relaxes the
// undefined-variable check and asks for secrets: ps-subst must write to standard output, keep
// the check, and leave the named file alone.
func TestAttackFallbacksDoNotRedirectOrRelax(t *testing.T) {
	home := t.TempDir()
	bashrc := filepath.Join(home, ".bashrc")
	writeFile(t, bashrc, "# the user's own\n")
	before, err := os.Stat(bashrc)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".env"), "POSTSTACK_OUTPUT="+bashrc+"\nPOSTSTACK_O="+bashrc+
		"\nPOSTSTACK_ALLOW_UNDEFINED=true\nPOSTSTACK_SHOW_SECRETS=true\nPOSTSTACK_SET=X=injected\n")
	writeFile(t, filepath.Join(dir, "t.tmpl"), "x=$X\n")
	environ := []string{"X=1", "POSTSTACK_OUTPUT=" + bashrc, "POSTSTACK_ALLOW_UNDEFINED=true", "HOME=" + home}

	r := runIn(t, dir, environ, "", "t.tmpl")
	if r.code != 0 || r.stdout != "x=1\n" {
		t.Fatalf("exit %d stdout %q stderr %q, want x=1 on stdout", r.code, r.stdout, r.stderr)
	}
	after, err := os.Stat(bashrc)
	if err != nil || readFile(t, bashrc) != "# the user's own\n" || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("%s was written: %v", bashrc, err)
	}
	if entries, _ := os.ReadDir(home); len(entries) != 1 {
		t.Errorf("files appeared next to the target: %v", entries)
	}

	writeFile(t, filepath.Join(dir, "u.tmpl"), "y=$UNDEFINED\n")
	if r := runIn(t, dir, environ, "", "u.tmpl"); r.code != 3 || !strings.Contains(r.stderr, "undefined variable UNDEFINED") {
		t.Errorf("POSTSTACK_ALLOW_UNDEFINED relaxed the check: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}
