package engine

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// A build's context is sent to both engines as a tar stream made here, rather than named as a
// directory: what the engine can see is then exactly what the stream holds. Given a directory,
// each engine decides for itself what to read (docker 20.10's classic builder only honours
// <context>/.dockerignore; podman's RUN --mount=type=bind exposes the whole directory whatever
// the ignore file says), so patterns that must always hold (BuildOptions.Exclude) could not be
// enforced.

// ignoreFiles are the context's own ignore files, in the order podman reads them; the first
// that exists is used.
var ignoreFiles = [...]string{".containerignore", ".dockerignore"}

// contextFilter decides which paths of a context are sent.
type contextFilter struct {
	all    *patternmatcher.PatternMatcher // the ignore file's patterns, then the excludes
	forced *patternmatcher.PatternMatcher // the excludes alone
	none   bool                           // no patterns at all
}

// newContextFilter reads dir's ignore file and adds exclude after its patterns, so that a "!"
// line of the file cannot bring back what exclude leaves out.
func newContextFilter(dir string, exclude []string) (*contextFilter, error) {
	for _, p := range exclude {
		if strings.HasPrefix(p, "!") {
			return nil, exitcode.Usagef("build context: exclude pattern %q cannot re-include", p)
		}
	}
	var patterns []string
	for _, name := range ignoreFiles {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f, err := safefile.Open(dir, p)
		if err != nil {
			return nil, err
		}
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("%s: %w", p, err))
		}
		break
	}
	all, err := patternmatcher.New(append(patterns, exclude...))
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("build context %s: ignore pattern: %w", dir, err))
	}
	forced, err := patternmatcher.New(exclude)
	if err != nil {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("build context %s: exclude pattern: %w", dir, err))
	}
	return &contextFilter{all: all, forced: forced, none: len(patterns)+len(exclude) == 0}, nil
}

// skip tells whether rel is left out and, for a directory, whether nothing below it can be sent.
func (c *contextFilter) skip(rel string, isDir bool) (skip, skipDir bool, err error) {
	if c.none {
		return false, false, nil
	}
	if forced, err := c.forced.MatchesOrParentMatches(rel); err != nil || forced {
		return forced, forced && isDir, err
	}
	ignored, err := c.all.MatchesOrParentMatches(rel)
	if err != nil || !ignored {
		return false, false, err
	}
	// A "!" line may bring back something below an ignored directory.
	return true, isDir && !c.all.Exclusions(), nil
}

// WalkContext calls fn, in lexical order, for every directory, regular file and symbolic link
// of the build context dir that a build with these exclude patterns sends: what dir's
// .containerignore (else .dockerignore) lets through, less what exclude matches; exclude
// patterns use the same syntax and always win over the file's "!" lines. rel is relative to dir
// with forward slashes, info is the entry's own (symbolic links are not followed). Other file
// types (FIFOs, sockets, devices) are never sent: a checkout cannot carry them, and reading
// one could block or never end.
func WalkContext(dir string, exclude []string, fn func(rel string, info fs.FileInfo) error) error {
	filter, err := newContextFilter(dir, exclude)
	if err != nil {
		return err
	}
	return walkContext(dir, filter, fn)
}

func walkContext(dir string, filter *contextFilter, fn func(rel string, info fs.FileInfo) error) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, skipDir, err := filter.skip(rel, d.IsDir())
		switch {
		case err != nil:
			return err
		case skipDir:
			return filepath.SkipDir
		case skip:
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if t := info.Mode().Type(); t != 0 && t != fs.ModeDir && t != fs.ModeSymlink {
			return nil
		}
		return fn(rel, info)
	})
}

// writeContext writes the build context dir to w as a tar stream: the entries WalkContext
// gives, plus, whatever the patterns say, the regular files always names (context-relative) —
// the Dockerfile and the ignore file, which both engines read from the context before they
// apply the ignore file to COPY.
func writeContext(w io.Writer, dir string, exclude []string, always []string) error {
	filter, err := newContextFilter(dir, exclude)
	if err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("build context: %w", err)
	}
	defer root.Close()
	tw := tar.NewWriter(w)
	err = walkContext(dir, filter, func(rel string, info fs.FileInfo) error {
		if slices.Contains(always, rel) {
			return nil
		}
		return writeEntry(tw, root, rel, info)
	})
	if err != nil {
		return fmt.Errorf("build context %s: %w", dir, err)
	}
	for _, rel := range always {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		data, err := safefile.ReadFile(dir, p)
		if err != nil {
			return err
		}
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: rel, Mode: int64(info.Mode().Perm()), Size: int64(len(data)),
			ModTime: info.ModTime().Truncate(time.Second), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// writeEntry adds one context entry, read through root so that nothing outside the context is
// ever opened, with the ownership docker's CLI gives context files (root).
func writeEntry(tw *tar.Writer, root *os.Root, rel string, info fs.FileInfo) error {
	var f *os.File
	link := ""
	switch info.Mode().Type() {
	case fs.ModeSymlink:
		var err error
		if link, err = root.Readlink(rel); err != nil {
			return err
		}
	case 0:
		var err error
		if f, err = root.Open(rel); err != nil {
			return err
		}
		defer f.Close()
		// The file that was opened is what is sent: it must still be a regular file.
		if info, err = f.Stat(); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: changed to %s while the context was sent", rel, info.Mode().Type())
		}
	}
	hdr, err := tar.FileInfoHeader(info, link)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	hdr.Name = rel
	if info.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
	hdr.Format = tar.FormatPAX
	hdr.ModTime = hdr.ModTime.Truncate(time.Second)
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if err := tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if f == nil {
		return nil
	}
	// Exactly the size in the header: a file that grows meanwhile is cut, one that shrinks fails.
	if _, err := io.CopyN(tw, f, hdr.Size); err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return nil
}
