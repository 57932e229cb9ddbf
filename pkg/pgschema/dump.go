package pgschema

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/environ"
)

// pgDumpGlob is where Debian and Ubuntu install each PostgreSQL major version's client tools.
const pgDumpGlob = "/usr/lib/postgresql/*/bin/pg_dump"

// DumpOption configures DumpSchema and Backup.
type DumpOption func(*dumpConfig) error

type dumpConfig struct {
	environ []string
}

// WithEnviron sets the environment pg_dump runs in and whose PATH finds it (default
// os.Environ()); nil is the empty environment. PGPASSWORD in it is replaced by the URL's
// password when the URL has one.
func WithEnviron(env []string) DumpOption {
	return func(c *dumpConfig) error {
		c.environ = slices.Clone(env)
		if c.environ == nil {
			c.environ = []string{}
		}
		return nil
	}
}

func newDumpConfig(opts []DumpOption) (*dumpConfig, error) {
	c := &dumpConfig{environ: os.Environ()}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// tool is a pg_dump binary and its major version.
type tool struct {
	path  string
	major int
}

// DumpSchema writes a deterministic `pg_dump --schema-only --no-owner --no-privileges` of the
// database at dbURL to w. Lines that differ between runs or pg_dump versions are removed: the
// "-- Dumped from database version" and "-- Dumped by pg_dump version" comments, the
// "\restrict KEY" / "\unrestrict KEY" lines (random keys, pg_dump 13.22/14.19/15.14/16.10/17.6
// and later) and "SET transaction_timeout = 0;" (pg_dump 17 and later). Nothing is written
// unless pg_dump succeeds. The password travels in PGPASSWORD, never on the command line.
func DumpSchema(ctx context.Context, dbURL string, w io.Writer, opts ...DumpOption) error {
	cfg, err := newDumpConfig(opts)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := pgDump(ctx, cfg, dbURL, &out, "--schema-only", "--no-owner", "--no-privileges"); err != nil {
		return fmt.Errorf("dump schema: %w", err)
	}
	if _, err := w.Write(filterDump(out.Bytes())); err != nil {
		return fmt.Errorf("dump schema: write: %w", err)
	}
	return nil
}

// Backup writes `pg_dump --format=custom` of the whole database at dbURL to path, atomically:
// pg_dump writes a temporary file in path's directory that is renamed over path only when the
// dump is complete, so a failed or interrupted backup never leaves a truncated file behind. The
// file is private (0600): it holds the data. Restore it with
// `pg_restore --dbname=URL --no-owner path` into an empty database.
func Backup(ctx context.Context, dbURL string, path string, opts ...DumpOption) error {
	cfg, err := newDumpConfig(opts)
	if err != nil {
		return err
	}
	err = atomicfile.Write(path, atomicfile.Private, func(f *os.File) error {
		return pgDump(ctx, cfg, dbURL, io.Discard, "--format=custom", "--file="+f.Name())
	})
	if err != nil {
		return fmt.Errorf("backup to %s: %w", path, err)
	}
	return nil
}

// pgDump runs a pg_dump that can dump the server at dbURL with extra args, stdout to out.
func pgDump(ctx context.Context, cfg *dumpConfig, dbURL string, out io.Writer, args ...string) error {
	connStr, password, err := splitPassword(dbURL)
	if err != nil {
		return err
	}
	server, err := serverMajor(ctx, dbURL)
	if err != nil {
		return err
	}
	dump, err := findPgDump(ctx, server, environ.Getenv(cfg.environ)("PATH"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, dump.path, append(args, "--dbname="+connStr)...)
	cmd.Env = slices.Clone(cfg.environ)
	if password != "" {
		cmd.Env = slices.DeleteFunc(cmd.Env, func(kv string) bool { return strings.HasPrefix(kv, "PGPASSWORD=") })
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%s: %w", dump.path, ctxErr)
		}
		return fmt.Errorf("%s: %w: %s", dump.path, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// serverMajor connects once to learn the server's major version, which decides which pg_dump
// can dump it; it also turns a bad URL or a down server into a clear error before pg_dump runs.
func serverMajor(ctx context.Context, dbURL string) (int, error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	v := conn.PgConn().ParameterStatus("server_version")
	major, err := leadingInt(v)
	if err != nil {
		return 0, fmt.Errorf("server version %q: %w", v, err)
	}
	return major, nil
}

func leadingInt(s string) (int, error) {
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	return strconv.Atoi(s[:end])
}

var pgDumpVersion = regexp.MustCompile(`\(PostgreSQL\) (\d+)`)

// findPgDump looks at the pg_dump on the search path and every one under /usr/lib/postgresql and picks one
// whose major version is at least the server's (an older pg_dump refuses newer servers).
func findPgDump(ctx context.Context, server int, searchPath string) (tool, error) {
	var paths []string
	if p, err := environ.LookPath("pg_dump", searchPath); err == nil {
		paths = append(paths, p)
	}
	matches, _ := filepath.Glob(pgDumpGlob) // the pattern is constant and valid
	paths = append(paths, matches...)
	var tools []tool
	var problems []string
	for _, p := range paths {
		out, err := exec.CommandContext(ctx, p, "--version").Output()
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s --version: %v", p, err))
			continue
		}
		m := pgDumpVersion.FindSubmatch(out)
		if m == nil {
			problems = append(problems, fmt.Sprintf("%s --version: unrecognised %q", p, strings.TrimSpace(string(out))))
			continue
		}
		major, _ := strconv.Atoi(string(m[1])) // digits by the regexp
		tools = append(tools, tool{path: p, major: major})
	}
	t, err := choosePgDump(server, tools)
	if err != nil && len(problems) > 0 {
		err = fmt.Errorf("%w (%s)", err, strings.Join(problems, "; "))
	}
	return t, err
}

// errNoPgDump is returned when no usable pg_dump exists.
var errNoPgDump = errors.New("no usable pg_dump")

// choosePgDump prefers the first candidate (PATH) when it is new enough, else the newest one;
// candidates older than the server are refused.
func choosePgDump(server int, tools []tool) (tool, error) {
	if len(tools) == 0 {
		return tool{}, fmt.Errorf("%w: pg_dump is neither on PATH nor under %s; install the PostgreSQL %d client (e.g. postgresql-client-%d)",
			errNoPgDump, filepath.Dir(filepath.Dir(filepath.Dir(pgDumpGlob))), server, server)
	}
	if tools[0].major >= server {
		return tools[0], nil
	}
	best := slices.MaxFunc(tools, func(a, b tool) int { return cmp.Compare(a.major, b.major) })
	if best.major >= server {
		return best, nil
	}
	var found []string
	for _, t := range tools {
		found = append(found, fmt.Sprintf("%s (%d)", t.path, t.major))
	}
	return tool{}, fmt.Errorf("%w: the server runs PostgreSQL %d but the newest pg_dump is %d (found %s); install postgresql-client-%d",
		errNoPgDump, server, best.major, strings.Join(found, ", "), server)
}

// splitPassword takes the password out of a connection URL or keyword/value string, so that it
// can be passed in PGPASSWORD instead of on a command line other users can read.
func splitPassword(dbURL string) (connStr, password string, err error) {
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		u, err := url.Parse(dbURL)
		if err != nil {
			return "", "", fmt.Errorf("parse database URL: %w", redactErr(err))
		}
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				password = p
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if q.Has("password") {
			password = q.Get("password")
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), password, nil
	}
	pairs, err := parseKeywordValue(dbURL)
	if err != nil {
		return "", "", err
	}
	var parts []string
	for _, kv := range pairs {
		if kv[0] == "password" {
			password = kv[1]
			continue
		}
		parts = append(parts, kv[0]+"="+quoteValue(kv[1]))
	}
	return strings.Join(parts, " "), password, nil
}

// redactErr drops the URL from a url.Error, which would print the password.
func redactErr(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseKeywordValue parses libpq's "key=value key='quoted \' value'" form.
func parseKeywordValue(s string) ([][2]string, error) {
	var out [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return out, nil
		}
		start := i
		for i < len(s) && s[i] != '=' && s[i] != ' ' && s[i] != '\t' {
			i++
		}
		key := s[start:i]
		skipSpace()
		if i >= len(s) || s[i] != '=' || key == "" {
			return nil, fmt.Errorf("parse connection string: expected key=value near %q", key)
		}
		i++
		skipSpace()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			closed := false
			for i < len(s) {
				c := s[i]
				if c == '\\' && i+1 < len(s) {
					val.WriteByte(s[i+1])
					i += 2
					continue
				}
				i++
				if c == '\'' {
					closed = true
					break
				}
				val.WriteByte(c)
			}
			if !closed {
				return nil, fmt.Errorf("parse connection string: unterminated quoted value of %s", key)
			}
		} else {
			for i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
				i++
			}
		}
		out = append(out, [2]string{key, val.String()})
	}
}

func quoteValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// filterDump removes the lines of a plain-format dump that change between runs or versions.
func filterDump(b []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(b))
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		text := strings.TrimRight(string(line), "\r\n")
		switch {
		case strings.HasPrefix(text, "-- Dumped from database version"),
			strings.HasPrefix(text, "-- Dumped by pg_dump version"),
			text == `\restrict` || strings.HasPrefix(text, `\restrict `),
			text == `\unrestrict` || strings.HasPrefix(text, `\unrestrict `),
			text == "SET transaction_timeout = 0;":
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}
