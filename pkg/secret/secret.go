// Package secret keeps generated secrets in a project's .poststack/ state
// directory and masks secret values in human-facing output.
package secret

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/poststack/poststack/pkg/exitcode"
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
// winner's.
//
// A repository can ship .poststack itself, as a link to a directory of the
// attacker's or with app-dev.password -> ~/.ssh/id_rsa, whose content would
// become the password, go to the database and into containers. So the state
// directory must be a real directory of the user's, closed to group and
// others, and a password file a regular file of the user's, mode 0600,
// opened without following a link; anything else is refused (exit 2) with
// the command that fixes it, and nothing is read from or written to it.
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
	return Record(dir, project, env, suffix, func() (string, error) { return Generate(PasswordLength) })
}

// Record returns the value kept for project and env in dir/.poststack/<project>-<env><suffix>,
// making it with gen and storing it on first use, with the same guarantees as Password: one
// value for every concurrent caller, and a state directory or file planted by a checkout (a
// link, someone else's, open to others) refused with exit 2. Values are one line.
func Record(dir, project, env, suffix string, gen func() (string, error)) (string, error) {
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
	pw, err := gen()
	if err != nil {
		return "", err
	}
	if err := createOnce(path, []byte(pw+"\n")); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("store %s: %w", path, err)
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
// .gitignore so that its secrets are never committed by accident, or checks
// that the existing one is that.
func ensureStateDir(state string) error {
	err := os.Mkdir(state, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return checkStateDir(state)
	}
	if err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	// Mkdir is subject to the umask; make sure of 0700.
	if err := os.Chmod(state, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(state, ".gitignore"), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err == nil {
		_, err = f.WriteString("*\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	return nil
}

// checkStateDir refuses a state directory that is a symlink, not a
// directory, someone else's, or open to group or others.
func checkStateDir(state string) error {
	st, err := os.Lstat(state)
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	switch {
	case st.Mode()&fs.ModeSymlink != 0:
		return exitcode.Usagef("%s is a symlink, so secrets would be kept wherever it points; remove it (rm %s) and run again", state, state)
	case !st.IsDir():
		return exitcode.Usagef("%s is not a directory; remove it (rm %s) and run again", state, state)
	}
	if err := checkOwner(state, st, "rm -r"); err != nil {
		return err
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return exitcode.Usagef("%s has mode %04o, open to group or others; fix it with: chmod 700 %s", state, perm, state)
	}
	return nil
}

// checkOwner refuses a file or directory not owned by the current user:
// its owner could swap the secrets under us. rm is the command that removes
// path.
func checkOwner(path string, st fs.FileInfo, rm string) error {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Getuid(); int(sys.Uid) != uid {
		return exitcode.Usagef("%s is owned by uid %d, not by you (uid %d); remove it (%s %s) or run as its owner", path, sys.Uid, uid, rm, path)
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

// maxSecretSize bounds what is read from a password file: a generated one
// is one short line, and anything much larger is not a password of ours.
const maxSecretSize = 4 << 10

// read returns the password stored at path, or an error wrapping
// fs.ErrNotExist when there is none. The file is opened without following a
// symlink and without blocking on a FIFO, and checked on the open
// descriptor, so what is checked is what is read.
func read(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return "", exitcode.Usagef("secret file %s is a symlink, not a password of ours; remove it (rm %s) and run again to generate a new password", path, path)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	if !info.Mode().IsRegular() {
		return "", exitcode.Usagef("secret file %s is not a regular file; remove it (rm %s) and run again to generate a new password", path, path)
	}
	if err := checkOwner(path, info, "rm"); err != nil {
		return "", err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return "", exitcode.Usagef("secret file %s is accessible by group or others (mode %04o); fix it with: chmod 600 %s", path, perm, path)
	}
	if info.Size() > maxSecretSize {
		return "", exitcode.Usagef("secret file %s is %d bytes, not a password of ours; remove it (rm %s) and run again to generate a new password", path, info.Size(), path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretSize+1))
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	if len(data) > maxSecretSize {
		return "", exitcode.Usagef("secret file %s is larger than %d bytes, not a password of ours; remove it (rm %s) and run again to generate a new password", path, maxSecretSize, path)
	}
	pw := strings.TrimSpace(string(data))
	if pw == "" {
		return "", exitcode.Usagef("secret file %s is empty; delete it to generate a new password", path)
	}
	return pw, nil
}
