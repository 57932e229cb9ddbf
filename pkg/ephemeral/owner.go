package ephemeral

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/pgnative"
)

// A record is only a claim: the state directory may come from a repository, and a record can
// name any container, directory or process. Before anything is stopped or removed, what the
// record names must prove it was made for this instance, by carrying the instance's owner key:
// a hash of its ID and its superuser password, which only the record that holds the URL knows.
// The ID alone would not do: it is in every container name and in `list`'s output.

// ErrNotOurs is wrapped by the error about a record whose container or directory was not made
// for that instance. Nothing of it is stopped or removed; the record is dropped.
var ErrNotOurs = errors.New("not ours: left alone")

const (
	// labelKey carries the owner key on the container.
	labelKey = "io.poststack.ephemeral.key"
	// keyFile carries the owner key in a native server's directory.
	keyFile = "poststack-ephemeral.key"
	// nativeDirPrefix starts the name of every pgnative server directory.
	nativeDirPrefix = "pgnative-"
)

// ownerKey derives the instance's key. The password is 128 random bits, so publishing the hash
// in a label reveals nothing about it.
func (inst *Instance) ownerKey() string {
	pw := inst.password
	if pw == "" {
		if u, err := url.Parse(inst.URL); err == nil && u.User != nil {
			pw, _ = u.User.Password()
		}
	}
	if pw == "" {
		// No secret, no key that could prove anything: nothing will match it.
		return ""
	}
	h := sha256.Sum256([]byte("poststack ephemeral owner v1\x00" + inst.ID + "\x00" + pw))
	return hex.EncodeToString(h[:])
}

// notOurs is the usage error (exit 2) about what a record names.
func (inst *Instance) notOurs(format string, args ...any) error {
	where := "instance " + inst.ID
	if inst.stateDir != "" {
		where = "record " + recordPath(inst.stateDir, inst.ID)
	}
	return exitcode.With(exitcode.Usage, fmt.Errorf("ephemeral: %s: %s: %w", where, fmt.Sprintf(format, args...), ErrNotOurs))
}

// ownedContainer returns the instance's container, nil when there is none, or an error wrapping
// ErrNotOurs when the record names another container or the one of that name lacks the
// instance's labels.
func ownedContainer(ctx context.Context, e *engine.Engine, inst *Instance) (*engine.Container, error) {
	want := containerPrefix + inst.ID
	if inst.Container != want {
		return nil, inst.notOurs("it names container %q; this instance's container is %s", inst.Container, want)
	}
	c, err := e.InspectContainer(ctx, want)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ephemeral: %w", err)
	}
	key := inst.ownerKey()
	if c.Labels[labelID] != inst.ID || key == "" || c.Labels[labelKey] != key {
		return nil, inst.notOurs("container %s (%.12s) does not carry label %s=%s and this record's key %s", want, c.ID, labelID, inst.ID, labelKey)
	}
	return c, nil
}

// ownedNativeDir checks that a recorded native server's directory is one Start made for this
// instance: an absolute pgnative directory, itself and its data directory no symlinks (which
// could lead the stop to another server's postmaster), holding our key file. It reports
// whether the directory exists.
func ownedNativeDir(inst *Instance) (bool, error) {
	dir := inst.Dir
	if !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || !strings.HasPrefix(filepath.Base(dir), nativeDirPrefix) {
		return false, inst.notOurs("%q is not a native server directory (an absolute path named %s…)", dir, nativeDirPrefix)
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ephemeral: %w", err)
	}
	if !fi.IsDir() {
		return false, inst.notOurs("%s is not a directory (%s)", dir, fi.Mode().Type())
	}
	if fi, err := os.Lstat(filepath.Join(dir, "data")); err == nil && !fi.IsDir() {
		return false, inst.notOurs("%s is not a data directory (%s)", filepath.Join(dir, "data"), fi.Mode().Type())
	}
	key := inst.ownerKey()
	if have, err := readKeyFile(filepath.Join(dir, keyFile)); err != nil || key == "" || have != key {
		return false, inst.notOurs("%s does not hold this record's key (%s)", dir, keyFile)
	}
	return true, nil
}

// readKeyFile reads a key file of ours: a small regular file, not a symlink, owned by us.
func readKeyFile(path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || !ok || int(st.Uid) != os.Geteuid() {
		return "", fmt.Errorf("%s is not a regular file of ours", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// writeKeyFile marks a native server's directory as this instance's.
func writeKeyFile(inst *Instance) error {
	path := filepath.Join(inst.Dir, keyFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("ephemeral: mark server directory: %w", err)
	}
	_, err = f.WriteString(inst.ownerKey() + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("ephemeral: mark server directory: %w", err)
	}
	return nil
}

// nativeRunning reports whether the recorded native server runs, after checking that its
// directory is ours and that its postmaster is the recorded one.
func nativeRunning(inst *Instance) (bool, error) {
	exists, err := ownedNativeDir(inst)
	if err != nil || !exists {
		return false, err
	}
	pid, ok := pgnative.Running(inst.Dir)
	if !ok {
		return false, nil
	}
	if inst.PID != 0 && pid != inst.PID {
		return false, inst.notOurs("the postmaster of %s is pid %d, not the recorded %d", inst.Dir, pid, inst.PID)
	}
	return true, nil
}
