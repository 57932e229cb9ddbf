package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/poststack/poststack/internal/testenv"
)

// pgEngines are the engines the built-in postgres image must work on.
var pgEngines = []string{testenv.EnginePodman, testenv.EngineDocker}

// pgReadyLine is what PostgreSQL logs when it accepts connections; the entrypoint's setup server
// logs it once more on a first start, which testcontainers-go's postgres module relies on.
const pgReadyLine = "database system is ready to accept connections"

// pgEngineCLI runs one engine's command line; for docker it pins the daemon with -H so that a
// DOCKER_HOST pointing at podman's socket cannot redirect it.
type pgEngineCLI struct {
	name   string
	path   string
	global []string
}

func newPGEngineCLI(t *testing.T, engine string) pgEngineCLI {
	t.Helper()
	switch engine {
	case testenv.EnginePodman:
		return pgEngineCLI{name: engine, path: testenv.Podman(t)}
	case testenv.EngineDocker:
		host := testenv.Docker(t)
		return pgEngineCLI{name: engine, path: testenv.Program(t, "docker"), global: []string{"-H", host}}
	}
	t.Fatalf("unknown engine %q", engine)
	return pgEngineCLI{}
}

func (e pgEngineCLI) args(args ...string) []string {
	return append(slices.Clone(e.global), args...)
}

// run runs the engine and returns its stdout.
func (e pgEngineCLI) run(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "", nil, e.path, e.args(args...)...)
}

func (e pgEngineCLI) mustRun(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	return mustRun(t, ctx, "", nil, e.path, e.args(args...)...)
}

// combined runs the engine and returns stdout and stderr together: `logs` copies the
// container's stderr, where PostgreSQL logs, to its own stderr.
func (e pgEngineCLI) combined(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, e.path, e.args(args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", e.name, strings.Join(args, " "), err, pgTail(out, 4000))
	}
	return string(out), nil
}

func pgTail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// builtPostgresImage builds poststack/base-debian on the local Debian base and poststack/postgres
// on it with ps-build (once per engine and test binary) and returns the reference to run.
func builtPostgresImage(t *testing.T, engine string) string {
	t.Helper()
	builtinImagesBuilt(t, engine)
	if engine == testenv.EnginePodman {
		// podman stores short names under localhost/; its Docker-compatible API (used by
		// testcontainers-go) resolves short names against docker.io instead.
		return "localhost/poststack/postgres:latest"
	}
	return "poststack/postgres:latest"
}

// pgContainer is a postgres container started by a test.
type pgContainer struct {
	e        pgEngineCLI
	name     string
	user     string
	password string
	db       string
}

type pgRunOptions struct {
	env   map[string]string
	mount []string // -v values
	cmd   []string
}

// startPG runs the image detached, published on a free port of 127.0.0.1, and removes the
// container (and its anonymous volume) when the test ends.
func startPG(t *testing.T, ctx context.Context, e pgEngineCLI, image string, opts pgRunOptions) pgContainer {
	t.Helper()
	c := pgContainer{e: e, name: "pse-pg-" + randomHex(t, 4)}
	c.user, c.password, c.db = opts.env["POSTGRES_USER"], opts.env["POSTGRES_PASSWORD"], opts.env["POSTGRES_DB"]
	t.Cleanup(func() { removePGContainer(t, e, c.name) })
	args := []string{"run", "-d", "--name", c.name, "--label", "io.poststack.test=e2e", "-p", "127.0.0.1::5432"}
	for _, k := range pgSortedKeys(opts.env) {
		args = append(args, "-e", k+"="+opts.env[k])
	}
	for _, m := range opts.mount {
		args = append(args, "-v", m)
	}
	args = append(args, image)
	args = append(args, opts.cmd...)
	e.mustRun(t, ctx, args...)
	return c
}

func removePGContainer(t *testing.T, e pgEngineCLI, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if t.Failed() {
		if logs, err := e.combined(ctx, "logs", name); err == nil {
			t.Logf("logs of %s:\n%s", name, pgTail([]byte(logs), 6000))
		}
	}
	if _, err := e.run(ctx, "rm", "-f", "-v", name); err != nil && !strings.Contains(strings.ToLower(err.Error()), "no such container") {
		t.Errorf("remove container %s: %v", name, err)
	}
}

func pgSortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// url returns the host's URL of the container's database; the port is looked up every time
// because docker may publish another one after a restart.
func (c pgContainer) url(t *testing.T, ctx context.Context, password string) string {
	t.Helper()
	out := strings.TrimSpace(c.e.mustRun(t, ctx, "port", c.name, "5432/tcp"))
	addr, _, _ := strings.Cut(out, "\n")
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("%s port %s 5432/tcp = %q, want 127.0.0.1:<port>", c.e.name, c.name, out)
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.user, password),
		Host:     addr,
		Path:     "/" + c.db,
		RawQuery: "sslmode=disable&connect_timeout=5",
	}
	return u.String()
}

// connect waits until the container's server accepts the user over TCP. The setup server of a
// first start listens on the unix socket only, so the first success is the real server.
func (c pgContainer) connect(t *testing.T, ctx context.Context) *pgx.Conn {
	t.Helper()
	dbURL := c.url(t, ctx, c.password)
	deadline := time.Now().Add(60 * time.Second)
	for {
		attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attempt, dbURL)
		cancel()
		if err == nil {
			t.Cleanup(func() { conn.Close(context.Background()) })
			return conn
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code != "57P03" { // 57P03: the server is starting
			t.Fatalf("connect to %s: %v", c.name, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s did not accept connections within 60 s: %v", c.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c pgContainer) logs(t *testing.T, ctx context.Context) string {
	t.Helper()
	out, err := c.e.combined(ctx, "logs", c.name)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitLogCount waits until the container's logs hold line at least n times (the engine writes
// logs asynchronously) and returns the final count.
func (c pgContainer) waitLogCount(t *testing.T, ctx context.Context, line string, n int) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := strings.Count(c.logs(t, ctx), line)
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func pgQueryStrings(t *testing.T, ctx context.Context, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return got
}

func TestPostgresImage(t *testing.T) {
	for _, engine := range pgEngines {
		t.Run(engine, func(t *testing.T) {
			e := newPGEngineCLI(t, engine)
			image := builtPostgresImage(t, engine)
			ctx := testContext(t, 5*time.Minute)

			// One server for the checks that do not change its state; stop-fast ends it.
			srv := startPG(t, ctx, e, image, pgRunOptions{
				env: map[string]string{
					"POSTGRES_USER":     "app_" + randomHex(t, 3),
					"POSTGRES_PASSWORD": "pw-" + randomHex(t, 8),
					"POSTGRES_DB":       "appdb_" + randomHex(t, 3),
				},
				// A first argument that is an option is handed to postgres.
				cmd: []string{"-c", "fsync=off"},
			})

			t.Run("password-auth", func(t *testing.T) {
				conn := srv.connect(t, ctx)
				var user, db string
				if err := conn.QueryRow(ctx, "select current_user, current_database()").Scan(&user, &db); err != nil {
					t.Fatal(err)
				}
				if user != srv.user || db != srv.db {
					t.Errorf("connected as %s to %s, want %s to %s", user, db, srv.user, srv.db)
				}
				var method string
				if err := conn.QueryRow(ctx, "select auth_method from pg_hba_file_rules where type = 'host' and address = 'all'").Scan(&method); err != nil {
					t.Fatalf("reading pg_hba rules: %v", err)
				}
				if method != "scram-sha-256" {
					t.Errorf("pg_hba rule for all hosts uses %q, want scram-sha-256", method)
				}

				_, err := pgx.Connect(ctx, srv.url(t, ctx, "wrong-"+srv.password))
				var pgErr *pgconn.PgError
				if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
					t.Fatalf("connect with a wrong password: %v; want SQLSTATE 28P01 (invalid_password)", err)
				}
			})

			t.Run("tools-and-pid1", func(t *testing.T) {
				srv.connect(t, ctx)
				for _, tool := range []string{"pg_isready", "psql", "postgres", "initdb"} {
					out := strings.TrimSpace(e.mustRun(t, ctx, "exec", srv.name, "sh", "-c", "command -v "+tool))
					if !strings.HasPrefix(out, "/") {
						t.Errorf("%s is not on PATH in the image: %q", tool, out)
					}
				}
				e.mustRun(t, ctx, "exec", srv.name, "pg_isready", "-h", "127.0.0.1", "-p", "5432")
				if comm := strings.TrimSpace(e.mustRun(t, ctx, "exec", srv.name, "cat", "/proc/1/comm")); comm != "postgres" {
					t.Errorf("PID 1 is %q, want postgres (the entrypoint must exec the server)", comm)
				}
				// psql over the unix socket as POSTGRES_USER without a password, as
				// testcontainers-go's Snapshot does; it also shows the -c option arrived.
				fsync := strings.TrimSpace(e.mustRun(t, ctx, "exec", srv.name, "psql", "-X", "-U", srv.user, "-d", "postgres", "-tAc", "show fsync"))
				if fsync != "off" {
					t.Errorf("fsync = %q, want off (from `-c fsync=off` as the command)", fsync)
				}
				owner := strings.TrimSpace(e.mustRun(t, ctx, "exec", srv.name, "stat", "-c", "%U %a", "/var/lib/postgresql/data"))
				if owner != "postgres 700" {
					t.Errorf("PGDATA owner and mode = %q, want \"postgres 700\"", owner)
				}
			})

			t.Run("ready-logged-twice", func(t *testing.T) {
				srv.connect(t, ctx)
				if n := srv.waitLogCount(t, ctx, pgReadyLine, 2); n != 2 {
					t.Errorf("a first start logged %q %d times, want 2", pgReadyLine, n)
				}
			})

			t.Run("healthcheck", func(t *testing.T) {
				format := "{{json .Config.Healthcheck}}"
				if engine == testenv.EnginePodman {
					format = "{{json .HealthCheck}}"
				}
				hc := e.mustRun(t, ctx, "image", "inspect", "--format", format, image)
				if !strings.Contains(hc, "pg_isready") {
					t.Fatalf("image %s has no pg_isready HEALTHCHECK: %s", image, hc)
				}
				srv.connect(t, ctx)
				deadline := time.Now().Add(45 * time.Second)
				var status string
				for time.Now().Before(deadline) {
					if engine == testenv.EnginePodman {
						// podman 4.3 schedules checks through systemd timers, absent here.
						out, err := e.run(ctx, "healthcheck", "run", srv.name)
						status = strings.TrimSpace(out)
						if err == nil && (status == "" || status == "healthy") {
							status = "healthy"
						}
					} else {
						status = strings.TrimSpace(e.mustRun(t, ctx, "inspect", "--format", "{{.State.Health.Status}}", srv.name))
					}
					if status == "healthy" {
						break
					}
					time.Sleep(500 * time.Millisecond)
				}
				if status != "healthy" {
					t.Fatalf("health status = %q after 45 s, want healthy", status)
				}
				if engine == testenv.EnginePodman {
					got := strings.TrimSpace(e.mustRun(t, ctx, "inspect", "--format", "{{.State.Health.Status}}", srv.name))
					if got != "healthy" {
						t.Errorf("podman inspect reports health %q after a passing check", got)
					}
				}
			})

			t.Run("stop-fast", func(t *testing.T) {
				srv.connect(t, ctx)
				start := time.Now()
				e.mustRun(t, ctx, "stop", srv.name)
				took := time.Since(start)
				if took >= 2*time.Second {
					t.Errorf("%s stop took %v, want under 2 s (STOPSIGNAL SIGINT to postgres as PID 1)", engine, took)
				}
				code := strings.TrimSpace(e.mustRun(t, ctx, "inspect", "--format", "{{.State.ExitCode}}", srv.name))
				if code != "0" {
					t.Errorf("postgres exited with %s on stop, want 0 (a clean fast shutdown, not a kill)", code)
				}
				t.Logf("%s stop took %v", engine, took.Round(time.Millisecond))
			})

			t.Run("password-required", func(t *testing.T) {
				name := "pse-pg-" + randomHex(t, 4)
				t.Cleanup(func() { removePGContainer(t, e, name) })
				cmd := exec.CommandContext(ctx, e.path, e.args("run", "--name", name, "-e", "POSTGRES_USER=nopw", image)...)
				out, err := cmd.CombinedOutput()
				var exitErr *exec.ExitError
				if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
					t.Fatalf("running without POSTGRES_PASSWORD: %v, want exit status 1\n%s", err, out)
				}
				if !strings.Contains(string(out), "POSTGRES_PASSWORD is not set") {
					t.Errorf("the error does not name POSTGRES_PASSWORD:\n%s", out)
				}
			})

			t.Run("initdb-scripts-once", func(t *testing.T) {
				initDir := initScripts(t)
				c := startPG(t, ctx, e, image, pgRunOptions{
					env: map[string]string{
						"POSTGRES_USER":     "init_user",
						"POSTGRES_PASSWORD": "init-pw",
						"POSTGRES_DB":       "initdb",
					},
					mount: []string{initDir + ":/docker-entrypoint-initdb.d:ro"},
				})
				want := []string{"01.sql", "02.sh", "03.sql.gz", "04-sourced.sh"}
				const q = "select script from init_runs order by id"
				conn := c.connect(t, ctx)
				if got := pgQueryStrings(t, ctx, conn, q); !slices.Equal(got, want) {
					t.Fatalf("after the first start, init_runs = %v, want %v", got, want)
				}
				conn.Close(ctx)

				e.mustRun(t, ctx, "stop", c.name)
				e.mustRun(t, ctx, "start", c.name)
				conn = c.connect(t, ctx)
				if got := pgQueryStrings(t, ctx, conn, q); !slices.Equal(got, want) {
					t.Errorf("after a restart, init_runs = %v, want %v (scripts must run once)", got, want)
				}
				if n := c.waitLogCount(t, ctx, "skipping initialisation", 1); n != 1 {
					t.Errorf("the restart logged \"skipping initialisation\" %d times, want 1", n)
				}
			})

			t.Run("volume-survives-recreate", func(t *testing.T) {
				vol := "pse-pg-" + randomHex(t, 4)
				t.Cleanup(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if _, err := e.run(ctx, "volume", "rm", "-f", vol); err != nil {
						t.Errorf("remove volume %s: %v", vol, err)
					}
				})
				e.mustRun(t, ctx, "volume", "create", vol)
				env := map[string]string{
					"POSTGRES_USER":     "keep_user",
					"POSTGRES_PASSWORD": "first-pw",
					"POSTGRES_DB":       "keepdb",
				}
				mount := []string{vol + ":/var/lib/postgresql/data"}
				first := startPG(t, ctx, e, image, pgRunOptions{env: env, mount: mount})
				conn := first.connect(t, ctx)
				if _, err := conn.Exec(ctx, "create table kept (v text); insert into kept values ('survives')"); err != nil {
					t.Fatal(err)
				}
				conn.Close(ctx)
				e.mustRun(t, ctx, "rm", "-f", first.name)

				// A different password in the environment must not matter: the volume holds an
				// initialised cluster, so no initdb runs and the first password stays valid.
				env["POSTGRES_PASSWORD"] = "second-pw"
				second := startPG(t, ctx, e, image, pgRunOptions{env: env, mount: mount})
				second.password = "first-pw"
				conn = second.connect(t, ctx)
				if got := pgQueryStrings(t, ctx, conn, "select v from kept"); !slices.Equal(got, []string{"survives"}) {
					t.Errorf("after recreating the container, kept = %v, want [survives]", got)
				}
				logs := second.logs(t, ctx)
				if strings.Contains(logs, "initialising a PostgreSQL") || !strings.Contains(logs, "skipping initialisation") {
					t.Errorf("the second container re-initialised the volume:\n%s", pgTail([]byte(logs), 3000))
				}
			})
		})
	}
}

// initScripts writes a /docker-entrypoint-initdb.d that records each script's run in a table,
// with each kind the entrypoint handles: SQL, an executable script, gzipped SQL, a sourced
// (non-executable) script, and a file it must ignore.
func initScripts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// The server runs as postgres (uid 999), not as the owner of the test's temp directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write([]byte("insert into init_runs (script) values ('03.sql.gz');\n")); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"01.sql", []byte("create table init_runs (id serial primary key, script text not null);\ninsert into init_runs (script) values ('01.sql');\n"), 0o644},
		{"02.sh", []byte("#!/bin/sh\nset -e\npsql -X -v ON_ERROR_STOP=1 -d \"$POSTGRES_DB\" -c \"insert into init_runs (script) values ('02.sh')\"\n"), 0o755},
		{"03.sql.gz", gz.Bytes(), 0o644},
		{"04-sourced.sh", []byte("psql -X -v ON_ERROR_STOP=1 -d \"$POSTGRES_DB\" -c \"insert into init_runs (script) values ('04-sourced.sh')\"\n"), 0o644},
		{"05-ignored.txt", []byte("insert into init_runs (script) values ('05-ignored.txt');\n"), 0o644},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Environment of the child processes perEngineChild starts.
const (
	childImageEnv = "POSTSTACK_E2E_CHILD_IMAGE"
	childHostEnv  = "POSTSTACK_E2E_CHILD_DOCKER_HOST"
)

// perEngineChild runs body on each engine with the built postgres image and the engine's
// Docker-API endpoint. testcontainers-go settles on one endpoint per process (the first it
// finds), so each engine gets a child process of this test binary running only the test
// called name, where body runs with DOCKER_HOST and testcontainers' settings for these hosts.
func perEngineChild(t *testing.T, name string, body func(t *testing.T, image, host string)) {
	t.Helper()
	if image := os.Getenv(childImageEnv); image != "" {
		host := os.Getenv(childHostEnv)
		t.Setenv("DOCKER_HOST", host)
		// The reaper image cannot be pulled here, and /.dockerenv makes testcontainers-go
		// mistake this host for a container (see ENGINES.md).
		t.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
		t.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "localhost")
		body(t, image, host)
		return
	}
	for _, engine := range pgEngines {
		t.Run(engine, func(t *testing.T) {
			var host string
			if engine == testenv.EnginePodman {
				host = testenv.PodmanSocket(t)
			} else {
				host = testenv.Docker(t)
			}
			image := builtPostgresImage(t, engine)
			ctx := testContext(t, 4*time.Minute)
			cmd := exec.CommandContext(ctx, os.Args[0],
				"-test.run=^"+name+"$", "-test.count=1", "-test.v", "-test.timeout=3m")
			cmd.Env = append(os.Environ(),
				childImageEnv+"="+image,
				childHostEnv+"="+host,
				"POSTSTACK_E2E_BIN_DIR="+binDir,
			)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s on %s: %v\n%s", name, engine, err, out)
			}
			if !strings.Contains(string(out), "--- PASS: "+name) {
				t.Fatalf("the child test did not pass:\n%s", out)
			}
			t.Logf("%s", pgTail(out, 2000))
		})
	}
}

// TestPostgresImageTestcontainers runs testcontainers-go's postgres module on the built image,
// on each engine.
func TestPostgresImageTestcontainers(t *testing.T) {
	perEngineChild(t, "TestPostgresImageTestcontainers", testcontainersPostgres)
}

func testcontainersPostgres(t *testing.T, image, host string) {
	ctx := testContext(t, 2*time.Minute)

	start := time.Now()
	ctr, err := tcpostgres.Run(ctx, image,
		tcpostgres.WithDatabase("tcdb"),
		tcpostgres.WithUsername("tcuser"),
		tcpostgres.WithPassword("tc-pw"),
		tcpostgres.BasicWaitStrategies(),
		testcontainers.WithName("pse-pg-"+randomHex(t, 4)),
		testcontainers.WithLabels(map[string]string{"io.poststack.test": "e2e"}),
	)
	testcontainers.CleanupContainer(t, ctr)
	if err != nil {
		t.Fatalf("postgres.Run(%s) on %s: %v", image, host, err)
	}
	t.Logf("postgres.Run took %v", time.Since(start).Round(time.Millisecond))

	dbURL, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	execSQL := func(sql string) {
		t.Helper()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	values := func() []string {
		t.Helper()
		conn, err := pgx.Connect(ctx, dbURL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close(ctx)
		return pgQueryStrings(t, ctx, conn, "select v from snap order by v")
	}

	execSQL("create table snap (v text); insert into snap values ('before')")
	if err := ctr.Snapshot(ctx); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	execSQL("insert into snap values ('after')")
	if got := values(); !slices.Equal(got, []string{"after", "before"}) {
		t.Fatalf("before Restore, snap = %v", got)
	}
	if err := ctr.Restore(ctx); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := values(); !slices.Equal(got, []string{"before"}) {
		t.Errorf("after Restore, snap = %v, want [before]", got)
	}
}
