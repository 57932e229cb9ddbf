package environ

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGetenv(t *testing.T) {
	get := Getenv([]string{"A=1", "B=x=y", "A=2", "NOEQUALS"})
	for name, want := range map[string]string{"A": "2", "B": "x=y", "C": "", "NOEQUALS": ""} {
		if got := get(name); got != want {
			t.Errorf("Getenv(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestLookPath(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(a, "tool"), []byte("x"), 0o644); err != nil { // not executable
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(b, "tool")
	if err := os.WriteFile(want, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := "relative" + string(filepath.ListSeparator) + a + string(filepath.ListSeparator) + string(filepath.ListSeparator) + b
	if got, err := LookPath("tool", path); err != nil || got != want {
		t.Errorf("LookPath = %q, %v; want %q", got, err, want)
	}
	if _, err := LookPath("tool", ""); !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("found tool on an empty PATH: %v", err)
	}
	for _, name := range []string{"dir", "missing"} {
		if _, err := LookPath(name, path); !errors.Is(err, exec.ErrNotFound) {
			t.Errorf("LookPath(%q) err = %v, want exec.ErrNotFound", name, err)
		}
	}
}
