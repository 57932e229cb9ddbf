// Package gittree reads one directory of a git commit — not of the work tree — as an
// in-memory fs.FS, so that a review can compare what a branch adds with what its base held.
//
// It runs the git command-line tool with plumbing commands only (rev-parse, ls-tree,
// cat-file), which run no hooks and read neither the index nor the work tree: a hostile
// repository's files cannot run code through it, and a symbolic link stored in the tree is
// handed on as a link (which pkg/migrate refuses), never followed.
package gittree

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing/fstest"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// DefaultMaxSize bounds one file read from the tree, like pkg/safefile's limit for the work tree.
const DefaultMaxSize int64 = 16 << 20

// Tree is a directory of a commit.
type Tree struct {
	// Commit is the full object name the revision resolved to.
	Commit string
	// Dir is the directory inside the repository, slash-separated ("migrations").
	Dir string
	// FS holds Dir's files (and subdirectories) under the name Dir, as in the repository:
	// fs.ReadDir(t.FS, t.Dir) lists them. A symbolic link is an entry of type fs.ModeSymlink.
	FS fs.FS
	// Exists is false when the commit has no such directory: FS is then empty.
	Exists bool
}

// Options configure Read.
type Options struct {
	// Git is the git program; "" = "git" from PATH.
	Git string
	// Env is the environment git runs with; nil = the process's.
	Env []string
	// MaxSize bounds a file; 0 = DefaultMaxSize.
	MaxSize int64
}

// Error is a revision or directory that cannot be read; it is bad input (exit 2).
type Error struct {
	Rev, Dir string
	Reason   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("git %s:%s: %s", e.Rev, e.Dir, e.Reason)
}

// ExitCode is 2: bad usage or input, nothing was changed.
func (e *Error) ExitCode() int { return exitcode.Usage }

// Read returns the directory dir (a path on disk inside the repository's work tree, or
// relative to repo) as it is in the commit rev names. A revision that git cannot resolve —
// for example a base branch that a shallow clone did not fetch — is an *Error saying so.
func Read(ctx context.Context, repo, rev, dir string, o Options) (*Tree, error) {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return nil, &Error{Rev: rev, Dir: dir, Reason: "not a revision (it must name a branch, tag or commit and not start with -)"}
	}
	g := runner{git: o.Git, env: o.Env, repo: repo}
	if g.git == "" {
		g.git = "git"
	}
	limit := o.MaxSize
	if limit <= 0 {
		limit = DefaultMaxSize
	}
	top, err := g.output(ctx, nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, &Error{Rev: rev, Dir: dir, Reason: "not in a git repository: " + err.Error()}
	}
	rel, err := relative(strings.TrimSpace(string(top)), repo, dir)
	if err != nil {
		return nil, &Error{Rev: rev, Dir: dir, Reason: err.Error()}
	}
	commit, err := g.output(ctx, nil, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if err != nil {
		return nil, &Error{Rev: rev, Dir: rel, Reason: "no such commit in this repository (a shallow clone may lack it: fetch it, e.g. actions/checkout with fetch-depth: 0)"}
	}
	t := &Tree{Commit: strings.TrimSpace(string(commit)), Dir: rel}
	mfs := fstest.MapFS{}
	t.FS = mfs
	listing, err := g.output(ctx, nil, "ls-tree", "-r", "-t", "-z", "-l", "--full-tree", t.Commit, "--", rel+"/")
	if err != nil {
		return nil, &Error{Rev: rev, Dir: rel, Reason: err.Error()}
	}
	type blob struct {
		name string
		oid  string
		mode fs.FileMode
	}
	var blobs []blob
	for _, rec := range bytes.Split(listing, []byte{0}) {
		if len(rec) == 0 {
			continue
		}
		meta, name, ok := strings.Cut(string(rec), "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 4 {
			return nil, &Error{Rev: rev, Dir: rel, Reason: fmt.Sprintf("unexpected ls-tree line %q", rec)}
		}
		t.Exists = true
		mode, kind, oid, size := f[0], f[1], f[2], f[3]
		switch {
		case kind == "tree":
			mfs[name] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
		case kind == "commit": // a submodule: no files of ours
		case mode == "120000":
			blobs = append(blobs, blob{name, oid, fs.ModeSymlink | 0o777})
		default:
			n, err := strconv.ParseInt(size, 10, 64)
			if err != nil {
				return nil, &Error{Rev: rev, Dir: rel, Reason: fmt.Sprintf("unexpected size in ls-tree line %q", rec)}
			}
			if n > limit {
				return nil, &Error{Rev: rev, Dir: rel, Reason: fmt.Sprintf("%s is %d bytes, over the limit of %d", name, n, limit)}
			}
			perm := fs.FileMode(0o644)
			if mode == "100755" {
				perm = 0o755
			}
			blobs = append(blobs, blob{name, oid, perm})
		}
	}
	if !t.Exists {
		return t, nil
	}
	var in bytes.Buffer
	for _, b := range blobs {
		in.WriteString(b.oid + "\n")
	}
	out, err := g.output(ctx, &in, "cat-file", "--batch")
	if err != nil {
		return nil, &Error{Rev: rev, Dir: rel, Reason: err.Error()}
	}
	r := bufio.NewReader(bytes.NewReader(out))
	for _, b := range blobs {
		data, err := readBatch(r, b.oid)
		if err != nil {
			return nil, &Error{Rev: rev, Dir: rel, Reason: fmt.Sprintf("read %s: %v", b.name, err)}
		}
		mfs[b.name] = &fstest.MapFile{Data: data, Mode: b.mode, ModTime: time.Time{}}
	}
	if rel != "." {
		mfs[rel] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	}
	return t, nil
}

// readBatch reads one "<oid> blob <size>\n<data>\n" record of git cat-file --batch.
func readBatch(r *bufio.Reader, oid string) ([]byte, error) {
	header, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(header)
	if len(f) != 3 || f[0] != oid || f[1] != "blob" {
		return nil, fmt.Errorf("unexpected cat-file header %q", strings.TrimSpace(header))
	}
	n, err := strconv.ParseInt(f[2], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("unexpected cat-file header %q", strings.TrimSpace(header))
	}
	data := make([]byte, n+1)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return data[:n], nil
}

// relative turns dir (absolute, or relative to repo) into a slash path relative to the
// repository's top level, refusing one outside it.
func relative(top, repo, dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repo, dir)
	}
	// The top level git reports has its symbolic links resolved; so must dir.
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	} else if p, perr := filepath.EvalSymlinks(filepath.Dir(dir)); perr == nil {
		dir = filepath.Join(p, filepath.Base(dir))
	}
	if t, err := filepath.EvalSymlinks(top); err == nil {
		top = t
	}
	rel, err := filepath.Rel(top, dir)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is outside the repository %s", dir, top)
	}
	return path.Clean(filepath.ToSlash(rel)), nil
}

type runner struct {
	git  string
	env  []string
	repo string
}

// output runs git in the repository and returns its standard output; the error carries git's
// last line of standard error.
func (g runner) output(ctx context.Context, stdin io.Reader, args ...string) ([]byte, error) {
	// Plumbing only, and nothing that a repository's configuration could turn into a program
	// run: no pager, no prompts, no optional locks.
	full := append([]string{"-C", g.repo, "--no-pager", "-c", "core.fsmonitor=false"}, args...)
	cmd := exec.CommandContext(ctx, g.git, full...)
	if g.env != nil {
		cmd.Env = g.env
	}
	cmd.Env = append(cmd.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0")
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg := strings.TrimSpace(stderr.String())
			if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
				msg = msg[i+1:]
			}
			if msg == "" {
				msg = ee.String()
			}
			return nil, errors.New(msg)
		}
		return nil, err
	}
	return out, nil
}
