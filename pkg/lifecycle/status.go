package lifecycle

import (
	"context"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/migrate"
	"github.com/poststack/poststack/pkg/pgenv"
)

// EnvStatus is what runs of one environment, found by label: nothing of another project or
// environment is listed.
type EnvStatus struct {
	Project     string             `json:"project"`
	Environment string             `json:"environment"`
	Database    DatabaseStatus     `json:"database"`
	Containers  []deploy.Container `json:"containers"`
}

// DatabaseStatus is the environment's database as Status found it.
type DatabaseStatus struct {
	External  bool   `json:"external"`
	Container string `json:"container,omitempty"`
	// State is running, exited, created… as the engine says, "missing" when there is no
	// container, "reachable"/"unreachable" for an external database.
	State        string `json:"state"`
	Port         int    `json:"port,omitempty"`
	VolumeExists bool   `json:"volume_exists"`
	// Version is the newest applied migration, Pending how many files are not applied; both
	// unknown (Known false) when the database cannot be asked.
	Known   bool   `json:"migrations_known"`
	Version int64  `json:"version"`
	Applied int    `json:"applied"`
	Pending int    `json:"pending"`
	Error   string `json:"error,omitempty"`
}

// Status reports the environment without changing anything.
func Status(ctx context.Context, env *Environment) (*EnvStatus, error) {
	st := &EnvStatus{Project: env.ProjectName(), Environment: env.Name(), Containers: []deploy.Container{}}
	db := &st.Database
	askMigrations := false
	switch {
	case env.External():
		db.External = true
		db.State = "unreachable"
		if err := pgenv.CheckExternal(ctx, env.Env.Postgres.URL, time.Second); err == nil {
			db.State, askMigrations = "reachable", true
		}
	case env.Engine != nil:
		s, err := pgenv.Status(ctx, env.Engine, env.Postgres)
		if err != nil {
			return nil, err
		}
		db.Container, db.Port, db.VolumeExists = s.Container, s.Port, s.VolumeExists
		db.State = "missing"
		if s.Exists {
			db.State = s.Status
		}
		askMigrations = s.Running
	default:
		db.Container, db.State, db.Error = env.Postgres.Container, "unknown", env.noEngine().Error()
	}
	if askMigrations {
		if err := env.migrationStatus(ctx, db); err != nil {
			db.Error = err.Error()
		}
	}
	for _, d := range env.deployers() {
		cs, err := d.d.Containers(ctx, env.ProjectName(), env.Name(), "")
		if err != nil {
			return nil, err
		}
		st.Containers = append(st.Containers, cs...)
	}
	return st, nil
}

func (env *Environment) migrationStatus(ctx context.Context, db *DatabaseStatus) error {
	var migs []*migrate.Migration
	if st, err := os.Stat(env.MigrationsDir); env.MigrationsDir != "" && err == nil && st.IsDir() {
		if migs, err = migrate.LoadDir(env.MigrationsDir); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, env.HostURL())
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	m, err := migrate.New(conn, migs)
	if err != nil {
		return err
	}
	states, err := m.Status(ctx)
	if err != nil {
		return err
	}
	db.Known = true
	for _, s := range states {
		switch s.Status {
		case migrate.StatusPending:
			db.Pending++
		default:
			db.Applied++
			db.Version = max(db.Version, s.Version)
		}
	}
	return nil
}
