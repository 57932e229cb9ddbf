package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/progress"
	"github.com/poststack/poststack/pkg/render"
	"github.com/poststack/poststack/pkg/safefile"
)

// UpResult is what Up did, phase by phase; a phase that did not run is nil.
type UpResult struct {
	Project     string            `json:"project"`
	Environment string            `json:"environment"`
	Database    *DatabaseResult   `json:"database,omitempty"`
	Migrations  *MigrationsResult `json:"migrations,omitempty"`
	Init        []InitResult      `json:"init"`
	Deploy      *DeployResult     `json:"deploy,omitempty"`
	// Changed is false when the run found everything as it should be and touched nothing.
	Changed  bool          `json:"changed"`
	Duration time.Duration `json:"-"`
}

// DatabaseResult is the database phase.
type DatabaseResult struct {
	External  bool   `json:"external"`
	Container string `json:"container,omitempty"`
	// Action is a pgenv action (created, started, reused, recreated) or "checked" for an
	// external database.
	Action string `json:"action"`
	Port   int    `json:"port,omitempty"`
}

// MigrationsResult is the migrate phase.
type MigrationsResult struct {
	Dir     string   `json:"dir"`
	Applied []string `json:"applied"`
	Total   int      `json:"total"`
}

// InitResult is one init entry.
type InitResult struct {
	Unit   string `json:"unit"`
	Source string `json:"source"`
	// Ran is false when the entry had already run to success with the same file on this
	// database.
	Ran        bool       `json:"ran"`
	Containers []InitExit `json:"containers"`
	Logs       []string   `json:"logs,omitempty"` // files under the log directory
}

// InitExit is how one init container ended.
type InitExit struct {
	Container string `json:"container"`
	Code      int    `json:"exit_code"`
}

// DeployResult is the deploy phase.
type DeployResult struct {
	Source     string             `json:"source"`
	Kind       string             `json:"kind"`
	Changes    []deploy.Change    `json:"changes"`
	Containers []deploy.Container `json:"containers"`
}

// InitError is an init container that exited non-zero: exit 1, its logs in Detail.
type InitError struct {
	Source    string
	Container string
	Code      int
	Logs      string
	LogFile   string
}

func (e *InitError) Error() string {
	msg := fmt.Sprintf("init %s: container %s exited with code %d; the deployment was not started", e.Source, e.Container, e.Code)
	if e.LogFile != "" {
		msg += " (logs: " + e.LogFile + ")"
	}
	return msg
}

// Detail is the container's last log lines.
func (e *InitError) Detail() string { return tail(e.Logs, 30) }

// ExitCode is 1: a container exited non-zero.
func (e *InitError) ExitCode() int { return exitcode.Failure }

// Up brings env up: database, migrations, init entries, deployment, in that order (or the one
// phase o.Only names). Everything already as it should be is left alone, so a second Up with
// nothing changed changes nothing and says so (Changed false). When ctx is cancelled, what
// this run started is stopped again and the data volume kept.
func Up(ctx context.Context, env *Environment, o Options) (res *UpResult, err error) {
	start := time.Now()
	if err := CheckOnly(o.Only); err != nil {
		return nil, err
	}
	res = &UpResult{Project: env.ProjectName(), Environment: env.Name(), Init: []InitResult{}}
	var undo []func(context.Context)
	defer func() {
		if err != nil && interrupted(ctx, err) {
			cleanup := context.WithoutCancel(ctx)
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i](cleanup)
			}
		}
		res.Duration = time.Since(start)
	}()

	// Everything that can be checked without starting anything is checked first: the files
	// render, the engine takes them, their host ports are free.
	var initPlans []initPlan
	var deployUnit *deploy.Unit
	if o.runs(PhaseInit) {
		for i, s := range env.Env.Init {
			u, err := env.unit(s, deploy.InitUnit(i+1), true)
			if err != nil {
				return res, err
			}
			d, err := env.deployer(u.Kind)
			if err != nil {
				return res, err
			}
			p, err := d.Plan(ctx, u)
			if err != nil {
				return res, err
			}
			initPlans = append(initPlans, initPlan{d, p})
		}
	}
	if o.runs(PhaseDeploy) && env.Env.Deployment != nil {
		u, err := env.unit(*env.Env.Deployment, deploy.UnitDeploy, false)
		if err != nil {
			return res, err
		}
		deployUnit = &u
	}
	var migs []*migrate.Migration
	if o.runs(PhaseMigrate) {
		if migs, err = env.migrations(); err != nil {
			return res, err
		}
	}
	var deployPlan *deploy.Plan
	var deployer deploy.Deployer
	if deployUnit != nil {
		deployer, err = env.deployer(deployUnit.Kind)
		if err != nil {
			return res, err
		}
		if deployPlan, err = deployer.Plan(ctx, *deployUnit); err != nil {
			return res, err
		}
		if err := checkPorts(ctx, env, deployer, deployPlan); err != nil {
			return res, err
		}
	}

	if o.runs(PhaseDB) || o.Only == "" {
		err := step(o.Progress, "database", func() error {
			d, err := env.database(ctx, o)
			res.Database = d
			if d != nil && (d.Action == pgenv.ActionCreated || d.Action == pgenv.ActionStarted || d.Action == pgenv.ActionRecreated) {
				res.Changed = true
				undo = append(undo, func(ctx context.Context) { _ = pgenv.Stop(ctx, env.Engine, env.Postgres) })
			}
			return err
		})
		if err != nil {
			return res, err
		}
	}
	if o.runs(PhaseMigrate) {
		err := step(o.Progress, "migrations", func() error {
			m, err := env.migrate(ctx, o, migs)
			res.Migrations = m
			if m != nil && len(m.Applied) > 0 {
				res.Changed = true
			}
			return err
		})
		if err != nil {
			return res, err
		}
	}
	for _, ip := range initPlans {
		var r InitResult
		err := step(o.Progress, "init "+ip.p.Unit.Source, func() error {
			var err error
			r, err = env.runInit(ctx, ip.d, ip.p, o, &undo)
			return err
		})
		res.Init = append(res.Init, r)
		if r.Ran {
			res.Changed = true
		}
		if err != nil {
			return res, err
		}
	}
	if deployPlan != nil {
		err := step(o.Progress, "deploy "+deployUnit.Source, func() error {
			d, err := env.deploy(ctx, deployer, deployPlan, o, &undo)
			res.Deploy = d
			if d != nil {
				for _, c := range d.Changes {
					if c.Action != deploy.ActionUnchanged {
						res.Changed = true
					}
				}
			}
			return err
		})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// initPlan is a checked init entry and the deployer that runs it.
type initPlan struct {
	d deploy.Deployer
	p *deploy.Plan
}

// unit renders one of the environment's files with its variables (YAML-safe and strict: an
// undefined variable is exit 3 with every file:line:col) into a Unit.
func (env *Environment) unit(s config.Step, name string, init bool) (deploy.Unit, error) {
	var buf bytes.Buffer
	in := render.Input{Name: s.Path, Open: func() (io.ReadCloser, error) { return safefile.Open(env.Dir, s.File) }}
	if err := render.To(&buf, []render.Input{in}, env.Vars.Lookup, render.Options{YAML: true}); err != nil {
		return deploy.Unit{}, err
	}
	return deploy.Unit{
		Kind: s.Kind, Source: s.Path, Rendered: buf.Bytes(),
		Project: env.ProjectName(), Environment: env.Name(), Name: name,
		Network: env.Postgres.Network, Init: init, Dir: filepath.Dir(s.File),
	}, nil
}

func (env *Environment) database(ctx context.Context, o Options) (*DatabaseResult, error) {
	if env.External() {
		if err := pgenv.CheckExternal(ctx, env.Env.Postgres.URL, env.Postgres.ReadyTimeout); err != nil {
			return &DatabaseResult{External: true, Action: "failed"}, err
		}
		return &DatabaseResult{External: true, Action: "checked"}, nil
	}
	if env.Engine == nil {
		return nil, env.noEngine()
	}
	if err := env.checkDatabasePort(ctx); err != nil {
		return nil, err
	}
	say := func(line string) {
		o.Progress.Emit(progress.Event{Op: "env", Kind: progress.Info, Step: "database", Message: line})
	}
	r, err := pgenv.Up(ctx, env.Engine, env.Postgres, say)
	if err != nil {
		return nil, err
	}
	return &DatabaseResult{Container: r.Container, Action: r.Action, Port: env.Postgres.Port}, nil
}

// migrations loads the project's migrations and checks them against the sum file
// (migrate.CheckSum: none there, nothing to check), before anything starts; nil for a project
// without a migrations directory.
func (env *Environment) migrations() ([]*migrate.Migration, error) {
	dir := env.MigrationsDir
	if dir == "" {
		return nil, nil
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, nil // a project without migrations
	}
	migs, err := migrate.LoadDir(dir)
	if err != nil {
		return nil, err
	}
	if err := migrate.CheckSum(dir, migs); err != nil {
		return nil, err
	}
	if migs == nil {
		migs = []*migrate.Migration{} // a directory without migrations yet: migrate says so
	}
	return migs, nil
}

func (env *Environment) migrate(ctx context.Context, o Options, migs []*migrate.Migration) (*MigrationsResult, error) {
	dir := env.MigrationsDir
	if migs == nil {
		return nil, nil
	}
	conn, err := pgx.Connect(ctx, env.HostURL())
	if err != nil {
		return nil, fmt.Errorf("migrations: connect to %s: %w", env.Env.Postgres.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	opts := append([]migrate.Option{migrate.WithProgress(o.Progress)}, o.Migrate...)
	m, err := migrate.New(conn, migs, opts...)
	if err != nil {
		return nil, err
	}
	results, err := m.Up(ctx, 0)
	r := &MigrationsResult{Dir: dir, Applied: []string{}, Total: len(migs)}
	for _, x := range results {
		r.Applied = append(r.Applied, migrate.Label(x.Version, x.Name, nil))
	}
	return r, err
}

// runInit runs one init entry unless it already ran to success with the same file on this
// database (recorded in the database itself, so that a new data volume runs it again).
func (env *Environment) runInit(ctx context.Context, d deploy.Deployer, p *deploy.Plan, o Options, undo *[]func(context.Context)) (InitResult, error) {
	u := p.Unit
	r := InitResult{Unit: u.Name, Source: u.Source, Containers: []InitExit{}}
	done, err := initDone(ctx, env.HostURL(), u.Name, p.Fingerprint)
	if err != nil {
		return r, err
	}
	if done {
		return r, nil
	}
	r.Ran = true
	// A unit left over from an interrupted run goes first.
	if err := d.Remove(ctx, p); err != nil {
		return r, err
	}
	*undo = append(*undo, func(ctx context.Context) { _ = d.Remove(ctx, p) })
	if _, err := d.Apply(ctx, p); err != nil {
		return r, err
	}
	exits, err := d.WaitExited(ctx, p)
	if err != nil {
		return r, err
	}
	var failed *InitError
	for _, x := range exits {
		r.Containers = append(r.Containers, InitExit{Container: x.Container, Code: x.Code})
		file, werr := env.keepLogs(x.Container, x.Logs, o.Mask)
		if werr != nil {
			o.Progress.Emit(progress.Event{Op: "env", Kind: progress.Warn, Step: "init " + u.Source, Message: "keep logs of " + x.Container, Err: werr})
		}
		if file != "" {
			r.Logs = append(r.Logs, file)
		}
		if x.Code != 0 && failed == nil {
			logs := x.Logs
			if o.Mask != nil {
				logs = o.Mask(logs)
			}
			failed = &InitError{Source: u.Source, Container: x.Container, Code: x.Code, Logs: logs, LogFile: file}
		}
	}
	if failed != nil {
		// Kept for inspection? The logs are; the containers go, so that the next up starts clean.
		_ = d.Remove(context.WithoutCancel(ctx), p)
		return r, failed
	}
	if err := d.Remove(ctx, p); err != nil {
		return r, err
	}
	return r, recordInit(ctx, env.HostURL(), u.Name, p.Fingerprint)
}

// InitLogDir is where the logs of init containers are kept: <logDir>/containers/init, one
// <container>.log each (init containers are removed once they succeeded).
func InitLogDir(logDir string) string { return filepath.Join(logDir, "containers", "init") }

// keepLogs writes a container's logs to InitLogDir (masked).
func (env *Environment) keepLogs(container, logs string, mask func(string) string) (string, error) {
	if env.LogDir == "" {
		return "", nil
	}
	dir := InitLogDir(env.LogDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if mask != nil {
		logs = mask(logs)
	}
	path := filepath.Join(dir, container+".log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|noFollow, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(logs)
	return path, errors.Join(err, f.Close())
}

func (env *Environment) deploy(ctx context.Context, d deploy.Deployer, p *deploy.Plan, o Options, undo *[]func(context.Context)) (*DeployResult, error) {
	r := &DeployResult{Source: p.Unit.Source, Kind: string(p.Unit.Kind), Changes: []deploy.Change{}, Containers: []deploy.Container{}}
	changes, err := d.Apply(ctx, p)
	r.Changes = append(r.Changes, changes...)
	for _, c := range changes {
		if c.Action != deploy.ActionUnchanged {
			*undo = append(*undo, func(ctx context.Context) { _ = d.Remove(ctx, p) })
			break
		}
	}
	if err != nil {
		return r, err
	}
	timeout := o.WaitTimeout
	if timeout <= 0 {
		timeout = DefaultWaitTimeout
	}
	cs, err := d.WaitReady(ctx, p, timeout)
	r.Containers = append(r.Containers, cs...)
	return r, err
}

// checkDatabasePort reports a host port of the database held by something other than the
// environment's own container, naming the holder and a free port, before anything changes.
func (env *Environment) checkDatabasePort(ctx context.Context) error {
	s := env.Postgres
	if hostport.Free(s.Bind, s.Port) {
		return nil
	}
	who := holder(ctx, env, s.Port)
	if who == "container "+s.Container || strings.HasPrefix(who, "container "+s.Container+" ") {
		return nil // ours: pgenv reuses or recreates it
	}
	if who == "" {
		who = "another program"
	}
	return exitcode.Usagef("postgres: host port %d on %s is in use by %s; set a free port such as %d with `port:` under environment %s's postgres settings in .poststack.yml",
		s.Port, s.Bind, who, suggestPort(deploy.Port{HostIP: s.Bind, HostPort: s.Port}), env.Name())
}

// checkPorts makes sure every host port the plan binds is free, or held by the very unit it
// replaces; otherwise exit 2 naming the port, who holds it and a free one.
func checkPorts(ctx context.Context, env *Environment, d deploy.Deployer, p *deploy.Plan) error {
	if len(p.HostPorts) == 0 {
		return nil
	}
	own, err := d.Containers(ctx, env.ProjectName(), env.Name(), p.Unit.Name)
	if err != nil {
		return err
	}
	ours := map[int]bool{}
	for _, c := range own {
		for _, port := range c.Ports {
			ours[port.HostPort] = true
		}
	}
	var problems []string
	for _, port := range p.HostPorts {
		if ours[port.HostPort] || portFree(port) {
			continue
		}
		who := "another program"
		if c := holder(ctx, env, port.HostPort); c != "" {
			who = c
		}
		problems = append(problems, fmt.Sprintf("host port %d (%s of %s) is in use by %s; use a free port such as %d",
			port.HostPort, port.Service, p.Unit.Source, who, suggestPort(port)))
	}
	if len(problems) > 0 {
		return exitcode.Usagef("%s; nothing was started", strings.Join(problems, "; "))
	}
	return nil
}
