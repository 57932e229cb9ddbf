package xdg

import (
	"errors"
	"testing"
)

func TestDirs(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name  string
		env   map[string]string
		cache string
		state string
	}{
		{"xdg", map[string]string{"XDG_CACHE_HOME": "/c", "XDG_STATE_HOME": "/s", "HOME": "/h"}, "/c/poststack/x", "/s/poststack/x"},
		{"home", map[string]string{"HOME": "/h"}, "/h/.cache/poststack/x", "/h/.local/state/poststack/x"},
		{"relative xdg ignored", map[string]string{"XDG_CACHE_HOME": "c", "XDG_STATE_HOME": "s", "HOME": "/h"}, "/h/.cache/poststack/x", "/h/.local/state/poststack/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := CacheDir(env(tc.env), "x"); err != nil || got != tc.cache {
				t.Errorf("CacheDir = %q, %v; want %q", got, err, tc.cache)
			}
			if got, err := StateDir(env(tc.env), "x"); err != nil || got != tc.state {
				t.Errorf("StateDir = %q, %v; want %q", got, err, tc.state)
			}
		})
	}
	if _, err := CacheDir(env(map[string]string{"HOME": "rel"})); !errors.Is(err, ErrNoHome) {
		t.Errorf("err = %v, want ErrNoHome", err)
	}
}
