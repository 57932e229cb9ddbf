package scaffold

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// check refuses, before anything is written, what write would refuse half-way: a path that
// leads out of root, a parent that is not a directory, a target that is not a regular file,
// an ignore file that cannot be read, and an existing project file without force.
func check(root string, plan []planned, force bool) error {
	for _, p := range plan {
		abs := filepath.Join(root, filepath.FromSlash(p.path))
		if err := checkDirs(root, p.path); err != nil {
			return err
		}
		st, err := os.Lstat(abs)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return exitcode.With(exitcode.Usage, named(p.path, err))
		}
		switch {
		case p.ignore != nil:
			if _, err := safefile.ReadFile(root, abs); err != nil {
				return named(p.path, err)
			}
		case !st.Mode().IsRegular() && st.Mode()&fs.ModeSymlink == 0:
			return named(p.path, safefile.CheckMode(abs, st.Mode()))
		case p.path == config.FileName && !force:
			return exitcode.Usagef("%s exists: ps-env init --force replaces it (keeping the old one as %s.bak)", p.path, p.path)
		case force:
			if _, err := safefile.Inside(root, abs); err != nil {
				return named(p.path, err)
			}
			if _, err := safefile.ReadFile(root, abs); err != nil {
				return named(p.path, err)
			}
			if st, err := os.Lstat(abs + ".bak"); err == nil && st.IsDir() {
				return exitcode.Usagef("%s.bak is a directory: the old %s cannot be kept there", p.path, p.path)
			}
		}
	}
	return nil
}

// checkDirs refuses a rel whose existing parents are not directories or, links resolved,
// lead out of root: what must not be written through.
func checkDirs(root, rel string) error {
	parent := filepath.Dir(filepath.Join(root, filepath.FromSlash(rel)))
	if !safefile.Contains(root, parent) {
		return exitcode.Usagef("%s: its directory leads outside the project directory %s (a symbolic link on the way?); nothing was written", rel, root)
	}
	dir := root
	for _, part := range strings.Split(path.Dir(rel), "/") {
		if part == "." {
			break
		}
		dir = filepath.Join(dir, part)
		st, err := os.Stat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // the rest is created
		}
		if err != nil {
			return exitcode.With(exitcode.Usage, named(relTo(root, dir), err))
		}
		if !st.IsDir() {
			return exitcode.Usagef("%s: exists and is not a directory; nothing was written", relTo(root, dir))
		}
	}
	return nil
}

// write creates, keeps or replaces one planned file.
func write(root string, p planned, force bool) (File, error) {
	if err := checkDirs(root, p.path); err != nil {
		return File{}, err
	}
	abs := filepath.Join(root, filepath.FromSlash(p.path))
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return File{}, err
	}
	// Created now, the directories must still be where they were checked to be.
	if err := checkDirs(root, p.path); err != nil {
		return File{}, err
	}
	if p.ignore != nil {
		return ensureLines(root, p)
	}
	f := File{Path: p.path, Status: Created}
	_, err := os.Lstat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return File{}, named(p.path, err)
	case !force:
		f.Status = Kept
		return f, nil
	default:
		old, err := safefile.ReadFile(root, abs)
		if err != nil {
			return File{}, named(p.path, err)
		}
		if bytes.Equal(old, p.data) {
			f.Status = Kept
			return f, nil
		}
		if err := backup(abs, old); err != nil {
			return File{}, err
		}
		f.Status, f.Backup = Replaced, p.path+".bak"
	}
	// A symbolic link at abs (inside root: checked) is replaced, not written through.
	err = atomicfile.Write(abs, atomicfile.Public, func(w *os.File) error {
		if p.exec {
			st, err := w.Stat()
			if err != nil {
				return err
			}
			// Executable for whoever may read it, as the umask allowed.
			if err := w.Chmod(st.Mode().Perm() | (st.Mode().Perm()&0o444)>>2); err != nil {
				return err
			}
		}
		_, err := w.Write(p.data)
		return err
	})
	return f, err
}

// backup keeps the file at abs as abs.bak: a second name for the same file when the file
// system allows (nothing is read or followed, the mode is kept), else a private copy of old.
func backup(abs string, old []byte) error {
	bak := abs + ".bak"
	if err := os.Remove(bak); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Link(abs, bak); err == nil {
		return nil
	}
	return atomicfile.Write(bak, atomicfile.Private, func(f *os.File) error {
		_, err := f.Write(old)
		return err
	})
}

// ensureLines appends to an ignore file the entries it lacks, creating it when missing; an
// existing one is written where it really is (a link inside the project stays a link) with its
// mode.
func ensureLines(root string, p planned) (File, error) {
	abs := filepath.Join(root, filepath.FromSlash(p.path))
	f := File{Path: p.path}
	var old []byte
	target, perm := abs, fs.FileMode(0)
	if _, err := os.Lstat(abs); err == nil {
		if old, err = safefile.ReadFile(root, abs); err != nil {
			return File{}, named(p.path, err)
		}
		if target, err = safefile.Inside(root, abs); err != nil {
			return File{}, named(p.path, err)
		}
		st, err := os.Stat(target)
		if err != nil {
			return File{}, err
		}
		perm = st.Mode().Perm()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return File{}, named(p.path, err)
	}
	for _, e := range p.ignore {
		if !hasEntry(old, e) {
			f.Added = append(f.Added, e)
		}
	}
	switch {
	case len(f.Added) == 0:
		f.Status = Unchanged
		return f, nil
	case old == nil:
		f.Status = Created
	default:
		f.Status = Updated
	}
	var b bytes.Buffer
	b.Write(old)
	if len(old) > 0 && !bytes.HasSuffix(old, []byte("\n")) {
		b.WriteByte('\n')
	}
	b.WriteString("# poststack: local state (generated secrets) and logs\n")
	for _, e := range f.Added {
		b.WriteString(e + "\n")
	}
	err := atomicfile.Write(target, atomicfile.Public, func(w *os.File) error {
		if perm != 0 {
			if err := w.Chmod(perm); err != nil {
				return err
			}
		}
		_, err := w.Write(b.Bytes())
		return err
	})
	return f, err
}

// hasEntry reports whether an ignore file holds entry ("dir/") in one of the forms that
// ignore the same directory: dir, dir/, /dir, /dir/.
func hasEntry(data []byte, entry string) bool {
	want := strings.Trim(entry, "/")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.Trim(strings.TrimSpace(line), "/") == want {
			return true
		}
	}
	return false
}

// named makes a *safefile.Error name rel, the file as the user knows it; other errors get
// rel in front.
func named(rel string, err error) error {
	var se *safefile.Error
	if errors.As(err, &se) {
		return &safefile.Error{Path: rel, Reason: se.Reason, Err: se.Err}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: rel, Err: pe.Err}
	}
	return err
}

func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}
