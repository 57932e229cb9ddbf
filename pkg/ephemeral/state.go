package ephemeral

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/xdg"
)

// DefaultStateDir is where detached instances are recorded when Options.StateDir is empty:
// $XDG_STATE_HOME/poststack/ephemeral, else ~/.local/state/poststack/ephemeral. State, not
// cache: deleting it would forget servers that still run.
func DefaultStateDir(getenv func(string) string) (string, error) {
	dir, err := xdg.StateDir(getenv, "ephemeral")
	if err != nil {
		return "", fmt.Errorf("ephemeral: no state directory (set XDG_STATE_HOME or HOME, or give one): %w", err)
	}
	return dir, nil
}

func resolveStateDir(dir string, getenv func(string) string) (string, error) {
	if dir == "" {
		return DefaultStateDir(getenv)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("ephemeral: state directory %s: %w", dir, err)
	}
	return abs, nil
}

var idPattern = regexp.MustCompile(`^[0-9a-f]{1,32}$`)

func recordPath(stateDir, id string) string { return filepath.Join(stateDir, id+".json") }

// save writes the record atomically and private (0600 in a 0700 directory): it holds the URL
// with the password.
func (inst *Instance) save(stateDir string) error {
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("ephemeral: state directory: %w", err)
	}
	data, err := json.MarshalIndent(inst, "", "  ")
	if err != nil {
		return fmt.Errorf("ephemeral: record %s: %w", inst.ID, err)
	}
	// Set before writing, so that a failed or interrupted write is cleaned up by stop.
	inst.stateDir = stateDir
	err = atomicfile.Write(recordPath(stateDir, inst.ID), atomicfile.Private, func(f *os.File) error {
		_, err := f.Write(append(data, '\n'))
		return err
	})
	if err != nil {
		return fmt.Errorf("ephemeral: record %s: %w", inst.ID, err)
	}
	return nil
}

func removeRecord(stateDir, id string) error {
	err := os.Remove(recordPath(stateDir, id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ephemeral: remove record %s: %w", id, err)
	}
	return nil
}

// maxRecordSize bounds what is read of a record: a real one is well under a kilobyte.
const maxRecordSize = 64 << 10

// readRecord reads a record, a regular file not reached through a symlink. A record that is not
// one is a usage error (exit 2) naming the file.
func readRecord(stateDir, id string) (*Instance, error) {
	path := recordPath(stateDir, id)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, exitcode.Usagef("ephemeral: record %s is a symlink", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return nil, fmt.Errorf("ephemeral: record %s: %w", path, err)
	} else if !fi.Mode().IsRegular() || fi.Size() > maxRecordSize {
		return nil, exitcode.Usagef("ephemeral: record %s is not a regular file of at most %d bytes", path, maxRecordSize)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("ephemeral: record %s: %w", path, err)
	}
	inst := &Instance{}
	if err := json.Unmarshal(data, inst); err != nil {
		return nil, exitcode.Usagef("ephemeral: record %s: %v", path, err)
	}
	if inst.ID != id {
		return nil, exitcode.Usagef("ephemeral: record %s names instance %q", path, inst.ID)
	}
	inst.stateDir = stateDir
	return inst, nil
}

// ids lists the recorded instance IDs.
func ids(stateDir string) ([]string, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ephemeral: state directory: %w", err)
	}
	var out []string
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && e.Type().IsRegular() && idPattern.MatchString(id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// staleCheckTimeout bounds asking an engine whether a recorded container still runs.
const staleCheckTimeout = 20 * time.Second

// StateOption configures PruneAndList and Load.
type StateOption func(*stateConfig) error

type stateConfig struct {
	environ []string
}

// WithEnviron sets the environment that finds the default state directory (XDG_STATE_HOME,
// HOME) and that the engine CLI asking about or removing a recorded container runs in (PATH,
// TMPDIR); default os.Environ(), nil is the empty environment.
func WithEnviron(env []string) StateOption {
	return func(c *stateConfig) error {
		c.environ = env
		if c.environ == nil {
			c.environ = []string{}
		}
		return nil
	}
}

// stateDirOf applies opts and resolves stateDir with the environment they give.
func stateDirOf(stateDir string, opts []StateOption) (string, *stateConfig, error) {
	c := &stateConfig{environ: os.Environ()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return "", nil, err
		}
	}
	dir, err := resolveStateDir(stateDir, environ.Getenv(c.environ))
	return dir, c, err
}

// PruneAndList returns the detached instances recorded in stateDir ("" = DefaultStateDir of
// the environment of WithEnviron), oldest first, after removing the records of servers that
// are gone (their postmaster or container no longer runs) together with whatever those
// servers left; a record whose engine cannot be asked is kept. A record that names a
// container or directory that is not the instance's is removed and nothing it names is
// touched: the returned error, a usage error wrapping ErrNotOurs, reports it next to the
// instances that are listed.
func PruneAndList(ctx context.Context, stateDir string, opts ...StateOption) ([]*Instance, error) {
	dir, cfg, err := stateDirOf(stateDir, opts)
	if err != nil {
		return nil, err
	}
	names, err := ids(dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, staleCheckTimeout)
	defer cancel()
	var out []*Instance
	var errs []error
	for _, id := range names {
		inst, err := readRecord(dir, id)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed meanwhile by a concurrent down
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		inst.environ = cfg.environ
		running, err := inst.running(ctx)
		if errors.Is(err, ErrNotOurs) {
			errs = append(errs, err, removeRecord(dir, id))
			continue
		}
		if err == nil && !running {
			// Remove what the dead server left (its directory, a stopped container).
			_ = inst.stop(ctx)
			continue
		}
		out = append(out, inst)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, errors.Join(errs...)
}

// running reports whether a recorded server still runs; an error wrapping ErrNotOurs means the
// record names something that is not the instance's, another error that it cannot tell.
func (inst *Instance) running(ctx context.Context) (bool, error) {
	switch inst.Provider {
	case Native:
		return nativeRunning(inst)
	case Container:
		return containerRunning(ctx, inst)
	}
	return false, fmt.Errorf("ephemeral: instance %s: unknown provider %q", inst.ID, inst.Provider)
}

// Load returns the instance recorded in stateDir ("" = DefaultStateDir of the environment of
// WithEnviron) under id, or under the only ID starting with id; Stop of it runs in that
// environment. An unknown or ambiguous id is a usage error wrapping ErrNotFound. It reads only
// the record: ctx is for the state directory's file system, which is local today.
func Load(ctx context.Context, stateDir, id string, opts ...StateOption) (*Instance, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, cfg, err := stateDirOf(stateDir, opts)
	if err != nil {
		return nil, err
	}
	if !idPattern.MatchString(id) {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("ephemeral: %q: %w (IDs are lowercase hex; see 'ps-env ephemeral list')", id, ErrNotFound))
	}
	names, err := ids(dir)
	if err != nil {
		return nil, err
	}
	var match []string
	for _, n := range names {
		if n == id {
			match = []string{n}
			break
		}
		if strings.HasPrefix(n, id) {
			match = append(match, n)
		}
	}
	switch len(match) {
	case 0:
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("ephemeral: %s: %w", id, ErrNotFound))
	case 1:
		inst, err := readRecord(dir, match[0])
		if errors.Is(err, fs.ErrNotExist) {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("ephemeral: %s: %w", id, ErrNotFound))
		}
		if err != nil {
			return nil, err
		}
		inst.environ = cfg.environ
		return inst, nil
	}
	return nil, exitcode.With(exitcode.Usage, fmt.Errorf("ephemeral: %s matches %d instances (%s): %w", id, len(match), strings.Join(match, ", "), ErrNotFound))
}
