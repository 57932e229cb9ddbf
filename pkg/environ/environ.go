// Package environ reads an environment given as a list of NAME=value strings (a child
// process's, a test's), so that code never has to consult the real process environment.
package environ

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Getenv returns a lookup function over env, the last entry of a name winning as in the
// process environment; a missing name gives "".
func Getenv(env []string) func(string) string {
	return func(name string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
				return v
			}
		}
		return ""
	}
}

// LookPath finds the executable name in the directories of path (a PATH value), skipping
// empty and relative entries as exec.LookPath refuses results relative to the working
// directory. The error wraps exec.ErrNotFound.
func LookPath(name, path string) (string, error) {
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: %w", name, exec.ErrNotFound)
}
