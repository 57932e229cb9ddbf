package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/progress"
)

// DownResult is what Down removed.
type DownResult struct {
	Project     string `json:"project"`
	Environment string `json:"environment"`
	// Containers are the deployed and init containers that were there.
	Containers []string `json:"containers"`
	Database   string   `json:"database,omitempty"` // the database container, when there was one
	// VolumeRemoved: the data volume went too (--volumes); otherwise it is kept.
	VolumeRemoved bool          `json:"volume_removed"`
	Volume        string        `json:"volume,omitempty"`
	Duration      time.Duration `json:"-"`
}

// Down removes the environment's deployed and init containers (pods and compose projects),
// then its database container and network; the data volume stays unless volumes is set.
// Only objects labelled with the environment are touched.
func Down(ctx context.Context, env *Environment, volumes bool, fn progress.Func) (*DownResult, error) {
	start := time.Now()
	res := &DownResult{Project: env.ProjectName(), Environment: env.Name(), Containers: []string{}}
	defer func() { res.Duration = time.Since(start) }()
	var errs []error
	for _, d := range env.deployers() {
		err := step(fn, "remove "+d.kind+" units", func() error {
			cs, err := d.d.Containers(ctx, env.ProjectName(), env.Name(), "")
			if err != nil {
				return err
			}
			for _, c := range cs {
				res.Containers = append(res.Containers, c.Name)
			}
			if len(cs) == 0 {
				return nil
			}
			return d.d.RemoveAll(ctx, env.ProjectName(), env.Name())
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(errs...)
	}
	if env.External() || env.Engine == nil {
		return res, nil
	}
	err := step(fn, "database", func() error {
		st, err := pgenv.Status(ctx, env.Engine, env.Postgres)
		if err != nil {
			return err
		}
		if st.Exists {
			res.Database = env.Postgres.Container
		}
		if err := pgenv.Remove(ctx, env.Engine, env.Postgres, volumes); err != nil {
			return err
		}
		res.VolumeRemoved = volumes
		res.Volume = env.Postgres.Volume
		return nil
	})
	return res, err
}

type namedDeployer struct {
	kind string
	d    deploy.Deployer
}

// deployers are the deployers that may have made containers of the environment: those of the
// kinds its files use, and on podman both (an earlier configuration may have used the other).
func (env *Environment) deployers() []namedDeployer {
	if env.Deployer == nil {
		return nil
	}
	var out []namedDeployer
	for _, k := range []config.StepKind{config.Pod, config.Compose} {
		if d, err := env.Deployer(k); err == nil && d != nil {
			out = append(out, namedDeployer{string(k), d})
		}
	}
	return out
}
