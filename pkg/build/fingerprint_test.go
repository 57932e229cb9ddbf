package build

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	root := project(t, map[string]string{
		"containers/api/Dockerfile": "FROM debian\nCOPY . /src\n",
		"src/main.go":               "package main\n",
		"node_modules/x/index.js":   "x\n",
		"logs/containers/a.log":     "log\n",
		".dockerignore":             "node_modules\n*.tmp\n",
	})
	im := &Image{Name: "api", Ref: "p/api:latest", Dockerfile: filepath.Join(root, "containers/api/Dockerfile"), Context: root,
		BuildArgs: map[string]string{"A": "1"}, Froms: []From{{Image: "debian", Line: 1}}}
	bases := map[string]string{"debian": "sha256:aaa"}
	fp := func() string {
		t.Helper()
		s, err := fingerprint("podman", im, map[string]string{"l": "v"}, bases, ContextExcludes(""))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	touch := func(name, content string) {
		t.Helper()
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Hour)
		os.Chtimes(p, future, future)
	}
	first := fp()
	if fp() != first {
		t.Fatal("fingerprint is not stable")
	}
	// Ignored or skipped files do not count.
	touch("node_modules/x/index.js", "changed\n")
	touch("logs/containers/b.log", "new log\n")
	touch("scratch.tmp", "tmp\n")
	if got := fp(); got != first {
		t.Error("an ignored file, a log or a *.tmp file changed the fingerprint")
	}
	// What is never sent does not count either, even brought back by "!".
	touch(".dockerignore", "node_modules\n*.tmp\n!.env\n!.poststack\n")
	first = fp()
	touch(".env", "DB_PASSWORD=x\n")
	touch(".poststack/dev.password", "x\n")
	touch("src/.env.production", "x\n")
	if got := fp(); got != first {
		t.Error("a .env or .poststack/ file changed the fingerprint: it is not sent to the engine")
	}
	steps := []struct {
		name   string
		change func()
	}{
		{"context file", func() { touch("src/main.go", "package main // edited\n") }},
		{"new file", func() { touch("src/util.go", "package main\n") }},
		{"Dockerfile", func() { touch("containers/api/Dockerfile", "FROM debian\nCOPY . /srv\n") }},
		{"build arg", func() { im.BuildArgs["A"] = "2" }},
		{"base image ID", func() { bases["debian"] = "sha256:bbb" }},
		{"ignore file", func() { touch(".dockerignore", "node_modules\n") }},
	}
	prev := first
	for _, s := range steps {
		s.change()
		got := fp()
		if got == prev {
			t.Errorf("changing the %s kept the fingerprint", s.name)
		}
		prev = got
	}
}
