package pgnative

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// cacheFormat changes whenever what a cache entry holds changes, so old entries are ignored.
const cacheFormat = "pgnative-cache-v1"

// cacheKey names the entry for one server build and one set of initdb arguments. The build is
// identified by the binary's path, size and modification time rather than by `postgres
// --version`, which costs about 30 ms, a tenth of the warm-start budget; a package upgrade
// replaces the binary and so changes the key.
func cacheKey(b binaries, initdbArgs []string) (string, error) {
	fi, err := os.Stat(b.postgres)
	if err != nil {
		return "", fmt.Errorf("pgnative: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%d\x00%s", cacheFormat, b.postgres, fi.Size(), fi.ModTime().UnixNano(),
		strings.Join(initdbArgs, "\x00"))
	return "pg-" + hex.EncodeToString(h.Sum(nil))[:24], nil
}

// cacheEntry is an initialised data directory plus the server version that made it.
type cacheEntry struct {
	dir string // <cache>/<key>; holds data/ and version
}

func (e cacheEntry) dataDir() string     { return filepath.Join(e.dir, "data") }
func (e cacheEntry) versionFile() string { return filepath.Join(e.dir, "version") }

// lookup returns the entry's version when the entry is complete. Entries appear by rename, so
// an entry that exists is whole.
func (e cacheEntry) lookup() (version string, ok bool) {
	v, err := os.ReadFile(e.versionFile())
	if err != nil {
		return "", false
	}
	if _, err := os.Stat(filepath.Join(e.dataDir(), "PG_VERSION")); err != nil {
		return "", false
	}
	return strings.TrimSpace(string(v)), true
}

// store copies a freshly initialised data directory into the cache. Several processes may miss
// the cache at once: each builds in its own staging directory and renames it into place; the
// first rename wins and the others discard their copy.
func (e cacheEntry) store(dataDir, version string) error {
	root := filepath.Dir(e.dir)
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("pgnative: cache: %w", err)
	}
	removeStaleStaging(root)
	staging, err := os.MkdirTemp(root, stagingPrefix)
	if err != nil {
		return fmt.Errorf("pgnative: cache: %w", err)
	}
	defer os.RemoveAll(staging)
	if err := copyTree(dataDir, filepath.Join(staging, "data"), identity{}); err != nil {
		return fmt.Errorf("pgnative: cache: %w", err)
	}
	if err := os.WriteFile(filepath.Join(staging, "version"), []byte(version+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgnative: cache: %w", err)
	}
	if err := os.Rename(staging, e.dir); err != nil {
		if _, ok := e.lookup(); ok {
			return nil // another process stored the same entry first
		}
		return fmt.Errorf("pgnative: cache: %w", err)
	}
	return nil
}

const stagingPrefix = ".staging-"

// removeStaleStaging deletes staging directories left by processes that died while storing;
// an hour is far longer than any store takes.
func removeStaleStaging(root string) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
			_ = os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}

// copyWorkers overlaps the per-file open/create/chown system calls of a ~1000-file data
// directory; the bytes themselves move in the kernel (copy_file_range).
const copyWorkers = 4

// copyTree copies the regular files, directories and symlinks under src to dst, which must not
// exist, keeping permission bits and handing everything to id.
func copyTree(src, dst string, id identity) error {
	type job struct{ from, to string }
	jobs := make(chan job)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		errs    []error
		failed  = make(chan struct{})
		failOne sync.Once
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		failOne.Do(func() { close(failed) })
	}
	for range copyWorkers {
		wg.Go(func() {
			for j := range jobs {
				if err := copyFile(j.from, j.to, id); err != nil {
					fail(err)
				}
			}
		})
	}
	walkErr := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		select {
		case <-failed:
			return fs.SkipAll
		default:
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			info, err := d.Info()
			if err != nil {
				return err
			}
			// Mkdir's mode is filtered by the umask; Chmod restores the exact bits postgres checks.
			if err := os.Mkdir(to, info.Mode().Perm()); err != nil {
				return err
			}
			if err := os.Chmod(to, info.Mode().Perm()); err != nil {
				return err
			}
			return id.chown(to)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(target, to); err != nil {
				return err
			}
			return id.chown(to)
		case d.Type().IsRegular():
			jobs <- job{path, to}
			return nil
		default:
			return fmt.Errorf("%s: unexpected file type %s", path, d.Type())
		}
	})
	close(jobs)
	wg.Wait()
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	return errors.Join(errs...)
}

func copyFile(from, to string, id identity) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	// CopyN with the exact size lets copy_file_range finish in one call instead of probing for
	// the end with a second one; most files of a fresh data directory are a page or two.
	if size := info.Size(); size > 0 {
		if _, err := io.CopyN(out, in, size); err != nil {
			return fmt.Errorf("copy %s: %w", from, err)
		}
	}
	if id.cred != nil {
		if err := out.Chown(id.uid, id.gid); err != nil {
			return err
		}
	}
	return nil
}
