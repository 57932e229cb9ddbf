package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOutputBadPath: -o naming a file in a directory that does not exist,
// or a directory, is bad input: exit 2, one line naming the path, nothing
// written.
func TestOutputBadPath(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "t.tmpl"), "x=$X\n")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ out, want string }{
		{"nodir/x", "ps-subst: " + filepath.Join(dir, "nodir", "x") + ": the directory " + filepath.Join(dir, "nodir") + " does not exist\n"},
		{"sub", "ps-subst: " + filepath.Join(dir, "sub") + ": not a regular file\n"},
	} {
		r := runIn(t, dir, []string{"X=1"}, "", "-o", tc.out, "t.tmpl")
		if r.code != 2 || r.stderr != tc.want || r.stdout != "" {
			t.Errorf("-o %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", tc.out, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("the directory holds %v, want only t.tmpl and sub", entries)
	}
	if sub, _ := os.ReadDir(filepath.Join(dir, "sub")); len(sub) != 0 {
		t.Errorf("written into sub: %v", sub)
	}
}
