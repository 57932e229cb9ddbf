package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/variables"
	"github.com/poststack/poststack/pkg/xdg"
)

// Project is a project file as read and decoded.
type Project struct {
	Path string // absolute
	Data []byte // as read
	File *config.File
}

// ReadProject reads the project file (as the user named it: messages say that name,
// its relative paths resolve against the run's directory) as config.Load reads it — a
// regular file, capped, not a link out of its directory (the project's) — and decodes
// it. A file that cannot be read is exit 2, "what: reason".
func (a *App) ReadProject(projectFile, what string) (*Project, error) {
	path := a.Path(projectFile)
	data, err := config.ReadFile(path)
	if err != nil {
		reason := err.Error()
		if se := (*safefile.Error)(nil); errors.As(err, &se) {
			reason = se.Reason
		}
		return nil, exitcode.Usagef("%s: %s", what, reason)
	}
	f, err := config.Parse(projectFile, data, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return &Project{Path: path, Data: data, File: f}, nil
}

// EnvironmentVariables loads the environment env of the project file (as
// the user named it: messages say that name, its relative paths resolve
// against the run's directory), builds its variables with opts (the
// process environment is filled in when opts.Environ is nil), and hides
// their secrets from every output of the run.
func (a *App) EnvironmentVariables(projectFile, env string, opts variables.Options) (*variables.Set, error) {
	_, _, vars, err := a.Environment(projectFile, env, opts)
	return vars, err
}

// PortClaims is the directory where automatic ports are claimed for this user, so that two
// projects never get the same one (hostport.Recorded); "" without a home directory.
func (a *App) PortClaims() string {
	d, err := xdg.StateDir(a.Env.Getenv, "ports")
	if err != nil {
		return ""
	}
	return d
}

// AutoPort is the port an environment with `port: auto` has: picked on first use, kept in
// the project's .poststack/ and claimed for this user (PortClaims), for variables.Options.Port.
func (a *App) AutoPort(f *config.File, e *config.Environment) func(project, env string) (int, error) {
	bind := e.Postgres.Bind
	return func(project, env string) (int, error) {
		return hostport.Recorded(f.Dir, project, env, bind, f.Ports(), a.PortClaims())
	}
}

// Environment is EnvironmentVariables that also returns the project file and the environment
// ("" selects the current one).
func (a *App) Environment(projectFile, env string, opts variables.Options) (*Project, *config.Environment, *variables.Set, error) {
	what := "project file " + projectFile
	if env != "" {
		what = fmt.Sprintf("--env %s reads the project file %s", env, projectFile)
	}
	p, err := a.ReadProject(projectFile, what)
	if err != nil {
		return nil, nil, nil, err
	}
	f := p.File
	e, err := f.Environment(env)
	if err != nil {
		return nil, nil, nil, err
	}
	if opts.Environ == nil {
		opts.Environ = a.Env.Environ
	}
	if opts.Port == nil {
		opts.Port = a.AutoPort(f, e)
	}
	vars, err := variables.ForEnvironment(f, e, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, s := range vars.Secrets() {
		a.AddSecret(s)
	}
	return p, e, vars, nil
}

// ProjectName is the name images are tagged with (ps-build) and project containers run from:
// project.name of ./.poststack.yml, unless --project-container-prefix was changed from the
// directory's name; without a project file, the directory's name.
func (a *App) ProjectName() (string, error) {
	prefix := a.Globals.ProjectContainerPrefix
	dirName := filepath.Base(filepath.Clean(a.Env.Dir))
	if prefix != dirName && prefix != "" {
		return prefix, nil
	}
	name, err := config.ProjectName(filepath.Join(a.Env.Dir, config.FileName))
	switch {
	case err == nil && name != "":
		return name, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return "", err
	}
	return strings.ToLower(dirName), nil
}
