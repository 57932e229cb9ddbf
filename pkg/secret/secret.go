// Package secret keeps generated secrets in a project's .poststack/ state
// directory and masks secret values in human-facing output.
package secret

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
)

// StateDir is the name of the private state directory inside a project.
const StateDir = ".poststack"

// alphabet holds only letters and digits: URL-safe, and no shell, YAML,
// dotenv or connection-string syntax ever needs to quote them.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// PasswordLength is the length of generated passwords (about 190 bits).
const PasswordLength = 32

// Password returns the database password for project and env kept under
// dir/.poststack/, generating and storing it on first use. Concurrent
// callers, in this process or others, all get the same password: the file
// appears atomically with its content and the loser of the race reads the
// winner's. A state file readable or writable by group or others is
// refused rather than used.
func Password(dir, project, env string) (string, error) {
	return stored(dir, project, env, ".password")
}

// AdminPassword is Password for the superuser of the environment's
// Postgres container ("postgres"), kept apart from the application's in
// <project>-<env>.admin-password.
func AdminPassword(dir, project, env string) (string, error) {
	return stored(dir, project, env, ".admin-password")
}

func stored(dir, project, env, suffix string) (string, error) {
	for _, s := range []string{project, env} {
		if s == "" || strings.ContainsAny(s, `/\`) || s == "." || s == ".." {
			return "", fmt.Errorf("secret: invalid project or environment name %q", s)
		}
	}
	state := filepath.Join(dir, StateDir)
	if err := ensureStateDir(state); err != nil {
		return "", err
	}
	path := filepath.Join(state, project+"-"+env+suffix)
	if pw, err := read(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return pw, err
	}
	pw, err := Generate(PasswordLength)
	if err != nil {
		return "", err
	}
	if err := createOnce(path, []byte(pw+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("store generated password: %w", err)
	}
	// Whether we created it or another process beat us, the file now holds
	// the one password everybody uses.
	return read(path)
}

// Generate returns n characters drawn uniformly from letters and digits with
// crypto/rand.
func Generate(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		k, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("generate secret: %w", err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b), nil
}

// ensureStateDir creates the state directory private to its owner, with a
// .gitignore so that its secrets are never committed by accident.
func ensureStateDir(state string) error {
	err := os.Mkdir(state, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	// Mkdir is subject to the umask; make sure of 0700.
	if err := os.Chmod(state, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(state, ".gitignore"), []byte("*\n"), 0o600); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	return nil
}

// createOnce makes path hold data, failing with fs.ErrExist when it already
// exists. The content is written to a temporary file first and hard-linked
// into place, so that nobody can read a half-written file; where hard links
// are not supported it falls back to O_EXCL.
func createOnce(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	err = os.Link(tmp.Name(), path)
	if err == nil || errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func read(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", fmt.Errorf("secret file %s is accessible by group or others (mode %04o); fix it with: chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	pw := strings.TrimSpace(string(data))
	if pw == "" {
		return "", fmt.Errorf("secret file %s is empty; delete it to generate a new password", path)
	}
	return pw, nil
}
