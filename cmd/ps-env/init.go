package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/peterbourgon/ff/v3/ffcli"
	"golang.org/x/term"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/scaffold"
)

// initFlags are init's own flags, from its command line only (--force destroys).
type initFlags struct {
	all, postgres, deploy, force, noInteractive bool
	project, description, env, dbName, dbUser   string
	dbPort                                      int
	set                                         map[string]bool // the flags given
}

func initCommand(app *cli.App) *ffcli.Command {
	fs := flag.NewFlagSet("ps-env init", flag.ContinueOnError)
	var f initFlags
	fs.BoolVar(&f.all, "all", false, "scaffold everything: the postgres and the deploy parts (the default)")
	fs.BoolVar(&f.postgres, "postgres", false, "scaffold the database: postgres: section, containers/postgres/, migrations/")
	fs.BoolVar(&f.deploy, "deploy", false, "scaffold the deployment: deployment: and variables:, containers/app/")
	fs.BoolVar(&f.force, "force", false, "replace existing files, keeping each old one as NAME.bak")
	fs.StringVar(&f.project, "project-name", "", "project `name` (default: the directory's name, made valid)")
	fs.StringVar(&f.description, "description", "", "project `description`")
	fs.StringVar(&f.env, "env-name", "dev", "`name` of the environment")
	fs.StringVar(&f.dbName, "db-name", "", "database `name` (default <project>_<env>)")
	fs.IntVar(&f.dbPort, "db-port", 0, "host `port` of the database (default: the first free one from 5433 up)")
	fs.StringVar(&f.dbUser, "db-user", "", "database `user` (default <project>_<env>_user)")
	fs.BoolVar(&f.noInteractive, "no-interactive", false, "ask nothing, even on a terminal: flags and defaults only")
	return app.Examples(&ffcli.Command{
		Name:       "init",
		ShortUsage: "ps-env init [--all | --postgres | --deploy] [--force] [flags]",
		ShortHelp:  "scaffold a project: .poststack.yml, containers/postgres/, containers/app/, migrations/",
		LongHelp: `init writes a new project into the current directory, from files in the binary:
  .poststack.yml              the project and one environment, each key commented
  containers/postgres/        the built-in postgres image (Dockerfile, entrypoint) to
                              customise, postgres-pod.yaml and docs/ about both
  containers/app/             a tiny app: Dockerfile, app.sh, app-pod.yaml (a pod given
                              POSTSTACK_DATABASE_URL)
  migrations/0001_init.sql    a first migration and its rollback
  .gitignore, .dockerignore   .poststack/ (secrets) and logs/ added when missing
--postgres writes the database parts, --deploy the deployment parts, --all (the
default when none is given) both. ps-build then builds the images and
ps-env up starts the environment.

On a terminal, init asks for the project name, description, environment name
and the database's name, port and user, offering defaults (Enter takes them);
a value given as a flag is not asked for. --no-interactive, or input that is not
a terminal, takes the flags and defaults: the directory's name as the project
name, environment dev, database <project>_<env>, user <project>_<env>_user, the
first port free now from 5433 up.

An existing .poststack.yml is an error (exit 2, nothing written) unless --force;
other existing files are kept. --force replaces them, each old one kept as
NAME.bak. Nothing is written outside the directory: a symbolic link on the way
out of it is refused.`,
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return exitcode.Usagef("unexpected argument %q (see 'ps-env init --help')", args[0])
			}
			f.set = map[string]bool{}
			fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
			o, err := initOptions(ctx, app, &f)
			if err != nil {
				return err
			}
			res, err := scaffold.Write(app.Env.Dir, o)
			if err != nil {
				return err
			}
			return app.Render(newInitReport(o, res))
		},
	},
		"ps-env init",
		"ps-env init --all --no-interactive --project-name myapp",
		"ps-env init --postgres --db-port 5440",
		"ps-env init --force # start over: each replaced file is kept as NAME.bak",
	)
}

// initOptions turns the flags, and on a terminal the answers, into scaffold options; a bad
// flag value is a usage error before anything is asked.
func initOptions(ctx context.Context, app *cli.App, f *initFlags) (scaffold.Options, error) {
	o := scaffold.Options{
		Project: f.project, Description: f.description, Environment: f.env,
		Database: f.dbName, User: f.dbUser, Port: f.dbPort,
		Postgres: f.all || f.postgres, Deploy: f.all || f.deploy, Force: f.force,
	}
	if !o.Postgres && !o.Deploy {
		o.Postgres, o.Deploy = true, true
	}
	if !o.Postgres {
		for _, name := range []string{"db-name", "db-port", "db-user"} {
			if f.set[name] {
				return o, exitcode.Usagef("--%s sets the database, which --deploy alone does not scaffold (add --postgres, or use --all)", name)
			}
		}
	}
	checks := []struct {
		flag string
		err  func() error
	}{
		{"project-name", func() error { return scaffold.CheckName(o.Project) }},
		{"description", func() error { return scaffold.CheckDescription(o.Description) }},
		{"env-name", func() error { return scaffold.CheckName(o.Environment) }},
		{"db-name", func() error { return scaffold.CheckIdentifier(o.Database) }},
		{"db-user", func() error { return scaffold.CheckIdentifier(o.User) }},
		{"db-port", func() error { return scaffold.CheckPort(o.Port) }},
	}
	for _, c := range checks {
		if f.set[c.flag] {
			if err := c.err(); err != nil {
				return o, exitcode.Usagef("--%s: %v", c.flag, err)
			}
		}
	}

	dirName := filepath.Base(app.Env.Dir)
	defaultProject := scaffold.SanitizeName(dirName)
	if !f.set["db-port"] && o.Postgres {
		p, err := hostport.FirstFree(config.DefaultBind, hostport.AutoStart, nil)
		if err != nil {
			return o, err
		}
		o.Port = p
	}

	if !f.noInteractive && isTerminal(app.Env.Stdin) {
		q := newAsker(ctx, app.Env.Stdin, app.Env.Stderr)
		return o, q.all(&o, f, defaultProject)
	}
	if !f.set["project-name"] {
		if defaultProject == "" {
			return o, exitcode.Usagef("the directory name %q makes no project name: give --project-name", dirName)
		}
		o.Project = defaultProject
	}
	if !f.set["db-name"] {
		o.Database = scaffold.DefaultDatabase(o.Project, o.Environment)
	}
	if !f.set["db-user"] {
		o.User = scaffold.DefaultUser(o.Project, o.Environment)
	}
	return o, nil
}

// isTerminal reports whether r is a terminal, where init asks.
func isTerminal(r io.Reader) bool {
	f, ok := r.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// asker asks questions on w and reads the answers, a line each, from r.
type asker struct {
	ctx context.Context
	w   io.Writer
	r   *bufio.Reader
}

func newAsker(ctx context.Context, r io.Reader, w io.Writer) *asker {
	return &asker{ctx: ctx, w: w, r: bufio.NewReader(r)}
}

// all asks for every value no flag gave, in order; a default follows from the answers before.
func (q *asker) all(o *scaffold.Options, f *initFlags, defaultProject string) error {
	str := func(flag, label string, dst *string, def string, check func(string) error) error {
		if f.set[flag] {
			return nil
		}
		v, err := q.ask(label, def, check)
		*dst = v
		return err
	}
	steps := []func() error{
		func() error {
			return str("project-name", "Project name", &o.Project, defaultProject, scaffold.CheckName)
		},
		func() error {
			return str("description", "Description", &o.Description, o.Description, scaffold.CheckDescription)
		},
		func() error {
			return str("env-name", "Environment name", &o.Environment, o.Environment, scaffold.CheckName)
		},
	}
	if o.Postgres {
		steps = append(steps,
			func() error {
				return str("db-name", "Database name", &o.Database, scaffold.DefaultDatabase(o.Project, o.Environment), scaffold.CheckIdentifier)
			},
			func() error {
				if f.set["db-port"] {
					return nil
				}
				v, err := q.ask("Database port", strconv.Itoa(o.Port), func(s string) error {
					p, err := strconv.Atoi(s)
					if err != nil {
						return fmt.Errorf("%q is not a number", s)
					}
					return scaffold.CheckPort(p)
				})
				if err == nil {
					o.Port, _ = strconv.Atoi(v)
				}
				return err
			},
			func() error {
				return str("db-user", "Database user", &o.User, scaffold.DefaultUser(o.Project, o.Environment), scaffold.CheckIdentifier)
			},
		)
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

type answer struct {
	line string
	err  error
}

// ask prints "label [def]: " and reads a line until check accepts it; an empty line is def.
// The end of the input is a usage error, an interrupt the context's.
func (q *asker) ask(label, def string, check func(string) error) (string, error) {
	for {
		if def != "" {
			fmt.Fprintf(q.w, "%s [%s]: ", label, def)
		} else {
			fmt.Fprintf(q.w, "%s: ", label)
		}
		// Read in the background: a read from a terminal does not end on SIGINT.
		ch := make(chan answer, 1)
		go func() {
			line, err := q.r.ReadString('\n')
			ch <- answer{line, err}
		}()
		var a answer
		select {
		case a = <-ch:
		case <-q.ctx.Done():
			fmt.Fprintln(q.w)
			return "", q.ctx.Err()
		}
		v := strings.TrimSpace(a.line)
		if a.err != nil && (v == "" || !errors.Is(a.err, io.EOF)) {
			fmt.Fprintln(q.w)
			if errors.Is(a.err, io.EOF) {
				return "", exitcode.Usagef("%s: the input ended before an answer; nothing was written", label)
			}
			return "", a.err
		}
		if v == "" {
			v = def
		}
		if err := check(v); err != nil {
			fmt.Fprintf(q.w, "  %s %v\n", strings.ToLower(label), err)
			continue
		}
		return v, nil
	}
}

// initReport is what init reports.
type initReport struct {
	Project     string          `json:"project"`
	Environment string          `json:"environment"`
	Parts       []string        `json:"parts"`
	Database    string          `json:"database,omitempty"`
	User        string          `json:"user,omitempty"`
	Port        int             `json:"port,omitempty"`
	Files       []scaffold.File `json:"files"`
	force       bool
}

func newInitReport(o scaffold.Options, res *scaffold.Result) initReport {
	r := initReport{Project: o.Project, Environment: o.Environment, Parts: []string{}, Files: res.Files, force: o.Force}
	if o.Postgres {
		r.Parts = append(r.Parts, "postgres")
		r.Database, r.User, r.Port = o.Database, o.User, o.Port
	}
	if o.Deploy {
		r.Parts = append(r.Parts, "deploy")
	}
	return r
}

func (r initReport) RenderText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, f := range r.Files {
		note := ""
		switch {
		case f.Status == scaffold.Replaced:
			note = "the old one is " + f.Backup
		case f.Status == scaffold.Kept && r.force:
			note = "same content"
		case f.Status == scaffold.Kept:
			note = "exists (--force replaces it)"
		case f.Added != nil:
			note = "added " + strings.Join(f.Added, " ")
		}
		if note != "" {
			note = "\t" + note
		}
		fmt.Fprintf(tw, "%s\t%s%s\n", f.Status, f.Path, note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "project %s, environment %s", r.Project, r.Environment)
	if r.Database != "" {
		fmt.Fprintf(w, ": database %s, user %s, port %d", r.Database, r.User, r.Port)
	}
	_, err := fmt.Fprintf(w, "\nnext: ps-build builds the images, ps-env up starts environment %s\n", r.Environment)
	return err
}

func (r initReport) RenderJSON(w io.Writer) error { return cli.WriteJSON(w, r) }
