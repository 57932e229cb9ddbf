// Package xdg finds poststack's per-user directories the way the XDG Base
// Directory specification says: $XDG_CACHE_HOME or ~/.cache for caches,
// $XDG_STATE_HOME or ~/.local/state for state that outlives a run.
package xdg

import (
	"errors"
	"path/filepath"
)

// ErrNoHome is returned when neither the XDG variable nor HOME is an
// absolute path.
var ErrNoHome = errors.New("neither the XDG base directory variable nor HOME is an absolute path")

// CacheDir returns $XDG_CACHE_HOME/poststack/<elem…>, else
// $HOME/.cache/poststack/<elem…>.
func CacheDir(getenv func(string) string, elem ...string) (string, error) {
	return dir(getenv, "XDG_CACHE_HOME", ".cache", elem)
}

// StateDir returns $XDG_STATE_HOME/poststack/<elem…>, else
// $HOME/.local/state/poststack/<elem…>.
func StateDir(getenv func(string) string, elem ...string) (string, error) {
	return dir(getenv, "XDG_STATE_HOME", filepath.Join(".local", "state"), elem)
}

func dir(getenv func(string) string, variable, fallback string, elem []string) (string, error) {
	base := getenv(variable)
	if !filepath.IsAbs(base) {
		// The specification says to ignore a relative value.
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			return "", ErrNoHome
		}
		base = filepath.Join(home, fallback)
	}
	return filepath.Join(append([]string{base, "poststack"}, elem...)...), nil
}
