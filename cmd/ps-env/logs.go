package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/lifecycle"
	"github.com/poststack/poststack/pkg/safefile"
)

func logsCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env logs", flag.ContinueOnError)
	var o engine.LogOptions
	fs.BoolVar(&o.Follow, "follow", false, "keep printing new output, picking up containers that start or restart")
	fs.IntVar(&o.Tail, "tail", 0, "only the last `N` lines of each container (0 = all)")
	fs.StringVar(&o.Since, "since", "", "only output since `D` ago (10m) or a time (2026-01-02T15:04:05Z)")
	return app.Examples(&ffcli.Command{
		Name: "logs", ShortUsage: "ps-env logs [ENV] [SERVICE] [--follow] [--tail N] [--since D]",
		ShortHelp: "the output of an environment's database, init and deployed containers",
		LongHelp: `logs prints the output of ENV's containers (the current environment by
default), each line prefixed by its container: the database ("postgres"),
the deployed containers, and init containers (kept under
logs/containers/init/ once they have run, since they are removed). SERVICE
picks one by service, container or unit name. Passwords are masked.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 2 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env logs --help')", args[2])
			}
			var name, service string
			if len(args) > 0 {
				name = args[0]
			}
			if len(args) > 1 {
				service = args[1]
			}
			env, err := resolveEnv(ctx, app, name)
			if err != nil {
				return err
			}
			return streamLogs(ctx, app, env, service, o)
		},
	}, "ps-env logs", "ps-env logs dev app --follow", "ps-env logs staging --tail 50")
}

// logSource is one container whose output logs prints.
type logSource struct {
	name, label string
	started     time.Time
	running     bool
}

func logSources(ctx context.Context, env *lifecycle.Environment, service string) ([]logSource, error) {
	var out []logSource
	match := func(names ...string) bool {
		if service == "" {
			return true
		}
		for _, n := range names {
			if n == service {
				return true
			}
		}
		return false
	}
	if !env.External() && env.Engine != nil && match("postgres", "database", "db", env.Postgres.Container) {
		c, err := env.Engine.InspectContainer(ctx, env.Postgres.Container)
		if err == nil && c.Labels["io.poststack.project"] == env.ProjectName() {
			out = append(out, logSource{name: c.Name, label: "postgres", started: c.StartedAt, running: c.Running})
		}
	}
	st, err := lifecycle.Status(ctx, env)
	if err != nil {
		return nil, err
	}
	for _, c := range st.Containers {
		if match(c.Service, c.Name, c.Unit) {
			label := c.Service
			if label == "" {
				label = c.Name
			}
			out = append(out, logSource{name: c.Name, label: label, started: c.Started, running: c.State == "running"})
		}
	}
	return out, nil
}

func streamLogs(ctx context.Context, app *cli.App, env *lifecycle.Environment, service string, o engine.LogOptions) error {
	w := &prefixWriter{out: app.Env.Stdout, mask: app.Secrets.Mask}
	if !o.Follow && env.LogDir != "" {
		if err := initLogs(env, service, o, w); err != nil {
			return err
		}
	}
	srcs, err := logSources(ctx, env, service)
	if err != nil {
		return err
	}
	if !o.Follow {
		if len(srcs) == 0 && service != "" && w.lines == 0 {
			return exitcode.Usagef("no container of %s/%s matches %q", env.ProjectName(), env.Name(), service)
		}
		for _, s := range srcs {
			lw := w.For(s.label)
			err := env.Engine.StreamLogs(ctx, s.name, o, lw)
			lw.Flush()
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Follow: one follower per container start; a container that restarts or appears later is
	// picked up by polling.
	var wg sync.WaitGroup
	defer wg.Wait()
	seen := map[string]time.Time{}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		for _, s := range srcs {
			if !s.running || seen[s.name].Equal(s.started) && !seen[s.name].IsZero() {
				continue
			}
			so := o
			if _, again := seen[s.name]; again {
				so.Tail, so.Since = 0, s.started.Format(time.RFC3339Nano)
			}
			seen[s.name] = s.started
			wg.Add(1)
			go func(s logSource, so engine.LogOptions) {
				defer wg.Done()
				lw := w.For(s.label)
				_ = env.Engine.StreamLogs(ctx, s.name, so, lw)
				lw.Flush()
			}(s, so)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if srcs, err = logSources(ctx, env, service); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// initLogs prints the kept logs of the environment's init containers.
func initLogs(env *lifecycle.Environment, service string, o engine.LogOptions, w *prefixWriter) error {
	dir := lifecycle.InitLogDir(env.LogDir)
	prefix := env.ProjectName() + "-" + env.Name() + "-"
	matches, _ := filepath.Glob(filepath.Join(dir, prefix+"*.log"))
	sort.Strings(matches)
	for _, m := range matches {
		name := strings.TrimSuffix(filepath.Base(m), ".log")
		if service != "" && !initMatches(strings.TrimPrefix(name, prefix), name, service) {
			continue
		}
		b, err := safefile.ReadFile(env.Dir, m)
		if err != nil {
			continue // not ours to read (a link planted in logs/): skip it
		}
		text := string(b)
		if o.Tail > 0 {
			lines := strings.SplitAfter(text, "\n")
			if len(lines) > o.Tail+1 {
				text = strings.Join(lines[len(lines)-o.Tail-1:], "")
			}
		}
		lw := w.For(name + " (init)")
		io.WriteString(lw, text)
		lw.Flush()
	}
	return nil
}

// initMatches reports whether the init container name (rest without <project>-<env>-) is the
// one service names: the whole name, or its pod's or container's part (seed of
// <project>-<env>-seed-seed, of <project>-<env>-seed-1). A substring is not enough: every name
// holds the project's, and `logs app` of project myapp would print every init log.
func initMatches(rest, name, service string) bool {
	return service == name || service == rest || strings.HasPrefix(rest, service+"-") || strings.HasSuffix(rest, "-"+service)
}

// prefixWriter writes whole lines, each prefixed by its source and masked; sources may write
// at the same time.
type prefixWriter struct {
	mu    sync.Mutex
	out   io.Writer
	mask  func(string) string
	lines int
}

// For returns the writer of one source; Flush it when the source ends.
func (p *prefixWriter) For(label string) *lineWriter { return &lineWriter{p: p, label: label} }

type lineWriter struct {
	p       *prefixWriter
	label   string
	partial []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		l.emit(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
}

// Flush writes a last line without its newline.
func (l *lineWriter) Flush() {
	if len(l.partial) > 0 {
		l.emit(string(l.partial))
		l.partial = nil
	}
}

func (l *lineWriter) emit(line string) {
	l.p.mu.Lock()
	defer l.p.mu.Unlock()
	fmt.Fprintf(l.p.out, "%s | %s\n", l.label, l.p.mask(line))
	l.p.lines++
}
