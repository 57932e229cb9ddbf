// Command ps-build builds the base, postgres and project container images
// in dependency order.
package main

import (
	"context"
	"io"
	"os"

	"github.com/poststack/poststack/internal/cli"
)

func main() { os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return runEnv(ctx, args, cli.OSEnv(stdin, stdout, stderr))
}

// runEnv is run with the process environment passed in, for tests.
func runEnv(ctx context.Context, args []string, env cli.Env) int {
	app := cli.New("ps-build", env)
	return app.Run(ctx, newRoot(app), args)
}
