package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/pgenv"
)

// hcEngine is one real engine as these tests drive it: its CLI, the DOCKER_HOST that points
// poststack at it, and the environment that pins the docker CLI to the daemon testenv found.
type hcEngine struct {
	name, cli, host string
	environ         []string
}

func hcEngineFor(t *testing.T, name string) hcEngine {
	t.Helper()
	e := hcEngine{name: name, cli: engineCLI(t, name), environ: os.Environ()}
	if name == testenv.EnginePodman {
		e.host = testenv.PodmanSocket(t)
	} else {
		e.host = testenv.Docker(t)
		e.environ = append(e.environ, "DOCKER_HOST="+e.host)
	}
	return e
}

// cmd runs the engine's CLI and returns its trimmed stdout.
func (e hcEngine) cmd(ctx context.Context, args ...string) (string, error) {
	c := exec.CommandContext(ctx, e.cli, args...)
	c.Env = e.environ
	out, err := c.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return "", errors.New(e.name + " " + strings.Join(args, " ") + ": " + string(ee.Stderr))
	}
	return strings.TrimSpace(string(out)), err
}

// stranger starts a container that is not poststack's: the base image sleeping, with the
// given extra `run` arguments (labels). It is removed when the test ends.
func (e hcEngine) stranger(t *testing.T, ctx context.Context, name string, running bool, extra ...string) {
	t.Helper()
	t.Cleanup(func() { _, _ = e.cmd(context.Background(), "rm", "-f", name) })
	args := append([]string{"run", "-d", "--name", name}, extra...)
	cmd := []string{"sleep", "infinity"}
	if !running {
		cmd = []string{"true"}
	}
	if _, err := e.cmd(ctx, append(append(args, testenv.BaseImage(t, e.name)), cmd...)...); err != nil {
		t.Fatal(err)
	}
	if !running {
		if _, err := e.cmd(ctx, "wait", name); err != nil {
			t.Fatal(err)
		}
	}
}

// state is the stranger's state as the engine reports it ("running", "exited"), or "" when it
// is gone.
func (e hcEngine) state(ctx context.Context, kind, name string) string {
	format := "{{.State.Status}}"
	if kind != "container" {
		format = "{{.Name}}"
	}
	out, err := e.cmd(ctx, kind, "inspect", "--format", format, name)
	if err != nil {
		return ""
	}
	return out
}

// hcForge writes a record as a repository could ship it in the state directory.
func hcForge(t *testing.T, stateDir string, rec map[string]any) string {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(stateDir, rec["id"].(string)+".json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestHostileEphemeralRecordsLeaveStrangers forges ephemeral state records that name containers
// poststack did not make for them, next to one real instance: a stranger by its own name, a
// stranger that took an ephemeral container's name, one that also copied the ID label (but
// cannot know the key), a stopped one (list used to remove stopped containers), and a name
// that reads as a flag (`rm -f --all`). list, down --all and down ID must act on ours only:
// each forged record is reported ("not ours: left alone", exit 2) and dropped, and every
// stranger is exactly as it was.
func TestHostileEphemeralRecordsLeaveStrangers(t *testing.T) {
	for _, name := range pgEngines {
		t.Run(name, func(t *testing.T) {
			eng := hcEngineFor(t, name)
			builtinImagesBuilt(t, name)
			ctx := testContext(t, 5*time.Minute)
			e := newEphemeralEnv(t, "DOCKER_HOST="+eng.host)

			tag := randomHex(t, 4)
			own := "pse-stranger-" + tag
			idTaken, idLabel, idStopped, idOwn, idFlag := tag+"01", tag+"02", tag+"03", tag+"04", tag+"05"
			strangers := map[string]string{ // name → the state it must keep
				own:                                "running",
				"poststack-ephemeral-" + idTaken:   "running",
				"poststack-ephemeral-" + idLabel:   "running",
				"poststack-ephemeral-" + idStopped: "exited",
			}
			eng.stranger(t, ctx, own, true)
			eng.stranger(t, ctx, "poststack-ephemeral-"+idTaken, true)
			eng.stranger(t, ctx, "poststack-ephemeral-"+idLabel, true, "--label", "io.poststack.ephemeral="+idLabel)
			eng.stranger(t, ctx, "poststack-ephemeral-"+idStopped, false)

			dockerHost := ""
			if name == testenv.EngineDocker {
				dockerHost = eng.host
			}
			record := func(id, container string) map[string]any {
				return map[string]any{
					"id": id, "provider": "container", "created": time.Now().UTC(), "port": 1, "detached": true,
					"url":       "postgres://postgres:guessed@127.0.0.1:1/postgres?sslmode=disable",
					"container": container, "engine": name, "docker_host": dockerHost,
				}
			}
			forged := []map[string]any{
				record(idOwn, own),
				record(idTaken, "poststack-ephemeral-"+idTaken),
				record(idLabel, "poststack-ephemeral-"+idLabel),
				record(idStopped, "poststack-ephemeral-"+idStopped),
				record(idFlag, "--all"),
			}
			forgeAll := func() []string {
				var paths []string
				for _, r := range forged {
					paths = append(paths, hcForge(t, e.state, r))
				}
				return paths
			}
			check := func(step string, stderr string, code int, paths []string) {
				t.Helper()
				if code != exitcode.Usage {
					t.Errorf("%s: exit %d, want 2\n%s", step, code, stderr)
				}
				for _, p := range paths {
					if !strings.Contains(stderr, "record "+p+": ") {
						t.Errorf("%s: stderr does not name %s:\n%s", step, p, stderr)
					}
					if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
						t.Errorf("%s: the forged record %s was kept", step, p)
					}
				}
				if n := strings.Count(stderr, "not ours: left alone"); n != len(paths) {
					t.Errorf("%s: %d records reported as not ours, want %d:\n%s", step, n, len(paths), stderr)
				}
				for s, want := range strangers {
					if got := eng.state(ctx, "container", s); got != want {
						t.Errorf("%s: stranger %s is %q, want %q", step, s, got, want)
					}
				}
			}

			out := e.mustRun(ctx, t, "up", "--provider", "container", "--json")
			var ours ephInstance
			if err := json.Unmarshal([]byte(out), &ours); err != nil {
				t.Fatalf("up --json = %s (%v)", out, err)
			}

			paths := forgeAll()
			stdout, stderr, code := e.run(ctx, t, "list", "--json")
			check("list", stderr, code, paths)
			var listed []ephInstance
			if err := json.Unmarshal([]byte(stdout), &listed); err != nil || len(listed) != 1 || listed[0].ID != ours.ID {
				t.Errorf("list printed %s (%v); want our instance only", stdout, err)
			}

			paths = forgeAll()
			stdout, stderr, code = e.run(ctx, t, "down", "--all")
			check("down --all", stderr, code, paths)
			if stdout != "stopped "+ours.ID+" (container)\n" {
				t.Errorf("down --all printed %q; want our instance stopped", stdout)
			}
			if got := eng.state(ctx, "container", ours.Container); got != "" {
				t.Errorf("our container %s survived down --all: %s", ours.Container, got)
			}

			for i, p := range forgeAll() {
				_, stderr, code := e.run(ctx, t, "down", forged[i]["id"].(string))
				check("down "+forged[i]["id"].(string), stderr, code, []string{p})
			}
			e.assertNothingLeft(t)
		})
	}
}

// TestHostilePgenvStrangers puts a stranger's container, volume or network where an
// environment's Postgres would have its own, without poststack's labels: Up, Stop, Remove and
// Status refuse with exit 2 naming it, create nothing, and leave the stranger as it was.
func TestHostilePgenvStrangers(t *testing.T) {
	for _, name := range pgEngines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			he := hcEngineFor(t, name)
			eng, err := engine.New(name, engine.WithEnviron(he.environ))
			if err != nil {
				t.Fatal(err)
			}
			ctx := testContext(t, 3*time.Minute)
			project := "pgh" + randomHex(t, 4)
			s := pgenvSpec(t, eng, project, "dev")
			container, network, volume := project+"-dev-postgres", project+"-dev", project+"-dev-pgdata"

			refuse := func(step, kind, name string, call func() error) {
				t.Helper()
				err := call()
				if exitcode.Of(err) != exitcode.Usage || err == nil || !strings.Contains(err.Error(), "a "+kind+" named "+name+" exists but does not belong") {
					t.Errorf("%s with a stranger %s: %v (exit %d); want exit 2 naming it", step, kind, err, exitcode.Of(err))
				}
			}
			calls := []struct {
				step string
				call func() error
			}{
				{"Up", func() error { _, err := pgenv.Up(ctx, eng, s, nil); return err }},
				{"Remove --volumes", func() error { return pgenv.Remove(ctx, eng, s, true) }},
			}
			absent := func(step string, objects map[string]string) {
				t.Helper()
				for n, kind := range objects {
					if got := he.state(ctx, kind, n); got != "" {
						t.Errorf("%s: %s %s was created", step, kind, n)
					}
				}
			}

			t.Run("container", func(t *testing.T) {
				he.stranger(t, ctx, container, true)
				for _, c := range append(calls, struct {
					step string
					call func() error
				}{"Stop", func() error { return pgenv.Stop(ctx, eng, s) }}, struct {
					step string
					call func() error
				}{"Status", func() error { _, err := pgenv.Status(ctx, eng, s); return err }}, struct {
					step string
					call func() error
				}{"Remove", func() error { return pgenv.Remove(ctx, eng, s, false) }}) {
					refuse(c.step, "container", container, c.call)
					if got := he.state(ctx, "container", container); got != "running" {
						t.Errorf("%s: the stranger container is %q, want running", c.step, got)
					}
					absent(c.step, map[string]string{network: "network", volume: "volume"})
				}
			})
			t.Run("volume", func(t *testing.T) {
				t.Cleanup(func() { _, _ = he.cmd(context.Background(), "volume", "rm", "-f", volume) })
				if _, err := he.cmd(ctx, "volume", "create", volume); err != nil {
					t.Fatal(err)
				}
				for _, c := range calls {
					refuse(c.step, "volume", volume, c.call)
					if he.state(ctx, "volume", volume) == "" {
						t.Errorf("%s: the stranger volume is gone", c.step)
					}
					absent(c.step, map[string]string{container: "container", network: "network"})
				}
			})
			t.Run("network", func(t *testing.T) {
				t.Cleanup(func() { _, _ = he.cmd(context.Background(), "network", "rm", network) })
				if _, err := he.cmd(ctx, "network", "create", network); err != nil {
					t.Fatal(err)
				}
				for _, c := range calls {
					refuse(c.step, "network", network, c.call)
					if he.state(ctx, "network", network) == "" {
						t.Errorf("%s: the stranger network is gone", c.step)
					}
					absent(c.step, map[string]string{container: "container", volume: "volume"})
				}
			})
		})
	}
}

// hcRecordingPath puts a podman or docker in a directory first on PATH that appends its
// arguments (one line per run) to a log before it execs the real CLI, and returns the PATH
// value and the log.
func hcRecordingPath(t *testing.T, eng hcEngine) (path, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "argv.log")
	script := "#!/bin/sh\nprintf '%s\\n' \"$*\" >> " + log + "\nexec " + eng.cli + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, eng.name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH"), log
}

func hcAssertNotInArgv(t *testing.T, log string, secrets map[string]string, want ...string) {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for what, s := range secrets {
		if s == "" || strings.Contains(string(b), s) {
			t.Errorf("the %s (%q) is on an engine command line:\n%s", what, s, b)
		}
	}
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("no engine command line holds %q:\n%s", w, b)
		}
	}
}

// TestAttackNoPasswordOnEngineCommandLine runs the ephemeral container provider (through the
// built ps-env) and an environment's Postgres (Up, then Up with another superuser password,
// which recreates the container and resets the password with psql inside it) through a podman
// or docker that records every argv, as /proc/PID/cmdline shows it to every local user. No
// password may be there, and every login with them must work.
func TestAttackNoPasswordOnEngineCommandLine(t *testing.T) {
	for _, name := range pgEngines {
		t.Run(name, func(t *testing.T) {
			eng := hcEngineFor(t, name)
			builtinImagesBuilt(t, name)
			ctx := testContext(t, 5*time.Minute)

			t.Run("ephemeral", func(t *testing.T) {
				path, log := hcRecordingPath(t, eng)
				e := newEphemeralEnv(t, "DOCKER_HOST="+eng.host, "PATH="+path)
				out := e.mustRun(ctx, t, "up", "--provider", "container", "--json")
				var inst ephInstance
				if err := json.Unmarshal([]byte(out), &inst); err != nil {
					t.Fatalf("up --json = %s (%v)", out, err)
				}
				if got := psql(t, ctx, inst.URL, "select current_user"); got != "postgres" {
					t.Errorf("login with the URL's password: %q", got)
				}
				e.mustRun(ctx, t, "down", inst.ID)
				hcAssertNotInArgv(t, log, map[string]string{"superuser password": passwordOf(t, inst.URL)}, "-e POSTGRES_PASSWORD ")
			})

			t.Run("pgenv", func(t *testing.T) {
				path, log := hcRecordingPath(t, eng)
				wrapped, err := engine.New(name, engine.WithEnviron(append(append([]string(nil), eng.environ...), "PATH="+path)))
				if err != nil {
					t.Fatal(err)
				}
				s := pgenvSpec(t, wrapped, "pgpw"+randomHex(t, 4), "dev")
				res := pgenvUp(t, ctx, wrapped, s, pgenv.ActionCreated)
				pgenvConnect(t, ctx, res.HostURL).Close(ctx)
				first := s.AdminPassword
				// Another superuser password: the container is recreated on the same data, where
				// the old one is stored, and Up resets it through psql in the container.
				s.AdminPassword = "admin-" + randomHex(t, 8)
				res = pgenvUp(t, ctx, wrapped, s, pgenv.ActionRecreated)
				admin := strings.Replace(strings.Replace(res.HostURL, s.User+":"+s.Password, "postgres:"+s.AdminPassword, 1), "/"+s.Database+"?", "/postgres?", 1)
				conn, err := pgx.Connect(ctx, admin)
				if err != nil {
					t.Fatalf("login with the new superuser password: %v", err)
				}
				conn.Close(ctx)
				pgenvConnect(t, ctx, res.HostURL).Close(ctx)
				hcAssertNotInArgv(t, log, map[string]string{
					"first superuser password": first, "second superuser password": s.AdminPassword, "application password": s.Password,
				}, "-e POSTGRES_PASSWORD ", "exec -i ")
			})
		})
	}
}
