package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/ephemeral"
	"github.com/poststack/poststack/pkg/secret"
)

// ephemeralEnv isolates `ps-env ephemeral` runs: records in their own state directory, native
// servers in their own parent directory (traversable by the postgres user), so that the test
// can assert that nothing is left in either.
type ephemeralEnv struct {
	environ []string
	state   string // XDG_STATE_HOME/poststack/ephemeral
	tmp     string // TMPDIR: the native servers' parent
}

func newEphemeralEnv(t *testing.T, extra ...string) *ephemeralEnv {
	t.Helper()
	tmp, err := os.MkdirTemp("/dev/shm", "e2e-eph-")
	if err != nil {
		tmp, err = os.MkdirTemp("/tmp", "e2e-eph-")
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	stateHome := t.TempDir()
	e := &ephemeralEnv{
		environ: append(append(os.Environ(), "XDG_STATE_HOME="+stateHome, "TMPDIR="+tmp, "GITHUB_ACTIONS="), extra...),
		state:   filepath.Join(stateHome, "poststack", "ephemeral"),
		tmp:     tmp,
	}
	t.Cleanup(func() {
		// Whatever a failed test left running.
		_, _, _ = e.run(context.Background(), t, "down", "--all")
		os.RemoveAll(tmp)
	})
	return e
}

// command prepares `ps-env ephemeral ARGS`.
func (e *ephemeralEnv) command(ctx context.Context, t *testing.T, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, binary(t, "ps-env"), append([]string{"ephemeral"}, args...)...)
	cmd.Env = e.environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

func (e *ephemeralEnv) run(ctx context.Context, t *testing.T, args ...string) (string, string, int) {
	cmd, stdout, stderr := e.command(ctx, t, args...)
	err := cmd.Run()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("ps-env ephemeral %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func (e *ephemeralEnv) mustRun(ctx context.Context, t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := e.run(ctx, t, args...)
	if code != 0 {
		t.Fatalf("ps-env ephemeral %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// ephInstance is the part of the JSON of up and list that the tests look at.
type ephInstance struct {
	ID, Provider, URL, Dir, Container string
	PID                               int
	Migrations                        int
}

func (e *ephemeralEnv) list(ctx context.Context, t *testing.T) []ephInstance {
	t.Helper()
	var insts []ephInstance
	if err := json.Unmarshal([]byte(e.mustRun(ctx, t, "list", "--json")), &insts); err != nil {
		t.Fatal(err)
	}
	return insts
}

func psql(t *testing.T, ctx context.Context, url, sql string) string {
	t.Helper()
	out, err := run(ctx, "", nil, "psql", url, "-X", "-Atc", sql)
	if err != nil {
		t.Fatalf("psql: %v", err)
	}
	return strings.TrimSpace(out)
}

// assertNothingLeft checks the state directory and the servers' parent are empty and no
// process works under the parent (a postmaster or a backend).
func (e *ephemeralEnv) assertNothingLeft(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var problems []string
		for _, dir := range []string{e.state, e.tmp} {
			entries, _ := os.ReadDir(dir)
			for _, en := range entries {
				problems = append(problems, "left: "+filepath.Join(dir, en.Name()))
			}
		}
		problems = append(problems, processesUnder(e.tmp)...)
		for _, pid := range pids {
			if processAlive(pid) {
				problems = append(problems, fmt.Sprintf("postmaster %d still runs", pid))
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i > 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// processesUnder lists live processes whose working directory or command line is under dir.
func processesUnder(dir string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil || !processAlive(pid) {
			continue
		}
		cwd, _ := os.Readlink(filepath.Join("/proc", en.Name(), "cwd"))
		cmdline, _ := os.ReadFile(filepath.Join("/proc", en.Name(), "cmdline"))
		if strings.HasPrefix(cwd, dir) || strings.Contains(string(cmdline), dir) {
			found = append(found, fmt.Sprintf("process %d (cwd %s): %s", pid, cwd, strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	return found
}

func TestEphemeralNative(t *testing.T) {
	testenv.Program(t, "psql")
	testenv.NativePostgres(t) // skips (fails under CI) without the server binaries
	ctx := testContext(t, 2*time.Minute)
	e := newEphemeralEnv(t)
	migs := writeMigrations(t, 3, 2, 0)

	url := strings.TrimSpace(e.mustRun(ctx, t, "up", "--migrate", migs))
	// The command has returned: the server must outlive it.
	if got := psql(t, ctx, url, "select 1"); got != "1" {
		t.Fatalf("select 1 = %q", got)
	}
	if got := psql(t, ctx, url, "select count(*) from t_0003"); got != "2" {
		t.Errorf("--migrate: t_0003 has %q rows, want 2", got)
	}
	second := e.mustRun(ctx, t, "up", "--json")
	var inst2 ephInstance
	if err := json.Unmarshal([]byte(second), &inst2); err != nil || inst2.Provider != "native" || inst2.URL == "" || inst2.ID == "" {
		t.Fatalf("up --json = %s (%v)", second, err)
	}
	psql(t, ctx, inst2.URL, "select 1")

	insts := e.list(ctx, t)
	if len(insts) != 2 || insts[0].URL != secret.MaskURL(url) || insts[1].ID != inst2.ID {
		t.Fatalf("list = %+v; want both servers, oldest first, their passwords masked", insts)
	}
	text := e.mustRun(ctx, t, "list")
	if !strings.Contains(text, insts[0].ID) || strings.Contains(text, passwordOf(t, url)) {
		t.Errorf("list prints no ID or an unmasked password:\n%s", text)
	}
	pids := []int{insts[0].PID, insts[1].PID}
	if pids[0] == 0 || !strings.HasPrefix(insts[0].Dir, e.tmp) {
		t.Fatalf("list: pid %d dir %s; want a pid and a directory under %s", pids[0], insts[0].Dir, e.tmp)
	}

	// down by ID: that server only.
	e.mustRun(ctx, t, "down", insts[0].ID)
	if processAlive(pids[0]) {
		t.Errorf("postmaster %d survived down", pids[0])
	}
	if _, err := os.Stat(insts[0].Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s survived down: %v", insts[0].Dir, err)
	}
	if left := e.list(ctx, t); len(left) != 1 || left[0].ID != inst2.ID {
		t.Errorf("list after down = %+v; want only %s", left, inst2.ID)
	}
	if _, errOut, code := e.run(ctx, t, "down", "ffffffffff"); code != 2 {
		t.Errorf("down with an unknown ID: exit %d, want 2\n%s", code, errOut)
	}
	// A server killed behind our back is forgotten by list.
	if err := syscall.Kill(inst2.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if left := e.list(ctx, t); len(left) != 0 {
		t.Errorf("list after the server died = %+v; want none", left)
	}
	e.mustRun(ctx, t, "down", "--all")
	e.assertNothingLeft(t, pids...)
}

func passwordOf(t *testing.T, url string) string {
	t.Helper()
	rest, _, _ := strings.Cut(strings.TrimPrefix(url, "postgres://postgres:"), "@")
	if rest == "" {
		t.Fatalf("no password in %s", url)
	}
	return rest
}

func TestEphemeralUsage(t *testing.T) {
	ctx := testContext(t, time.Minute)
	e := newEphemeralEnv(t)
	for _, args := range [][]string{
		{"up", "--provider", "vm"},
		{"up", "--port", "99999"},
		{"up", "extra"},
		{"up", "--migrate", "/nonexistent"},
		{"down"},
		{"down", "abc", "--all"},
		{"down", "not-an-id"},
	} {
		if _, errOut, code := e.run(ctx, t, args...); code != 2 {
			t.Errorf("ps-env ephemeral %v: exit %d, want 2\n%s", args, code, errOut)
		}
	}
	out := e.mustRun(ctx, t, "up", "--help")
	for _, want := range []string{"--provider", "--migrate", "--port", "EXAMPLES", "database-url"} {
		if !strings.Contains(out, want) {
			t.Errorf("up --help lacks %q:\n%s", want, out)
		}
	}
	e.assertNothingLeft(t)
}

func TestEphemeralGitHubActions(t *testing.T) {
	testenv.NativePostgres(t)
	ctx := testContext(t, time.Minute)
	out := filepath.Join(t.TempDir(), "output")
	if err := os.WriteFile(out, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEphemeralEnv(t, "GITHUB_ACTIONS=true", "GITHUB_OUTPUT="+out)
	stdout, stderr, code := e.run(ctx, t, "up")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s", code, stderr)
	}
	url := strings.TrimSpace(stdout)
	pw := passwordOf(t, url)
	if !strings.Contains(stdout+stderr, "::add-mask::"+pw) {
		t.Errorf("no ::add-mask:: of the password; stdout %q stderr %q", stdout, stderr)
	}
	if strings.Contains(stderr, pw) && !strings.Contains(stderr, "::add-mask::"+pw) {
		t.Errorf("stderr carries the password outside ::add-mask::: %q", stderr)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(got), "database-url") || !strings.Contains(string(got), url) {
		t.Errorf("GITHUB_OUTPUT = %q; want database-url with %s", got, url)
	}
	e.mustRun(ctx, t, "down", "--all")
	e.assertNothingLeft(t)
}

// TestEphemeralInterrupted sends SIGINT to up at several moments: during initdb or the copy,
// the server start, the migrations; up must exit 130 leaving nothing, or have finished.
func TestEphemeralInterrupted(t *testing.T) {
	testenv.NativePostgres(t)
	ctx := testContext(t, 3*time.Minute)
	migs := writeMigrations(t, 20, 100, 0)
	for _, cold := range []bool{true, false} {
		for _, delay := range []time.Duration{5 * time.Millisecond, 40 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 350 * time.Millisecond, 600 * time.Millisecond} {
			var extra []string
			if cold {
				extra = append(extra, "XDG_CACHE_HOME="+t.TempDir())
			}
			e := newEphemeralEnv(t, extra...)
			interruptUp(t, ctx, e, delay, "up", "--provider", "native", "--migrate", migs)
			e.assertNothingLeft(t)
		}
	}
}

// interruptUp runs up, sends SIGINT after delay, and checks the outcome: 130, or 0 (finished
// first; then it is taken down again).
func interruptUp(t *testing.T, ctx context.Context, e *ephemeralEnv, delay time.Duration, args ...string) {
	t.Helper()
	cmd, stdout, stderr := e.command(ctx, t, args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(delay)
	_ = cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
		// Before the Go runtime has installed ps-env's handler (process start-up), SIGINT
		// kills the process, which a shell reports as 130 too; nothing was started yet.
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGINT {
			code = 130
		}
	}
	switch code {
	case 130:
	case 0:
		t.Logf("SIGINT after %v: up had finished (%s)", delay, strings.TrimSpace(stdout.String()))
		e.mustRun(ctx, t, "down", "--all")
	default:
		t.Errorf("SIGINT after %v: exit %d, want 130\n%s", delay, code, stderr)
	}
}

func TestEphemeralContainer(t *testing.T) {
	testenv.Program(t, "psql")
	for _, engine := range []string{testenv.EnginePodman, testenv.EngineDocker} {
		t.Run(engine, func(t *testing.T) {
			cli := engineCLI(t, engine)
			var host string
			if engine == testenv.EnginePodman {
				host = testenv.PodmanSocket(t)
			} else {
				host = testenv.Docker(t)
			}
			builtinImagesBuilt(t, engine)
			ctx := testContext(t, 5*time.Minute)
			e := newEphemeralEnv(t, "DOCKER_HOST="+host)
			containersBefore := ephemeralContainers(t, ctx, cli)

			out := e.mustRun(ctx, t, "up", "--provider", "container", "--json", "--migrate", writeMigrations(t, 2, 1, 0))
			var inst ephInstance
			if err := json.Unmarshal([]byte(out), &inst); err != nil || inst.Container == "" || inst.Migrations != 2 {
				t.Fatalf("up --json = %s (%v)", out, err)
			}
			if got := psql(t, ctx, inst.URL, "select count(*) from t_0002"); got != "1" {
				t.Errorf("select after up returned: %q", got)
			}
			if l := e.list(ctx, t); len(l) != 1 || l[0].ID != inst.ID {
				t.Errorf("list = %+v", l)
			}
			// Only this container's volumes are ours to assert on: other tests create and
			// remove anonymous volumes at the same time. PGDATA is a tmpfs, so the image's
			// VOLUME must not have made one.
			vols := containerVolumes(t, ctx, cli, inst.Container)
			if len(vols) > 0 {
				t.Errorf("container %s has volumes %v; want PGDATA on a tmpfs and no volume", inst.Container, vols)
			}
			if got := ephemeralContainers(t, ctx, cli); !slices.Contains(got, inst.Container) {
				t.Fatalf("container %s of up not listed: %v", inst.Container, got)
			}
			e.mustRun(ctx, t, "down", inst.ID)
			// Other packages' tests start and remove ephemeral containers at the same time:
			// what this test must not leave is its own container.
			if got := ephemeralContainers(t, ctx, cli); slices.Contains(got, inst.Container) {
				t.Errorf("container %s left after down", inst.Container)
			}
			for _, v := range vols {
				if _, err := run(ctx, "", nil, cli, "volume", "inspect", v); err == nil {
					t.Errorf("volume %s of %s survived down", v, inst.Container)
				}
			}
			e.assertNothingLeft(t)

			// SIGINT while the container is created, started, initialised.
			for _, delay := range []time.Duration{100 * time.Millisecond, 700 * time.Millisecond, 1500 * time.Millisecond} {
				interruptUp(t, ctx, e, delay, "up", "--provider", "container")
				e.assertNothingLeft(t)
				// A container that is not there before may be another package's test's
				// (pkg/ephemeral runs at the same time); those end within seconds, a
				// container this run leaked stays.
				deadline := time.Now().Add(30 * time.Second)
				for left := newContainers(t, ctx, cli, containersBefore); len(left) > 0; left = newContainers(t, ctx, cli, containersBefore) {
					if time.Now().After(deadline) {
						t.Fatalf("SIGINT after %v left containers %v", delay, left)
					}
					time.Sleep(200 * time.Millisecond)
				}
			}
		})
	}
}

// containerVolumes lists the volumes mounted in a container (named or anonymous), sorted.
func containerVolumes(t *testing.T, ctx context.Context, cli, container string) []string {
	t.Helper()
	return lines(t, ctx, cli, "container", "inspect", container, "--format",
		`{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}}{{"\n"}}{{end}}{{end}}`)
}

// newContainers lists the ephemeral containers on cli that are not in before.
func newContainers(t *testing.T, ctx context.Context, cli string, before []string) []string {
	var out []string
	for _, c := range ephemeralContainers(t, ctx, cli) {
		if !slices.Contains(before, c) {
			out = append(out, c)
		}
	}
	return out
}

func ephemeralContainers(t *testing.T, ctx context.Context, cli string) []string {
	return lines(t, ctx, cli, "ps", "-a", "--filter", "label=io.poststack.ephemeral", "--format", "{{.Names}}")
}

func lines(t *testing.T, ctx context.Context, name string, args ...string) []string {
	t.Helper()
	out := mustRun(t, ctx, "", nil, name, args...)
	var l []string
	for _, s := range strings.Split(strings.TrimSpace(out), "\n") {
		if s != "" {
			l = append(l, s)
		}
	}
	slices.Sort(l)
	return l
}

// TestEphemeralContainerOracle holds the container provider, which drives the engine's CLI, to
// testcontainers-go's postgres module on the same image and engine: a client must see the same
// server from both (login, version, user and database, settings, refusals).
func TestEphemeralContainerOracle(t *testing.T) {
	perEngineChild(t, "TestEphemeralContainerOracle", ephemeralOracle)
}

func ephemeralOracle(t *testing.T, image, host string) {
	ctx := testContext(t, 2*time.Minute)
	engineName := testenv.EngineDocker
	if strings.Contains(host, "podman") {
		engineName = testenv.EnginePodman
	}

	began := time.Now()
	inst, err := ephemeral.Start(ctx, ephemeral.Options{
		Provider: ephemeral.Container,
		Engine:   engineName,
		Image:    image,
		Environ:  os.Environ(),
	})
	if err != nil {
		t.Fatalf("ephemeral.Start on %s: %v", engineName, err)
	}
	t.Cleanup(func() {
		if err := ephemeral.Stop(context.Background(), inst); err != nil {
			t.Errorf("ephemeral.Stop: %v", err)
		}
	})
	ours := time.Since(began)
	if inst.Engine != engineName || inst.Image != image {
		t.Errorf("instance on %s from %s, want %s from %s", inst.Engine, inst.Image, engineName, image)
	}

	// What our provider gives (user and database postgres, fsync off), asked of the module.
	pw := passwordOf(t, inst.URL)
	began = time.Now()
	ctr, err := tcpostgres.Run(ctx, image,
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword(pw),
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithName("pse-oracle-"+randomHex(t, 4)),
		testcontainers.WithLabels(map[string]string{"io.poststack.test": "e2e"}),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("testcontainers postgres.Run(%s): %v", image, err)
	}
	theirs := time.Since(began)
	tcURL, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: ephemeral.Start %v, testcontainers postgres.Run %v", engineName, ours.Round(time.Millisecond), theirs.Round(time.Millisecond))

	const probe = `select current_user, current_database(), current_setting('server_version'),
		current_setting('server_encoding'), current_setting('fsync'),
		current_setting('password_encryption'),
		(select rolsuper from pg_roles where rolname = current_user)::text,
		(select string_agg(datname, ',' order by datname) from pg_database),
		(select string_agg(rolname, ',' order by rolname) from pg_roles where rolname !~ '^pg_')`
	describe := func(dbURL string) []string {
		t.Helper()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect %s: %v", redactPassword(dbURL), err)
		}
		defer conn.Close(ctx)
		vals := make([]string, 9)
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := conn.QueryRow(ctx, probe).Scan(ptrs...); err != nil {
			t.Fatalf("probe: %v", err)
		}
		return vals
	}
	got, want := describe(inst.URL), describe(tcURL)
	if !slices.Equal(got, want) {
		t.Errorf("the server differs for a client:\nephemeral:      %q\ntestcontainers: %q", got, want)
	}

	// Refusals: a wrong password, a database that does not exist, both with the same SQLSTATE.
	refusal := func(dbURL string, edit func(*url.URL)) string {
		t.Helper()
		u, err := url.Parse(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		edit(u)
		conn, err := pgx.Connect(ctx, u.String())
		if err == nil {
			conn.Close(ctx)
			return "accepted"
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			return "error without SQLSTATE: " + err.Error()
		}
		return pgErr.Code
	}
	for _, c := range []struct {
		name string
		edit func(*url.URL)
		want string
	}{
		{"wrong password", func(u *url.URL) { u.User = url.UserPassword("postgres", "wrong") }, "28P01"},
		{"unknown user", func(u *url.URL) { u.User = url.UserPassword("nobody", pw) }, "28P01"},
		{"unknown database", func(u *url.URL) { u.Path = "/nope" }, "3D000"},
	} {
		ourCode, theirCode := refusal(inst.URL, c.edit), refusal(tcURL, c.edit)
		if ourCode != c.want || theirCode != c.want {
			t.Errorf("%s: ephemeral %s, testcontainers %s; want %s on both", c.name, ourCode, theirCode, c.want)
		}
	}
}

// redactPassword hides a URL's password in test messages.
func redactPassword(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	return u.Redacted()
}
