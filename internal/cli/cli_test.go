package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/poststack/poststack/pkg/exitcode"
)

type result struct {
	code           int
	stdout, stderr string
	app            *App
	args           []string // what the executed command received
	target         string   // value of the subcommand's own --target flag
	image          string   // value of the subcommand's --image flag (a Setting)
	stateDir       string   // value of the subcommand's --state-dir flag (Environment)
	allowUndefined bool     // value of the root's own --allow-undefined flag
}

// runApp runs a small binary "ps-test" with a root flag (--allow-undefined),
// a subcommand "up" with its own flags (--target, command line only;
// --image, a Setting; --state-dir, Environment), and exec returning execErr.
func runApp(t *testing.T, dir string, env map[string]string, execErr error, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	app := New("ps-test", Env{
		Getenv: func(k string) string { return env[k] },
		Dir:    dir,
		Stdout: &stdout,
		Stderr: &stderr,
	})
	var res result
	rootFS := flag.NewFlagSet("ps-test", flag.ContinueOnError)
	allow := rootFS.Bool("allow-undefined", false, "substitute empty for undefined variables")
	upFS := flag.NewFlagSet("ps-test up", flag.ContinueOnError)
	target := upFS.String("target", "", "target `version`")
	image := upFS.String("image", "", "image to use")
	app.Fallback(upFS, "image", Setting)
	stateDir := upFS.String("state-dir", "", "where state lives")
	app.Fallback(upFS, "state-dir", Environment)
	up := app.Examples(&ffcli.Command{
		Name:       "up",
		ShortUsage: "ps-test up [flags]",
		ShortHelp:  "bring it up",
		FlagSet:    upFS,
		Exec: func(ctx context.Context, args []string) error {
			res.args = args
			app.Logger.Info("up running", "url", app.Globals.DatabaseURL)
			return execErr
		},
	}, "ps-test up --target 3")
	root := app.Root(&ffcli.Command{
		ShortHelp:   "ps-test: a test binary",
		FlagSet:     rootFS,
		Subcommands: []*ffcli.Command{up},
	}, "ps-test up", "# a comment line\nps-test --json up")
	res.code = app.Run(context.Background(), root, args)
	res.stdout, res.stderr, res.app = stdout.String(), stderr.String(), app
	res.target, res.allowUndefined = *target, *allow
	res.image, res.stateDir = *image, *stateDir
	return res
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestPrecedence(t *testing.T) {
	type files struct{ dotenv, config, configName string }
	tests := []struct {
		name  string
		env   map[string]string
		files files
		args  []string
		check func(t *testing.T, r result)
	}{
		{
			name: "flag beats everything",
			env:  map[string]string{"POSTSTACK_DATABASE_URL": "env"},
			files: files{dotenv: "POSTSTACK_DATABASE_URL=dotenv\n", config: "database_url: config\n",
				configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "--database-url", "flag", "up"},
			check: wantURL("flag"),
		},
		{
			name: "env beats .env and config",
			env:  map[string]string{"POSTSTACK_DATABASE_URL": "env"},
			files: files{dotenv: "POSTSTACK_DATABASE_URL=dotenv\n", config: "database_url: config\n",
				configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "up"},
			check: wantURL("env"),
		},
		{
			name: ".env beats config",
			files: files{dotenv: "OTHER=x\nPOSTSTACK_DATABASE_URL=dotenv\n", config: "database_url: config\n",
				configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "up"},
			check: wantURL("dotenv"),
		},
		{
			name:  "config beats default",
			files: files{config: "database-url: config\n", configName: "c.yml"},
			args:  []string{"--config-file", "c.yml", "up"},
			check: wantURL("config"),
		},
		{
			name:  "default",
			args:  []string{"up"},
			check: wantURL(""),
		},
		{
			name: "config file named by the environment, dotenv style",
			env:  map[string]string{"POSTSTACK_CONFIG_FILE": "poststack.conf"},
			files: files{config: "# comment\nPOSTSTACK_LOG_LEVEL=debug\ndatabase_url=\"config\"\nunknown_key=1\n",
				configName: "poststack.conf"},
			args: []string{"up"},
			check: func(t *testing.T, r result) {
				wantURL("config")(t, r)
				if r.app.Globals.LogLevel != slog.LevelDebug {
					t.Errorf("log level = %v, want DEBUG", r.app.Globals.LogLevel)
				}
			},
		},
		{
			name:  "a config file named in .env is not read",
			files: files{dotenv: "POSTSTACK_CONFIG_FILE=c.yaml\n", config: "database_url: config\n", configName: "c.yaml"},
			args:  []string{"up"},
			check: wantURL(""),
		},
		{
			name: "global flag after the subcommand beats env",
			env:  map[string]string{"POSTSTACK_DATABASE_URL": "env", "POSTSTACK_LOG_LEVEL": "error"},
			args: []string{"up", "--database-url", "flag"},
			check: func(t *testing.T, r result) {
				wantURL("flag")(t, r)
				if r.app.Globals.LogLevel != slog.LevelError {
					t.Errorf("log level = %v, want ERROR from env", r.app.Globals.LogLevel)
				}
			},
		},
		{
			name: "a command's own flags come from its command line only",
			env:  map[string]string{"POSTSTACK_ALLOW_UNDEFINED": "true", "POSTSTACK_TARGET": "5"},
			files: files{dotenv: "POSTSTACK_TARGET=7\nPOSTSTACK_ALLOW_UNDEFINED=true\n",
				config: "target: 9\nallow_undefined: true\n", configName: "c.yaml"},
			args: []string{"--config-file", "c.yaml", "up", "arg1"},
			check: func(t *testing.T, r result) {
				if r.allowUndefined || r.target != "" {
					t.Errorf("allow-undefined=%v target=%q, want false and empty", r.allowUndefined, r.target)
				}
				if strings.Join(r.args, ",") != "arg1" {
					t.Errorf("args = %q", r.args)
				}
			},
		},
		{
			name:  "a flag the command makes a Setting: from the environment, .env and config",
			env:   map[string]string{"POSTSTACK_IMAGE": "env"},
			files: files{dotenv: "POSTSTACK_IMAGE=dotenv\n", config: "image: config\n", configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "up"},
			check: func(t *testing.T, r result) {
				if r.image != "env" {
					t.Errorf("image = %q, want env", r.image)
				}
			},
		},
		{
			name:  "a Setting from .env, then from config",
			files: files{dotenv: "POSTSTACK_IMAGE=dotenv\n", config: "image: config\n", configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "up"},
			check: func(t *testing.T, r result) {
				if r.image != "dotenv" || !r.app.FromProject("image") {
					t.Errorf("image = %q (from project %v), want dotenv", r.image, r.app.FromProject("image"))
				}
			},
		},
		{
			name:  "an Environment flag: from the process environment only",
			env:   map[string]string{"POSTSTACK_STATE_DIR": "/var/env-state"},
			files: files{dotenv: "POSTSTACK_STATE_DIR=/tmp/dotenv-state\n", config: "state_dir: /tmp/config\n", configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "up"},
			check: func(t *testing.T, r result) {
				if r.stateDir != "/var/env-state" || r.app.FromProject("state-dir") {
					t.Errorf("state-dir = %q, want /var/env-state", r.stateDir)
				}
			},
		},
		{
			name:  "an Environment flag is never read from .env or config",
			files: files{dotenv: "POSTSTACK_STATE_DIR=/tmp/dotenv-state\n", config: "state_dir: /tmp/config\n", configName: "c.yaml"},
			args:  []string{"--config-file", "c.yaml", "up"},
			check: func(t *testing.T, r result) {
				if r.stateDir != "" {
					t.Errorf("state-dir = %q, want empty", r.stateDir)
				}
			},
		},
		{
			name:  "output switches are not settings",
			env:   map[string]string{"POSTSTACK_JSON": "true", "POSTSTACK_QUIET": "true"},
			files: files{dotenv: "POSTSTACK_JSON=true\n"},
			args:  []string{"up"},
			check: func(t *testing.T, r result) {
				if r.app.Globals.JSON || r.app.Globals.Quiet {
					t.Errorf("json=%v quiet=%v, want both false", r.app.Globals.JSON, r.app.Globals.Quiet)
				}
			},
		},
		{
			name:  "a database URL from .env ranks below the environment, and says so",
			env:   map[string]string{"POSTSTACK_DATABASE_URL": "env"},
			files: files{dotenv: "POSTSTACK_DATABASE_URL=dotenv\n"},
			args:  []string{"up"},
			check: func(t *testing.T, r result) {
				wantURL("env")(t, r)
				if r.app.FromProject("database-url") {
					t.Error("FromProject(database-url) = true for an environment value")
				}
			},
		},
		{
			name: "typed values from YAML and defaults",
			files: files{config: "postgres_host_port: 5433\njson: true\ncontainer_runtime: Docker\nlog_level: WARN\n",
				configName: "c.yaml"},
			args: []string{"--config-file", "c.yaml", "up"},
			check: func(t *testing.T, r result) {
				g := r.app.Globals
				if g.PostgresHostPort != 5433 || g.JSON || g.ContainerRuntime != "docker" || g.LogLevel != slog.LevelWarn {
					t.Errorf("globals = %+v", g)
				}
				if g.MigrationsPath != "./migrations" || g.ProjectContainerNetwork != "bridge" ||
					g.ProjectContainerRestartPolicy != "unless-stopped" || g.LogDir != "logs" ||
					g.ProjectContainerPrefix != "myproject" || g.ProjectContainersPath != "./containers" {
					t.Errorf("defaults = %+v", g)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "myproject")
			os.Mkdir(dir, 0o755)
			if tt.files.dotenv != "" {
				writeFile(t, filepath.Join(dir, ".env"), tt.files.dotenv)
			}
			if tt.files.config != "" {
				writeFile(t, filepath.Join(dir, tt.files.configName), tt.files.config)
			}
			r := runApp(t, dir, tt.env, nil, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			tt.check(t, r)
		})
	}
}

func wantURL(want string) func(*testing.T, result) {
	return func(t *testing.T, r result) {
		t.Helper()
		if got := r.app.Globals.DatabaseURL; got != want {
			t.Errorf("database URL = %q, want %q", got, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name   string
		env    map[string]string
		dotenv string
		config string // written to c.yaml
		args   []string
		stderr string // regexp, whole output
	}{
		{"unknown flag", nil, "", "", []string{"--bogus", "up"},
			`^ps-test: flag provided but not defined: -bogus \(see 'ps-test --help'\)\n$`},
		{"unknown subcommand flag", nil, "", "", []string{"up", "--bogus"},
			`^ps-test: flag provided but not defined: -bogus \(see 'ps-test up --help'\)\n$`},
		{"unknown flag after an argument", nil, "", "", []string{"up", "a", "--bogus"},
			`^ps-test: flag provided but not defined: -bogus \(see 'ps-test up --help'\)\n$`},
		{"bad log level after an argument", nil, "", "", []string{"up", "a", "--log-level", "loud"},
			`^ps-test: invalid value "loud" for flag -log-level: unknown log level "loud" \(want debug, info, warn or error\) \(see 'ps-test up --help'\)\n$`},
		{"unknown command", nil, "", "", []string{"frob"},
			`^ps-test: unknown command "frob" \(see 'ps-test --help'\)\n$`},
		{"missing command", nil, "", "", nil, `(?s)^ps-test: a test binary\n.*EXAMPLES.*\nps-test: missing command`},
		{"bad log level flag", nil, "", "", []string{"--log-level", "loud", "up"},
			`^ps-test: invalid value "loud" for flag -log-level: unknown log level "loud" \(want debug, info, warn or error\) \(see 'ps-test --help'\)\n$`},
		{"bad log level env", map[string]string{"POSTSTACK_LOG_LEVEL": "trace"}, "", "", []string{"up"},
			`^ps-test: environment: invalid value "trace" for --log-level: unknown log level "trace" \(want debug, info, warn or error\)\n$`},
		{"port zero", nil, "", "", []string{"--postgres-host-port", "0", "up"}, `^ps-test: invalid value "0" for flag -postgres-host-port: port "0" out of range`},
		{"port too big in .env", nil, "POSTSTACK_POSTGRES_HOST_PORT=70000\n", "", []string{"up"},
			`^ps-test: .*/\.env: invalid value "70000" for --postgres-host-port: port "70000" out of range \(want 1-65535\)\n$`},
		{"port not a number in config", nil, "", "postgres_host_port: abc\n", []string{"--config-file", "c.yaml", "up"},
			`^ps-test: .*/c\.yaml: invalid value "abc" for --postgres-host-port`},
		{"unknown runtime", map[string]string{"POSTSTACK_CONTAINER_RUNTIME": "lxc"}, "", "", []string{"up"},
			`^ps-test: environment: invalid value "lxc" for --container-runtime: unknown value "lxc" \(want podman or docker\)\n$`},
		{"missing config file", nil, "", "", []string{"--config-file", "nope.yaml", "up"},
			`^ps-test: config file: .*nope\.yaml: no such file or directory\n$`},
		{"config file not a mapping", nil, "", "- a\n- b\n", []string{"--config-file", "c.yaml", "up"},
			`^ps-test: config file .*c\.yaml: line 1: want a mapping`},
		{"config file nested value", nil, "", "database_url:\n  a: b\n", []string{"--config-file", "c.yaml", "up"},
			`^ps-test: config file .*c\.yaml: line 2: database_url: want a plain value\n$`},
		{"bad .env", nil, "POSTSTACK_LOG_LEVEL='unterminated\n", "", []string{"up"}, `^ps-test: .*\.env: `},
		{"log dir outside the project from .env", nil, "POSTSTACK_LOG_DIR=/tmp/elsewhere\n", "", []string{"up"},
			`^ps-test: log-dir "/tmp/elsewhere" \(from \.env or the config file\) is outside the project .*; give it on the command line or as POSTSTACK_LOG_DIR in the environment\n$`},
		{"log dir escaping with .. from config", nil, "", "log_dir: ../../x\n", []string{"--config-file", "c.yaml", "up"},
			`^ps-test: log-dir "\.\./\.\./x" \(from \.env or the config file\) is outside the project`},
		{"migrations path outside the project from .env", nil, "POSTSTACK_MIGRATIONS_PATH=/etc\n", "", []string{"up"},
			`^ps-test: migrations-path "/etc" \(from \.env or the config file\) is outside the project`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.dotenv != "" {
				writeFile(t, filepath.Join(dir, ".env"), tt.dotenv)
			}
			if tt.config != "" {
				writeFile(t, filepath.Join(dir, "c.yaml"), tt.config)
			}
			r := runApp(t, dir, tt.env, nil, tt.args...)
			if r.code != exitcode.Usage {
				t.Errorf("exit %d, want 2", r.code)
			}
			if !regexp.MustCompile(tt.stderr).MatchString(r.stderr) {
				t.Errorf("stderr = %q\nwant match %s", r.stderr, tt.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.stdout)
			}
			if r.args != nil {
				t.Error("the command ran despite a usage error")
			}
		})
	}
}

// A checkout's .env can be a symbolic link to a secret of the user's, or a FIFO: it is refused
// (exit 2) without its target's content reaching any output, and without blocking.
func TestAttackHostileDotEnv(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "id_ed25519")
	writeFile(t, outside, "POSTSTACK_LOG_LEVEL=TOPSECRET-KEY\n")
	tests := []struct {
		name string
		make func(t *testing.T, dotenv string)
		want string
	}{
		{"symlink out of the project", func(t *testing.T, dotenv string) {
			if err := os.Symlink(outside, dotenv); err != nil {
				t.Fatal(err)
			}
		}, "outside the project"},
		{"FIFO", func(t *testing.T, dotenv string) {
			if err := syscall.Mkfifo(dotenv, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a regular file"},
		{"symlink to /dev/zero", func(t *testing.T, dotenv string) {
			if err := os.Symlink("/dev/zero", dotenv); err != nil {
				t.Fatal(err)
			}
		}, ".env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.make(t, filepath.Join(dir, ".env"))
			r := runApp(t, dir, nil, nil, "up")
			if r.code != exitcode.Usage || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stderr, "TOPSECRET") {
				t.Errorf("exit %d stderr %q, want 2 naming %q without the secret", r.code, r.stderr, tt.want)
			}
			if r.args != nil {
				t.Error("the command ran")
			}
		})
	}
}

func TestVersionEnvDoesNotBreak(t *testing.T) {
	// A project may well have POSTSTACK_VERSION=2.1 in its .env.
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, ".env"), "POSTSTACK_VERSION=2.1\n")
	r := runApp(t, dir, map[string]string{"POSTSTACK_VERSION": "2.1"}, nil, "up")
	if r.code != 0 || r.stdout != "" {
		t.Errorf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string
		not  []string
	}{
		{[]string{"--help"}, []string{"ps-test: a test binary\n", "USAGE\n  ps-test [flags] <command> [args...]",
			"COMMANDS\n  up  bring it up", "--database-url URL", "--allow-undefined", "--log-level level",
			"(default INFO)", "POSTSTACK_LOG_LEVEL", "EXAMPLES\n  ps-test up\n  # a comment line\n  ps-test --json up\n"}, nil},
		{[]string{"-h"}, []string{"EXAMPLES"}, nil},
		{[]string{"up", "--help"}, []string{"USAGE\n  ps-test up [flags]", "--target version", "global flags",
			"EXAMPLES\n  ps-test up --target 3\n", "image to use [env POSTSTACK_IMAGE, .env, config]",
			"where state lives [env POSTSTACK_STATE_DIR]"},
			[]string{"--database-url", "--allow-undefined", "POSTSTACK_TARGET"}},
		{[]string{"--help"}, []string{"(default INFO) [env, .env, config]", "[env POSTSTACK_CONFIG_FILE]", "[env POSTSTACK_CONFIG_FILE]"},
			[]string{"POSTSTACK_ALLOW_UNDEFINED", "print results as JSON ["}},
		{[]string{"--json", "up", "-help", "--target", "x"}, []string{"--target version"}, nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runApp(t, t.TempDir(), nil, nil, tt.args...)
			if r.code != 0 {
				t.Errorf("exit %d, want 0", r.code)
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q", r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("help lacks %q:\n%s", w, r.stdout)
				}
			}
			for _, w := range tt.not {
				if strings.Contains(r.stdout, w) {
					t.Errorf("help has %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	r := runApp(t, t.TempDir(), nil, nil, "--version")
	if r.code != 0 || !regexp.MustCompile(`^ps-test \S+ \(\S+, go\S+\)\n$`).MatchString(r.stdout) {
		t.Errorf("exit %d stdout %q", r.code, r.stdout)
	}
	// --version wins over a missing command and never reads config.
	r = runApp(t, t.TempDir(), map[string]string{"POSTSTACK_LOG_LEVEL": "bad"}, nil, "--config-file", "missing", "--version")
	if r.code != 0 || r.stderr != "" {
		t.Errorf("exit %d stderr %q", r.code, r.stderr)
	}

	tests := []struct {
		name    string
		stamped string
		info    *debug.BuildInfo
		want    string
	}{
		{"no info", "", nil, "ps-x dev (unknown, " + runtime.Version() + ")"},
		{"devel", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}},
			"ps-x dev (0123456789ab, go1.26.8)"},
		{"module version, dirty", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}},
			"ps-x v1.2.0 (abc-dirty, go1.26.8)"},
		{"ldflags stamp wins", "v9.9.9", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}},
			"ps-x v9.9.9 (unknown, go1.26.8)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatVersion("ps-x", tt.stamped, tt.info); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		stderr string
	}{
		{"ok", nil, 0, ""},
		{"failure", errors.New("engine exploded"), 1, "ps-test: engine exploded\n"},
		{"check", exitcode.Checkf("2 undefined variables"), 3, "ps-test: 2 undefined variables\n"},
		{"multi-line", fmt.Errorf("migration 0002_x.sql:3:7: syntax error\n  SELEC 1;\n  ^"), 1,
			"ps-test: migration 0002_x.sql:3:7: syntax error\n  SELEC 1;\n  ^\n"},
		{"already reported", exitcode.With(exitcode.Check, ErrReported), 3, ""},
		{"timeout", fmt.Errorf("wait: %w", context.DeadlineExceeded), 4, "ps-test: wait: context deadline exceeded\n"},
		{"secret masked", errors.New("connect postgres://u:s3cret@h/db: refused"), 1, "ps-test: connect postgres://u:****@h/db: refused\n"},
		{"help from exec", flag.ErrHelp, 2, "ps-test up"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runApp(t, t.TempDir(), nil, tt.err, "--database-url", "postgres://u:s3cret@h/db", "up")
			if r.code != tt.code {
				t.Errorf("exit %d, want %d", r.code, tt.code)
			}
			// INFO log line first, then the error.
			got := strings.TrimPrefix(r.stderr, "info: up running url=postgres://u:****@h/db\n")
			if tt.name == "help from exec" {
				if !strings.Contains(got, tt.stderr) {
					t.Errorf("stderr = %q, want usage", r.stderr)
				}
				return
			}
			if got != tt.stderr {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.stderr)
			}
			if strings.Contains(r.stderr, "s3cret") {
				t.Error("password leaked")
			}
		})
	}
}

func TestInterrupt(t *testing.T) {
	var stderr bytes.Buffer
	app := New("ps-test", Env{Getenv: func(string) string { return "" }, Dir: t.TempDir(), Stderr: &stderr})
	root := app.Root(&ffcli.Command{Exec: func(ctx context.Context, _ []string) error {
		if err := syscall.Kill(syscall.Getpid(), syscall.SIGINT); err != nil {
			return err
		}
		<-ctx.Done()
		return fmt.Errorf("waiting for postgres: %w", ctx.Err())
	}})
	if code := app.Run(context.Background(), root, nil); code != exitcode.Interrupted {
		t.Errorf("exit %d, want 130", code)
	}
	if stderr.String() != "ps-test: interrupted\n" {
		t.Errorf("stderr = %q", stderr.String())
	}
}

func TestNoColorAndQuiet(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		noColor bool
		logged  bool
	}{
		{"default", nil, []string{"up"}, false, true},
		{"NO_COLOR", map[string]string{"NO_COLOR": "1"}, []string{"up"}, true, true},
		{"TERM=dumb", map[string]string{"TERM": "dumb"}, []string{"up"}, true, true},
		{"--no-color", nil, []string{"--no-color", "up"}, true, true},
		{"POSTSTACK_NO_COLOR is no setting", map[string]string{"POSTSTACK_NO_COLOR": "true"}, []string{"up"}, false, true},
		{"--quiet hides info", nil, []string{"--quiet", "up"}, false, false},
		{"--log-level error hides info", nil, []string{"up", "--log-level", "ERROR"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runApp(t, t.TempDir(), tt.env, nil, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if r.app.Globals.NoColor != tt.noColor {
				t.Errorf("NoColor = %v, want %v", r.app.Globals.NoColor, tt.noColor)
			}
			if strings.Contains(r.stderr, "\x1b[") {
				t.Errorf("colour in non-TTY output: %q", r.stderr)
			}
			if got := strings.Contains(r.stderr, "info: up running"); got != tt.logged {
				t.Errorf("info logged = %v, want %v: %q", got, tt.logged, r.stderr)
			}
		})
	}
}

func TestFileLog(t *testing.T) {
	t.Run("no logs dir, nothing created", func(t *testing.T) {
		dir := t.TempDir()
		runApp(t, dir, nil, nil, "up")
		if _, err := os.Stat(filepath.Join(dir, "logs")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("logs/ created: %v", err)
		}
	})
	t.Run("existing logs dir is used", func(t *testing.T) {
		dir := t.TempDir()
		os.Mkdir(filepath.Join(dir, "logs"), 0o700)
		runApp(t, dir, nil, nil, "--database-url", "postgres://u:pw123@h/d", "up")
		b, err := os.ReadFile(filepath.Join(dir, "logs", "poststack.log"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"msg":"up running"`) || strings.Contains(string(b), "pw123") {
			t.Errorf("log = %s", b)
		}
	})
	t.Run("explicit log dir is created", func(t *testing.T) {
		dir := t.TempDir()
		r := runApp(t, dir, map[string]string{"POSTSTACK_LOG_DIR": "var/log"}, nil, "up")
		if !r.app.Globals.LogDirExplicit {
			t.Error("LogDirExplicit not set")
		}
		if _, err := os.Stat(filepath.Join(dir, "var", "log", "poststack.log")); err != nil {
			t.Error(err)
		}
	})
}

func TestGitHubActions(t *testing.T) {
	var stderr bytes.Buffer
	env := map[string]string{"GITHUB_ACTIONS": "true"}
	app := New("ps-x", Env{Getenv: func(k string) string { return env[k] }, Dir: t.TempDir(), Stderr: &stderr})
	root := app.Root(&ffcli.Command{Exec: func(context.Context, []string) error {
		app.AddSecret("gen\npass")
		app.Progress.Start("postgres pw123")
		app.Progress.Step("waiting")
		app.Progress.Done("postgres pw123", nil)
		return nil
	}})
	code := app.Run(context.Background(), root, []string{"--database-url", "postgres://u:pw123@h/d"})
	want := "::add-mask::pw123\n::add-mask::gen%250Apass\n::add-mask::gen\n::add-mask::pass\n::group::postgres ****\nwaiting\n::endgroup::\n"
	if code != 0 || stderr.String() != want {
		t.Errorf("exit %d stderr\n%q\nwant\n%q", code, stderr.String(), want)
	}
}

func TestSubcommandWithoutFlagSet(t *testing.T) {
	var stdout bytes.Buffer
	app := New("ps-x", Env{Dir: t.TempDir(), Stdout: &stdout})
	ran := false
	root := app.Root(&ffcli.Command{Subcommands: []*ffcli.Command{{
		Name: "ls",
		Exec: func(context.Context, []string) error { ran = app.Globals.JSON; return nil },
	}}})
	if code := app.Run(context.Background(), root, []string{"ls", "--json"}); code != 0 || !ran {
		t.Errorf("exit %d ran %v", code, ran)
	}
}

func TestExitOnErrorFlagSetRejected(t *testing.T) {
	var stderr bytes.Buffer
	app := New("ps-x", Env{Dir: t.TempDir(), Stderr: &stderr})
	root := app.Root(&ffcli.Command{Subcommands: []*ffcli.Command{{
		Name: "ls", FlagSet: flag.NewFlagSet("ls", flag.ExitOnError),
		Exec: func(context.Context, []string) error { return nil },
	}}})
	if code := app.Run(context.Background(), root, []string{"ls"}); code != 1 || !strings.Contains(stderr.String(), "ContinueOnError") {
		t.Errorf("exit %d stderr %q", code, stderr.String())
	}
}

// TestInterspersedFlags: a command's flags mean the same after its positional arguments as
// before them (ps-env up dev --only db), up to a "--"; they are parsed before the fallbacks
// and the logger are settled, so --log-level after an argument counts and a flag there still
// beats the environment.
func TestInterspersedFlags(t *testing.T) {
	tests := []struct {
		args       []string
		wantArgs   []string
		wantTarget string
	}{
		{[]string{"up", "a", "--target", "3", "b"}, []string{"a", "b"}, "3"},
		{[]string{"up", "a", "--target=3"}, []string{"a"}, "3"},
		{[]string{"up", "--target", "1", "a", "--target", "2"}, []string{"a"}, "2"},
		{[]string{"up", "a", "-", "b"}, []string{"a", "-", "b"}, ""},
		{[]string{"up", "a", "--", "--target", "3"}, []string{"a", "--target", "3"}, ""},
		{[]string{"up", "--target", "3", "--", "-a", "--target", "4"}, []string{"-a", "--target", "4"}, "3"},
		{[]string{"up", "a", "--target", "3", "--", "--b"}, []string{"a", "--b"}, "3"},
		{[]string{"up", "a", "--target", "--"}, []string{"a"}, "--"}, // a value, not the end of the flags
		{[]string{"up"}, nil, ""},
	}
	for _, tt := range tests {
		r := runApp(t, t.TempDir(), nil, nil, tt.args...)
		if r.code != exitcode.OK {
			t.Errorf("%q: exit %d, stderr %q", tt.args, r.code, r.stderr)
			continue
		}
		if strings.Join(r.args, "|") != strings.Join(tt.wantArgs, "|") || r.target != tt.wantTarget {
			t.Errorf("%q: the command got %q with --target %q, want %q with %q", tt.args, r.args, r.target, tt.wantArgs, tt.wantTarget)
		}
	}

	r := runApp(t, t.TempDir(), map[string]string{"POSTSTACK_IMAGE": "from-env"}, nil, "up", "a", "--image", "from-flag", "--log-level", "debug")
	if r.code != exitcode.OK || r.image != "from-flag" {
		t.Errorf("exit %d, --image %q: want the flag after the argument to beat the environment", r.code, r.image)
	}
	if !r.app.Logger.Enabled(context.Background(), slog.LevelDebug) {
		t.Error("--log-level debug after an argument did not reach the logger")
	}

	r = runApp(t, t.TempDir(), nil, nil, "up", "a", "--help")
	if r.code != exitcode.OK || !strings.Contains(r.stdout, "ps-test up [flags]") || r.stderr != "" || r.args != nil {
		t.Errorf("up a --help: exit %d, stdout %q, stderr %q, ran: %v; want the help on stdout, exit 0", r.code, r.stdout, r.stderr, r.args != nil)
	}
}
