package main

import (
	"context"
	"sync"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/deploy/compose"
	"github.com/poststack/poststack/pkg/deploy/kube"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// deployers returns the deployer of each kind of file on eng, each made once, on first use.
func deployers(ctx context.Context, app *cli.App, eng *engine.Engine) func(config.StepKind) (deploy.Deployer, error) {
	var mu sync.Mutex
	made := map[config.StepKind]deploy.Deployer{}
	return func(kind config.StepKind) (deploy.Deployer, error) {
		mu.Lock()
		defer mu.Unlock()
		if d := made[kind]; d != nil {
			return d, nil
		}
		var d deploy.Deployer
		var err error
		switch kind {
		case config.Pod:
			d, err = kube.New(eng)
		case config.Compose:
			var f *compose.Frontend
			if f, err = compose.Detect(ctx, eng, app.Env.Environ); err == nil {
				d = compose.New(f, eng)
			}
		default:
			err = exitcode.Usagef("%s files are not supported", kind)
		}
		if err != nil {
			return nil, err
		}
		made[kind] = d
		return d, nil
	}
}
