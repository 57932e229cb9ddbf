package cli_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/internal/cli"
)

// A binary's run function: build the App, a command tree whose Exec
// functions close over it, and hand both to Run. Mains pass
// cli.OSEnv(os.Stdin, os.Stdout, os.Stderr) instead of a hand-made Env.
// A command's own flags come from its command line only, unless it opts a
// harmless one in with Fallback; the global settings (--log-level) also
// come from the environment, .env and --config-file.
func Example() {
	var stdout, stderr bytes.Buffer
	env := map[string]string{"POSTSTACK_ALLOW_UNDEFINED": "true", "POSTSTACK_IMAGE": "app:1", "POSTSTACK_LOG_LEVEL": "warn"}
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	app := cli.New("ps-subst", cli.Env{
		Getenv: func(k string) string { return env[k] },
		Dir:    dir,
		Stdout: &stdout,
		Stderr: &stderr,
	})
	fs := flag.NewFlagSet("ps-subst", flag.ContinueOnError)
	allow := fs.Bool("allow-undefined", false, "substitute empty for undefined variables")
	image := fs.String("image", "", "image to render for")
	app.Fallback(fs, "image", cli.Setting)
	root := app.Root(&ffcli.Command{
		ShortUsage: "ps-subst [flags] [file...]",
		ShortHelp:  "ps-subst: substitute ${VAR} into text",
		FlagSet:    fs,
		Exec: func(ctx context.Context, args []string) error {
			app.Logger.Debug("substituting", "files", args)
			fmt.Fprintf(app.Env.Stdout, "allow-undefined=%v image=%s log-level=%v json=%v files=%v\n",
				*allow, *image, app.Globals.LogLevel, app.Globals.JSON, args)
			return nil
		},
	}, "ps-subst < pod.yaml | podman kube play -")
	code := app.Run(context.Background(), root, []string{"--json", "a.yaml"})
	fmt.Print(stdout.String(), stderr.String(), "exit ", code, "\n")
	// Output:
	// allow-undefined=false image=app:1 log-level=WARN json=true files=[a.yaml]
	// exit 0
}
