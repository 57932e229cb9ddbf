package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/variables"
)

// EnvironmentVariables loads the environment env of the project file (as
// the user named it: messages say that name, its relative paths resolve
// against the run's directory), builds its variables with opts (the
// process environment is filled in when opts.Environ is nil), and hides
// their secrets from every output of the run.
func (a *App) EnvironmentVariables(projectFile, env string, opts variables.Options) (*variables.Set, error) {
	path := a.Path(projectFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, exitcode.Usagef("--env %s reads the project file %s: %v", env, projectFile, err)
	}
	f, err := config.Parse(projectFile, data, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	e, err := f.Environment(env)
	if err != nil {
		return nil, err
	}
	if opts.Environ == nil {
		opts.Environ = a.Env.Environ
	}
	vars, err := variables.ForEnvironment(f, e, opts)
	if err != nil {
		return nil, err
	}
	for _, s := range vars.Secrets() {
		a.AddSecret(s)
	}
	return vars, nil
}
