package lifecycle

import (
	"context"
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
	if env.Engine == nil {
		if env.External() && env.EngineErr == nil {
			return res, nil // nothing of ours can run
		}
		return res, env.noEngine()
	}
	// One listing says what there is to remove, so that a deployer whose kind made nothing (and
	// a compose front-end that is not even needed) is not asked.
	all, err := env.Engine.ListContainers(ctx, map[string]string{deploy.LabelProject: env.ProjectName(), deploy.LabelEnvironment: env.Name()})
	if err != nil {
		return res, err
	}
	kinds := map[config.StepKind]bool{}
	dbExists := false
	for _, c := range all {
		switch {
		case c.Name == env.Postgres.Container:
			dbExists = true
		case c.Labels[composeProjectLabel] != "":
			kinds[config.Compose] = true
			res.Containers = append(res.Containers, c.Name)
		default:
			kinds[config.Pod] = true
			res.Containers = append(res.Containers, c.Name)
		}
	}
	for _, k := range []config.StepKind{config.Pod, config.Compose} {
		if !kinds[k] {
			continue
		}
		err := step(fn, "remove "+string(k)+" units", func() error {
			d, err := env.deployer(k)
			if err != nil {
				return err
			}
			return d.RemoveAll(ctx, env.ProjectName(), env.Name())
		})
		if err != nil {
			return res, err
		}
	}
	if env.External() {
		return res, nil
	}
	err = step(fn, "database", func() error {
		if err := pgenv.Remove(ctx, env.Engine, env.Postgres, volumes); err != nil {
			return err
		}
		if dbExists {
			res.Database = env.Postgres.Container
		}
		res.VolumeRemoved = volumes
		res.Volume = env.Postgres.Volume
		return nil
	})
	return res, err
}

// composeProjectLabel marks the containers a compose front-end made.
const composeProjectLabel = "com.docker.compose.project"

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
