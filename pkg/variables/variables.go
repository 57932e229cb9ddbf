// Package variables builds the variable set of an environment: the values
// ${VAR} substitution sees and containers receive.
//
// Precedence, lowest first: .env files, the environment's `variables:`, the
// process environment, --set. The built-ins (config.Builtins) are computed
// from the configuration and always win: a built-in name arriving from a
// .env file or the process environment is ignored, since such names are
// commonly left over from other runs, while --set of a built-in is an error.
package variables

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/dotenv"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/secret"
)

// Sources a variable's value can come from, as Var.Source shows them.
// Values from a .env file have the source ".env (PATH)".
const (
	SourceBuiltin     = "built-in"
	SourceVariables   = "variables"
	SourceEnvironment = "environment"
	SourceSet         = "--set"
)

// Var is one variable with the source that won.
type Var struct {
	Name   string
	Value  string
	Source string
	// Secret marks values to mask in human-facing output; see IsSecret.
	Secret bool
}

// Set is an ordered set of variables: built-ins first in their canonical
// order, then the others in the order they were first defined. It is
// immutable once built.
type Set struct {
	vars  []Var
	index map[string]int
}

// Options are the inputs besides the configuration. All are optional.
type Options struct {
	// EnvFiles are dotenv files, lowest precedence first; each must exist.
	// When nil, ForEnvironment reads the project's .env if there is one
	// (as docker compose does) and Standalone reads none.
	EnvFiles []string
	// Environ is the process environment as NAME=value strings
	// (os.Environ() at the edge of the program).
	Environ []string
	// Set holds --set NAME=VALUE arguments in command-line order.
	Set []string
	// Password supplies the generated password of an environment whose
	// password is auto_generated. Nil means secret.Password in the
	// project's directory.
	Password func(project, env string) (string, error)
	// Port supplies the host port of an environment whose port is auto. Nil means
	// hostport.Recorded in the project's directory: picked on first use, then kept.
	Port func(project, env string) (int, error)
}

// ForEnvironment returns the variables of env, an environment of f.
func ForEnvironment(f *config.File, env *config.Environment, opts Options) (*Set, error) {
	pg := env.Postgres
	if pg.GeneratePassword && !pg.External() {
		get := opts.Password
		if get == nil {
			get = func(project, env string) (string, error) { return secret.Password(f.Dir, project, env) }
		}
		pw, err := get(f.Project.Name, env.Name)
		if err != nil {
			return nil, fmt.Errorf("environment %s: database password: %w", env.Name, err)
		}
		pg.Password = pw
	}
	if pg.PortAuto && !pg.External() {
		get := opts.Port
		if get == nil {
			get = func(project, env string) (int, error) {
				return hostport.Recorded(f.Dir, project, env, pg.Bind, f.Ports(), "")
			}
		}
		port, err := get(f.Project.Name, env.Name)
		if err != nil {
			return nil, fmt.Errorf("environment %s: database port: %w", env.Name, err)
		}
		pg.Port = port
	}
	builtins, err := Builtins(f.Project.Name, env.Name, pg)
	if err != nil {
		return nil, err
	}
	s := newSet()
	for _, v := range builtins {
		s.put(v.Name, v.Value, SourceBuiltin)
	}
	// Files the user named are trusted wherever they are (root ""); the
	// project's own .env must really be in the project.
	files, root := opts.EnvFiles, ""
	if files == nil {
		files, root = []string{filepath.Join(f.Dir, ".env")}, f.Dir
	}
	if err := s.addEnvFiles(files, root, opts.Environ); err != nil {
		return nil, err
	}
	for _, v := range env.Variables {
		if config.IsBuiltin(v.Name) {
			return nil, exitcode.With(exitcode.Usage, v.Pos.Errorf("variable %s is built-in and cannot be set in variables:", v.Name))
		}
		s.put(v.Name, v.Value, SourceVariables)
	}
	s.addEnviron(opts.Environ)
	if err := s.addSet(opts.Set); err != nil {
		return nil, err
	}
	return s, nil
}

// Standalone returns the variables for use outside a project: the process
// environment, the given .env files and --set, with no built-ins.
func Standalone(opts Options) (*Set, error) {
	s := newSet()
	if err := s.addEnvFiles(opts.EnvFiles, "", opts.Environ); err != nil {
		return nil, err
	}
	s.addEnviron(opts.Environ)
	if err := s.addSet(opts.Set); err != nil {
		return nil, err
	}
	return s, nil
}

// Builtins computes the built-in variables of an environment from its
// postgres settings, whose Password must be resolved already. For a
// container-managed database the containers reach it by container name on
// the environment's network and the host through the published port; an
// external database is the same from everywhere.
func Builtins(project, env string, pg config.Postgres) ([]Var, error) {
	var host, port, containerURL, hostURL string
	if pg.External() {
		u, err := url.Parse(pg.URL)
		if err != nil {
			return nil, exitcode.With(exitcode.Usage, fmt.Errorf("environment %s: postgres url: %w", env, err))
		}
		host, port = u.Hostname(), u.Port()
		if port == "" {
			port = strconv.Itoa(config.DefaultPort)
		}
		containerURL, hostURL = pg.URL, pg.URL
	} else {
		host, port = project+"-"+env+"-postgres", strconv.Itoa(config.DefaultPort)
		containerURL = PostgresURL(pg.User, pg.Password, host, config.DefaultPort, pg.Database)
		hostURL = PostgresURL(pg.User, pg.Password, hostAddress(pg.Bind), pg.Port, pg.Database)
	}
	values := map[string]string{
		"POSTSTACK_PROJECT":           project,
		"POSTSTACK_ENVIRONMENT":       env,
		"POSTSTACK_DATABASE_URL":      containerURL,
		"POSTSTACK_HOST_DATABASE_URL": hostURL,
	}
	for _, prefix := range []string{"", "POSTSTACK_"} {
		values[prefix+"DB_HOST"] = host
		values[prefix+"DB_PORT"] = port
		values[prefix+"DB_NAME"] = pg.Database
		values[prefix+"DB_USER"] = pg.User
		values[prefix+"DB_PASSWORD"] = pg.Password
	}
	var out []Var
	for _, name := range config.Builtins() {
		out = append(out, Var{Name: name, Value: values[name], Source: SourceBuiltin, Secret: IsSecret(name, values[name])})
	}
	return out, nil
}

// hostAddress is where the host connects to a port published on bind: a
// wildcard bind is reached through loopback.
func hostAddress(bind string) string {
	a, err := netip.ParseAddr(bind)
	switch {
	case bind == "" || err != nil:
		return config.DefaultBind
	case a.IsUnspecified() && a.Is4():
		return "127.0.0.1"
	case a.IsUnspecified():
		return "::1"
	}
	return bind
}

// PostgresURL builds a postgres:// URL with sslmode=disable, percent-encoding
// the user, password and database name.
func PostgresURL(user, password, host string, port int, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     net.JoinHostPort(host, strconv.Itoa(port)),
		Path:     "/" + database,
		RawPath:  "/" + url.PathEscape(database),
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// IsSecret reports whether a variable's value must be masked. The rule:
// DB_PASSWORD, POSTSTACK_DB_PASSWORD and both database URLs; any name
// having PASSWORD, SECRET, TOKEN or KEY as one of its '_'-separated words,
// case-insensitively (API_KEY, GITHUB_TOKEN, MY_SECRET_VALUE, but not
// KEYBOARD or TOKENIZER); and any value that is a URL carrying a password.
func IsSecret(name, value string) bool {
	switch name {
	case "DB_PASSWORD", "POSTSTACK_DB_PASSWORD", "POSTSTACK_DATABASE_URL", "POSTSTACK_HOST_DATABASE_URL":
		return true
	}
	for _, w := range strings.Split(strings.ToUpper(name), "_") {
		switch w {
		case "PASSWORD", "SECRET", "TOKEN", "KEY":
			return true
		}
	}
	return strings.Contains(value, "://") && secret.MaskURL(value) != value
}

// ParseAssignment splits a --set argument NAME=VALUE; VALUE may contain '='.
func ParseAssignment(s string) (name, value string, err error) {
	name, value, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return "", "", exitcode.Usagef("--set %q: want NAME=VALUE", s)
	case !config.ValidVariableName(name):
		return "", "", exitcode.Usagef("--set %q: %q is not a valid variable name (letters, digits and '_', not starting with a digit)", s, name)
	}
	return name, value, nil
}

func newSet() *Set { return &Set{index: map[string]int{}} }

// put sets name, keeping its place in the order when it is already there.
func (s *Set) put(name, value, source string) {
	v := Var{Name: name, Value: value, Source: source, Secret: IsSecret(name, value)}
	if i, ok := s.index[name]; ok {
		s.vars[i] = v
		return
	}
	s.index[name] = len(s.vars)
	s.vars = append(s.vars, v)
}

func (s *Set) builtin(name string) bool {
	i, ok := s.index[name]
	return ok && s.vars[i].Source == SourceBuiltin
}

// addEnvFiles reads dotenv files. `${VAR}` in their values resolves against
// the process environment first, then earlier files, as compose does.
// Each must be a regular file of at most safefile.DefaultMaxSize bytes and,
// when root is not "", really inside root; a missing file is skipped when
// root is set (the project's .env is optional) and an error otherwise.
func (s *Set) addEnvFiles(files []string, root string, environ []string) error {
	procEnv := environMap(environ)
	seen := map[string]string{}
	for _, path := range files {
		data, err := safefile.ReadFile(root, path)
		if root != "" && errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return exitcode.With(exitcode.Usage, fmt.Errorf("env file: %w", err))
		}
		vals, err := dotenv.ParseWithLookup(bytes.NewReader(data), func(k string) (string, bool) {
			if v, ok := procEnv[k]; ok {
				return v, true
			}
			v, ok := seen[k]
			return v, ok
		})
		if err != nil {
			return exitcode.With(exitcode.Usage, fmt.Errorf("env file %s: %w", path, err))
		}
		names := make([]string, 0, len(vals))
		for k := range vals {
			names = append(names, k)
		}
		sort.Strings(names)
		var bad []error
		for _, k := range names {
			if !config.ValidVariableName(k) {
				bad = append(bad, fmt.Errorf("env file %s: %q is not a valid variable name", path, k))
				continue
			}
			seen[k] = vals[k]
			if !s.builtin(k) {
				s.put(k, vals[k], ".env ("+path+")")
			}
		}
		if len(bad) > 0 {
			return exitcode.With(exitcode.Usage, errors.Join(bad...))
		}
	}
	return nil
}

// addEnviron applies the process environment. Entries that cannot be
// variable names (Windows' "=C:", names with dots) cannot be referenced
// either, so they are skipped.
func (s *Set) addEnviron(environ []string) {
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !config.ValidVariableName(k) || s.builtin(k) {
			continue
		}
		s.put(k, v, SourceEnvironment)
	}
}

func (s *Set) addSet(args []string) error {
	var errs []error
	for _, a := range args {
		k, v, err := ParseAssignment(a)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.builtin(k) {
			errs = append(errs, exitcode.Usagef("--set %s: %s is built-in and cannot be overridden", k, k))
			continue
		}
		s.put(k, v, SourceSet)
	}
	if len(errs) > 0 {
		return exitcode.With(exitcode.Usage, errors.Join(errs...))
	}
	return nil
}

func environMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}

// Lookup returns a variable's value; its signature plugs into the
// substitution engine.
func (s *Set) Lookup(name string) (string, bool) {
	i, ok := s.index[name]
	if !ok {
		return "", false
	}
	return s.vars[i].Value, true
}

// Get returns a variable's value, "" when it is not set.
func (s *Set) Get(name string) string {
	v, _ := s.Lookup(name)
	return v
}

// Var returns the variable called name with its source.
func (s *Set) Var(name string) (Var, bool) {
	i, ok := s.index[name]
	if !ok {
		return Var{}, false
	}
	return s.vars[i], true
}

// All returns the variables in order.
func (s *Set) All() []Var { return slices.Clone(s.vars) }

// Secrets returns the distinct non-empty values of the secret variables,
// for secret.NewMasker and ::add-mask::.
func (s *Set) Secrets() []string {
	var out []string
	for _, v := range s.vars {
		if v.Secret && v.Value != "" && !slices.Contains(out, v.Value) {
			out = append(out, v.Value)
		}
	}
	return out
}

// Environ returns the variables as NAME=value strings, the form exec.Cmd
// and container engines take.
func (s *Set) Environ() []string {
	out := make([]string, len(s.vars))
	for i, v := range s.vars {
		out[i] = v.Name + "=" + v.Value
	}
	return out
}
