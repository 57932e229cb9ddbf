package pgnative

import (
	"context"
	"errors"
	"fmt"
	"github.com/poststack/poststack/pkg/environ"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// ErrNoBinaries means the PostgreSQL server binaries (initdb, postgres) were not found, so a
// native server cannot run on this machine; test helpers skip on it outside CI.
var ErrNoBinaries = errors.New("PostgreSQL server binaries not found")

// debianRoot is where Debian and Ubuntu install one bin directory per major version.
const debianRoot = "/usr/lib/postgresql"

// binaries are the programs Start runs, by absolute path with symlinks resolved, because the
// server locates its share directory relative to its own executable.
type binaries struct {
	dir      string
	initdb   string
	postgres string
}

// BinDir returns the directory of the PostgreSQL binaries that Start would run with the same
// options, or an error wrapping ErrNoBinaries; callers use it to choose between this provider
// and a container.
func BinDir(opts ...Option) (string, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return "", err
	}
	b, err := findBinaries(cfg)
	if err != nil {
		return "", err
	}
	return b.dir, nil
}

func findBinaries(c *config) (binaries, error) {
	if c.binDir != "" {
		return binariesIn(c.binDir)
	}
	if dir, ok := newestDebianBinDir(debianRoot); ok {
		return binariesIn(dir)
	}
	if p, err := environ.LookPath("initdb", c.getenv("PATH")); err == nil {
		return binariesIn(filepath.Dir(p))
	}
	return binaries{}, fmt.Errorf("pgnative: %w: no %s/*/bin and no initdb on PATH (install postgresql, or use WithBinDir)", ErrNoBinaries, debianRoot)
}

func binariesIn(dir string) (binaries, error) {
	b := binaries{}
	var missing []string
	for _, name := range []string{"initdb", "postgres"} {
		p := filepath.Join(dir, name)
		real, err := filepath.EvalSymlinks(p)
		if err == nil {
			err = checkExecutable(real)
		}
		if err != nil {
			missing = append(missing, err.Error())
			continue
		}
		switch name {
		case "initdb":
			b.initdb = real
		case "postgres":
			b.postgres = real
		}
	}
	if len(missing) > 0 {
		return binaries{}, fmt.Errorf("pgnative: %w in %s: %s", ErrNoBinaries, dir, strings.Join(missing, "; "))
	}
	b.dir = filepath.Dir(b.postgres)
	return b, nil
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// newestDebianBinDir picks the highest major version, compared as a number so that 9 < 10.
func newestDebianBinDir(root string) (string, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", false
	}
	type cand struct {
		major float64
		dir   string
	}
	var cands []cand
	for _, e := range entries {
		v, err := strconv.ParseFloat(e.Name(), 64)
		if err != nil {
			continue
		}
		dir := filepath.Join(root, e.Name(), "bin")
		if checkExecutable(filepath.Join(dir, "initdb")) != nil {
			continue
		}
		cands = append(cands, cand{v, dir})
	}
	if len(cands) == 0 {
		return "", false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].major > cands[j].major })
	return cands[0].dir, true
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\S+)`)

// serverVersion asks the binary itself; about 30 ms, so the warm path reads the version stored
// next to the cached data directory instead.
func serverVersion(ctx context.Context, postgres string, env []string) (string, error) {
	cmd := exec.CommandContext(ctx, postgres, "--version")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("pgnative: %s --version: %w", postgres, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("pgnative: %s --version: unexpected output %q", postgres, strings.TrimSpace(string(out)))
	}
	return string(m[1]), nil
}
