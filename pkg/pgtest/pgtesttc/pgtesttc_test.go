package pgtesttc_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/testcontainers/testcontainers-go"
	tcexec "github.com/testcontainers/testcontainers-go/exec"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/pgtest"
	"github.com/poststack/poststack/pkg/pgtest/pgtesttc"
)

const (
	pkgPath    = "github.com/poststack/poststack/pkg/pgtest/pgtesttc"
	migrations = "testdata/migrations"
	// testLabel marks the containers these tests run themselves.
	testLabel = "io.poststack.test"
	// sessionLabel is the label of testcontainers-go's session ID on every container it makes.
	sessionLabel = "org.testcontainers.sessionId"
)

// Environment of the child processes TestEngines starts, one per engine: testcontainers-go
// settles on one Docker-API endpoint per process (the first it finds).
const (
	childEngineEnv = "POSTSTACK_PGTESTTC_ENGINE"
	childImageEnv  = "POSTSTACK_PGTESTTC_IMAGE"
	childHostEnv   = "POSTSTACK_PGTESTTC_DOCKER_HOST"
)

// TestNoBinaryLinksIt keeps testcontainers-go out of poststack's commands: they start
// containers through pkg/engine, and testcontainers' package initialisation would cost every
// run of them (see pkg/ephemeral/container.go).
func TestNoBinaryLinksIt(t *testing.T) {
	goBin := testenv.Program(t, "go")
	root := moduleRoot(t, goBin)
	deps := func(pattern string) []string {
		t.Helper()
		cmd := exec.Command(goBin, "list", "-deps", pattern)
		cmd.Dir = root
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pattern, err, stderrOf(err))
		}
		return strings.Fields(string(out))
	}
	bad := func(pkg string) bool {
		return pkg == pkgPath || strings.HasPrefix(pkg, "github.com/testcontainers/")
	}
	// The check must be able to fail: this package's own dependencies are what it looks for.
	if own := deps(pkgPath); !slices.ContainsFunc(own, bad) {
		t.Fatalf("go list -deps %s names neither itself nor testcontainers-go; the check below would prove nothing", pkgPath)
	}
	cmds := deps("./cmd/...")
	if !slices.Contains(cmds, "github.com/poststack/poststack/pkg/migrate") {
		t.Fatalf("go list -deps ./cmd/... does not list pkg/migrate; is %s the module root?", root)
	}
	for _, pkg := range cmds {
		if bad(pkg) {
			t.Errorf("a binary of ./cmd/... links %s; only test binaries may", pkg)
		}
	}
}

func moduleRoot(t *testing.T, goBin string) string {
	t.Helper()
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: not in a module")
	}
	return filepath.Dir(gomod)
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}

func TestStartValidates(t *testing.T) {
	if _, err := pgtesttc.Start(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "empty image") {
		t.Errorf("Start with no image: err = %v, want one about the empty image", err)
	}
	if _, err := pgtesttc.FromContainer(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "nil container") {
		t.Errorf("FromContainer(nil): err = %v, want one about the nil container", err)
	}
}

// TestEngines runs the package on podman (through its Docker-API socket) and docker, each in a
// child process of this test binary, with poststack's postgres image.
func TestEngines(t *testing.T) {
	if engine := os.Getenv(childEngineEnv); engine != "" {
		onEngine(t, childEngine{name: engine, image: os.Getenv(childImageEnv), host: os.Getenv(childHostEnv)})
		return
	}
	for _, engine := range []string{testenv.EnginePodman, testenv.EngineDocker} {
		t.Run(engine, func(t *testing.T) {
			var host string
			if engine == testenv.EnginePodman {
				host = testenv.PodmanSocket(t)
			} else {
				host = testenv.Docker(t)
			}
			e := childEngine{name: engine, host: host}
			e.image = postgresImage(t, e)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestEngines$", "-test.count=1", "-test.v", "-test.timeout=4m")
			cmd.Env = append(os.Environ(),
				childEngineEnv+"="+engine,
				childImageEnv+"="+e.image,
				childHostEnv+"="+host,
				"DOCKER_HOST="+host,
				// The reaper image cannot be pulled here, and /.dockerenv makes testcontainers-go
				// mistake this host for a container (../shared/ENGINES.md).
				"TESTCONTAINERS_RYUK_DISABLED=true",
				"TESTCONTAINERS_HOST_OVERRIDE=localhost",
			)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("TestEngines on %s: %v\n%s", engine, err, out)
			}
			if !bytes.Contains(out, []byte("--- PASS: TestEngines (")) || bytes.Contains(out, []byte("--- SKIP")) {
				t.Fatalf("TestEngines on %s did not pass in full:\n%s", engine, out)
			}
			t.Logf("%s", out)
		})
	}
}

// childEngine is the engine a child process of TestEngines runs on.
type childEngine struct {
	name  string
	image string
	host  string // DOCKER_HOST of its Docker-compatible API
}

// cli runs the engine's command line; docker is pinned with -H to the daemon under test.
func (e childEngine) cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path := testenv.Program(t, e.name)
	if e.name == testenv.EngineDocker {
		args = append([]string{"-H", e.host}, args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", e.name, strings.Join(args, " "), err, stderrOf(err))
	}
	return string(out), nil
}

// containers lists the IDs of the containers, running or not, that testcontainers-go made in
// this process: it labels each with the session ID of the test binary's parent process, which
// is this one's own (other test binaries on the engine do not count).
func (e childEngine) containers(t *testing.T) []string {
	t.Helper()
	out, err := e.cli(t, "ps", "-a", "-q", "--no-trunc", "--filter", "label="+sessionLabel+"="+testcontainers.SessionID())
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(out)
	slices.Sort(ids)
	return ids
}

// postgresImage returns poststack's postgres image on the engine, building it with ps-build
// from the local Debian base when it is missing (the e2e tests build the same image).
func postgresImage(t *testing.T, e childEngine) string {
	t.Helper()
	// podman's Docker-compatible API resolves short names against docker.io, not localhost/.
	ref := "poststack/postgres:latest"
	if e.name == testenv.EnginePodman {
		ref = "localhost/" + ref
	}
	if _, err := e.cli(t, "image", "inspect", ref); err == nil {
		return ref
	}
	testenv.BaseImage(t, e.name)
	goBin := testenv.Program(t, "go")
	tmp := t.TempDir()
	psBuild := filepath.Join(tmp, "ps-build")
	build := exec.Command(goBin, "build", "-o", psBuild, "github.com/poststack/poststack/cmd/ps-build")
	build.Dir = moduleRoot(t, goBin)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ps-build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, psBuild, "--container-runtime", e.name, "--base-image", testenv.DefaultBaseImage, "postgres")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "DOCKER_HOST="+e.host)
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ps-build postgres on %s: %v\n%s", e.name, err, out)
	}
	t.Logf("built %s on %s with ps-build in %v", ref, e.name, time.Since(start).Round(time.Millisecond))
	if _, err := e.cli(t, "image", "inspect", ref); err != nil {
		t.Fatalf("ps-build postgres succeeded but %v", err)
	}
	return ref
}

// onEngine is the body of TestEngines in a child process.
func onEngine(t *testing.T, e childEngine) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	labels := testcontainers.WithLabels(map[string]string{testLabel: "pgtesttc"})

	t.Run("Start", func(t *testing.T) {
		before := e.containers(t)
		start := time.Now()
		srv, err := pgtesttc.Start(ctx, e.image, labels)
		if err != nil {
			t.Fatalf("Start(%s) on %s: %v", e.image, e.name, err)
		}
		t.Logf("Start took %v", time.Since(start).Round(time.Millisecond))
		closed := false
		t.Cleanup(func() {
			if !closed {
				_ = srv.Close(context.Background())
			}
			// Gone already unless the test failed; then it must not outlive the test.
			_ = testcontainers.TerminateContainer(srv.Container())
		})
		id := srv.Container().GetContainerID()
		if started := added(before, e.containers(t)); !slices.Equal(started, []string{id}) {
			t.Fatalf("Start added containers %v, want only its own %s", started, id)
		}

		var names [2]string
		t.Run("tests", func(t *testing.T) {
			for i := range names {
				t.Run(fmt.Sprint(i), func(t *testing.T) {
					t.Parallel()
					pool := srv.NewPool(t, pgtest.WithMigrations(migrations))
					mine := fmt.Sprintf("test %d", i)
					if _, err := pool.Exec(ctx, "insert into items (name) values ($1)", mine); err != nil {
						t.Fatalf("the migrated table: %v", err)
					}
					var got []string
					rows, err := pool.Query(ctx, "select name from items order by id")
					if err == nil {
						got, err = pgx.CollectRows(rows, pgx.RowTo[string])
					}
					if err != nil {
						t.Fatal(err)
					}
					// The seed row of the migrations, and this test's row only.
					if want := []string{"seed", mine}; !slices.Equal(got, want) {
						t.Errorf("items = %q, want %q", got, want)
					}
					if err := pool.QueryRow(ctx, "select current_database()").Scan(&names[i]); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
		t.Logf("two tests done at %v", time.Since(start).Round(time.Millisecond))
		if names[0] == "" || names[0] == names[1] {
			t.Fatalf("the two tests got databases %q and %q, want two different ones", names[0], names[1])
		}
		for _, name := range names {
			if databaseExists(t, ctx, srv.URL(), name) {
				t.Errorf("database %s of a finished test is still on the server", name)
			}
		}

		db, err := srv.Database(ctx, pgtest.WithMigrations(migrations))
		if err != nil {
			t.Fatal(err)
		}
		if !databaseExists(t, ctx, srv.URL(), db.Name) {
			t.Fatalf("database %s that Database returned is not on the server", db.Name)
		}
		if err := db.Drop(ctx); err != nil {
			t.Fatal(err)
		}
		if databaseExists(t, ctx, srv.URL(), db.Name) {
			t.Errorf("database %s is still on the server after Drop", db.Name)
		}

		closed = true
		closing := time.Now()
		if err := srv.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		t.Logf("Close took %v", time.Since(closing).Round(time.Millisecond))
		if slices.Contains(e.containers(t), id) {
			t.Errorf("container %s is still on %s after Close", id, e.name)
		}
	})

	t.Run("FromContainer", func(t *testing.T) {
		const user, password, dbName = "tcuser", "p@ss w/rd:#%+", "tcdb"
		ctr, err := tcpostgres.Run(ctx, e.image,
			tcpostgres.WithUsername(user),
			tcpostgres.WithPassword(password),
			tcpostgres.WithDatabase(dbName),
			tcpostgres.BasicWaitStrategies(),
			labels,
		)
		testcontainers.CleanupContainer(t, ctr)
		if err != nil {
			t.Fatalf("postgres.Run(%s) on %s: %v", e.image, e.name, err)
		}
		before := e.containers(t)
		if !slices.Equal(before, []string{ctr.GetContainerID()}) {
			t.Fatalf("the session's containers are %v, want only the test's %s", before, ctr.GetContainerID())
		}
		srv, err := pgtesttc.FromContainer(ctx, ctr)
		if err != nil {
			t.Fatalf("FromContainer: %v", err)
		}
		t.Cleanup(func() { _ = srv.Close(context.Background()) })

		var name string
		t.Run("test", func(t *testing.T) {
			conn, err := pgx.Connect(ctx, srv.New(t, pgtest.WithMigrations(migrations)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			var seeded int
			if err := conn.QueryRow(ctx, "select current_database(), count(*) from items where name = 'seed'").Scan(&name, &seeded); err != nil {
				t.Fatalf("the migrated table: %v", err)
			}
			if seeded != 1 {
				t.Errorf("%d seed rows, want the 1 of the migrations", seeded)
			}
			// The database lives in the test's container: its own psql lists it.
			if got := psqlIn(t, ctx, ctr, user, password, dbName, "select datname from pg_database where datname = '"+name+"'"); got != name {
				t.Errorf("psql in container %s lists %q, want database %s", ctr.GetContainerID(), got, name)
			}
		})
		if after := e.containers(t); !slices.Equal(after, before) {
			t.Errorf("containers changed from %v to %v: FromContainer must use the test's container, not start one", before, after)
		}
		if got := psqlIn(t, ctx, ctr, user, password, dbName, "select count(*) from pg_database where datname = '"+name+"'"); got != "0" {
			t.Errorf("database %s of the finished test: count %s in the container, want 0", name, got)
		}

		if err := srv.Close(ctx); err != nil {
			t.Fatalf("Close: %v", err)
		}
		state, err := ctr.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !state.Running {
			t.Errorf("the test's container is %q after Close, want it running", state.Status)
		}
	})
}

// added is what after holds and before does not.
func added(before, after []string) []string {
	var out []string
	for _, id := range after {
		if !slices.Contains(before, id) {
			out = append(out, id)
		}
	}
	return out
}

func databaseExists(t *testing.T, ctx context.Context, adminURL, name string) bool {
	t.Helper()
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var ok bool
	if err := conn.QueryRow(ctx, "select exists (select from pg_database where datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// psqlIn runs a query with the psql inside ctr and returns its unaligned output.
func psqlIn(t *testing.T, ctx context.Context, ctr *tcpostgres.PostgresContainer, user, password, db, query string) string {
	t.Helper()
	code, r, err := ctr.Exec(ctx, []string{"psql", "-X", "-U", user, "-d", db, "-tAc", query},
		tcexec.Multiplexed(), tcexec.WithEnv([]string{"PGPASSWORD=" + password}))
	if err != nil {
		t.Fatalf("psql in the container: %v", err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 {
		t.Fatalf("psql in the container: exit %d: %s", code, out)
	}
	return strings.TrimSpace(string(out))
}
