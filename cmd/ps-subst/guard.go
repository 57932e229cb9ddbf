package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/render"
	"github.com/poststack/poststack/pkg/subst"
	"github.com/poststack/poststack/pkg/variables"
)

// lookup is vars.Lookup that registers each secret it hands out with the
// run's Masker before any message can carry it: a ${NAME:?msg} message is
// substituted too. With --env the project's secrets are registered already;
// without it this covers the process environment, --env-file and --set
// (DB_PASSWORD, API_TOKEN, a URL with a password) without announcing every
// secret-looking variable of the process to GitHub Actions.
// Each secret is registered once: a template may reference it on every
// line, and registering rebuilds the Masker.
func (s *settings) lookup(app *cli.App, vars *variables.Set) subst.Lookup {
	registered := map[string]bool{}
	return func(name string) (string, bool) {
		v, ok := vars.Var(name)
		if ok && v.Secret && !registered[name] {
			registered[name] = true
			app.AddSecret(v.Value)
		}
		return v.Value, ok
	}
}

// mask hides the run's secrets in text for people (problems, reports),
// unless --show-secrets. The rendered output itself is never masked.
func (s *settings) mask(app *cli.App, text string) string {
	if s.showSecrets {
		return text
	}
	return app.Secrets.Mask(text)
}

// readChunk bounds each read from standard input, so that the buffer a
// pending read owns stays small.
const readChunk = 64 << 10

// interruptible makes in give up as soon as ctx is done: on SIGINT a read
// blocked on a pipe or terminal returns at once, the rendering ends with the
// error, and what it started (an -o temporary file, a spool) is removed
// before the exit 130. Only an input that can block (blocks) is read in a
// goroutine: a read of a regular file returns soon anyway, and a goroutine
// per read costs a sixth of a render.
func interruptible(ctx context.Context, in render.Input, blocks bool) render.Input {
	open := in.Open
	in.Open = func() (io.ReadCloser, error) {
		r, err := open()
		if err != nil {
			return nil, err
		}
		if !blocks {
			return cancellableReader{ctx, r}, nil
		}
		return &interruptibleReader{ctx: ctx, r: r, res: make(chan readResult, 1)}, nil
	}
	return in
}

// isRegular reports whether r is a regular file, whose reads never block.
func isRegular(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// cancellableReader stops reading once ctx is done.
type cancellableReader struct {
	ctx context.Context
	io.ReadCloser
}

func (r cancellableReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.ReadCloser.Read(p)
}

type readResult struct {
	n   int
	err error
}

// interruptibleReader reads in a goroutine of its own, into a buffer of its
// own, so that Read can return when ctx is done while the read it started
// stays blocked; it is then never used again, and the process exits.
type interruptibleReader struct {
	ctx     context.Context
	r       io.ReadCloser
	buf     []byte
	res     chan readResult
	pending bool
}

func (r *interruptibleReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	if !r.pending {
		if len(p) > readChunk {
			p = p[:readChunk]
		}
		if len(r.buf) < len(p) {
			r.buf = make([]byte, readChunk)
		}
		buf := r.buf[:len(p)]
		r.pending = true
		go func() {
			n, err := r.r.Read(buf)
			r.res <- readResult{n, err}
		}()
	}
	select {
	case res := <-r.res:
		r.pending = false
		return copy(p, r.buf[:res.n]), res.err
	case <-r.ctx.Done():
		return 0, r.ctx.Err()
	}
}

// Close closes the underlying reader unless a read is still under way in
// it (after an interrupt): the process is about to exit then.
func (r *interruptibleReader) Close() error {
	if r.pending {
		return nil
	}
	return r.r.Close()
}

// interruptibleWriter stops writing the output once ctx is done.
type interruptibleWriter struct {
	ctx context.Context
	w   io.Writer
}

func (w interruptibleWriter) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

// warnYAMLInjection warns, once per occurrence, when a text-mode render of a
// .yml or .yaml file inserts a value that can add keys or end a scalar
// there: a newline, ": " or " #". It names the place and the variable,
// never the value, which may be secret; the exit code stays 0.
func (s *settings) warnYAMLInjection(app *cli.App) func(name, value string, pos subst.Position) {
	return func(name, value string, pos subst.Position) {
		if !isYAMLName(pos.File) || !strings.ContainsAny(value, "\n\r") && !strings.Contains(value, ": ") && !strings.Contains(value, " #") {
			return
		}
		msg := fmt.Sprintf("the value of %s holds a newline, \": \" or \" #\" and can change the structure of this YAML file in text mode; render it with --yaml", name)
		fmt.Fprintf(app.Env.Stderr, "%s: warning: %s\n", s.mask(app, pos.String()), msg)
		app.Actions.Warning(msg, pos.File, pos.Line, pos.Col)
	}
}

// anyYAMLName reports whether an input is named as a YAML file.
func anyYAMLName(inputs []render.Input) bool {
	for _, in := range inputs {
		if isYAMLName(in.Name) {
			return true
		}
	}
	return false
}

func isYAMLName(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return ext == ".yml" || ext == ".yaml"
}
