package cli

import (
	"flag"
	"testing"
)

// TestGlobalsKnowWhatRegisterDefined: which flags are global, where each may come from and
// which name paths follow from Register alone, so a global flag added there cannot be missed
// by help or by the fallback rules; a command's own flag of another name is not global.
func TestGlobalsKnowWhatRegisterDefined(t *testing.T) {
	var g Globals
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("image", "", "a command's own flag")
	g.Register(fs, "/work/project")
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name == "image" {
			if g.isGlobal(f.Name) {
				t.Errorf("--image, the command's own, is taken for a global")
			}
			return
		}
		n++
		if !g.isGlobal(f.Name) {
			t.Errorf("--%s: Register defined it, isGlobal says no", f.Name)
		}
	})
	if n != 16 {
		t.Errorf("Register defined %d flags, want the 16 of DESIGN.md", n)
	}
	tests := []struct {
		name     string
		fallback Fallback
		path     bool
	}{
		{"database-url", Setting, false},
		{"log-dir", Setting, true},
		{"migrations-path", Setting, true},
		{"project-containers-path", Setting, true},
		{"project-container-prefix", Setting, false},
		{"config-file", Environment, false},
		{"json", CommandLine, false},
		{"quiet", CommandLine, false},
		{"no-color", CommandLine, false},
		{"version", CommandLine, false},
	}
	for _, tt := range tests {
		if got := g.fallbackOf(tt.name); got != tt.fallback {
			t.Errorf("--%s: fallback %v, want %v", tt.name, got, tt.fallback)
		}
		if got := g.isPathSetting(tt.name); got != tt.path {
			t.Errorf("--%s: path setting %v, want %v", tt.name, got, tt.path)
		}
	}
	// A flag set that already defines a global's name keeps its own flag, and the name is
	// still a global one for help and the fallback rules.
	own := flag.NewFlagSet("y", flag.ContinueOnError)
	own.Bool("json", true, "its own --json")
	g.Register(own, "/work/project")
	if f := own.Lookup("json"); f.Usage != "its own --json" || !g.isGlobal("json") {
		t.Errorf("--json of a command that defines it: usage %q, global %v", f.Usage, g.isGlobal("json"))
	}
}
