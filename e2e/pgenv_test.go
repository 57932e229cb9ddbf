package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/poststack/poststack/internal/testenv"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/pgenv"
	"github.com/poststack/poststack/pkg/secret"
)

// pgenvEngine returns the engine, with the built-in postgres image built on it. The docker CLI
// is pinned to the daemon testenv found, so that a DOCKER_HOST aimed at podman's socket cannot
// turn the docker run into a second podman run.
func pgenvEngine(t *testing.T, name string) *engine.Engine {
	t.Helper()
	builtinImagesBuilt(t, name)
	var opts []engine.Option
	if name == testenv.EngineDocker {
		opts = append(opts, engine.WithEnviron(append(os.Environ(), "DOCKER_HOST="+testenv.Docker(t))))
	}
	eng, err := engine.New(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// freePort returns a TCP port of 127.0.0.1 that nobody listens on at the moment.
func pgenvFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pgenvSpec is a spec for a fresh project whose container, volume and network are removed when
// the test ends.
func pgenvSpec(t *testing.T, eng *engine.Engine, project, env string) pgenv.Spec {
	t.Helper()
	// The passwords a project's `auto_generated` gives: made once, kept in .poststack/.
	stateDir := t.TempDir()
	password, err := secret.Password(stateDir, project, env)
	if err != nil {
		t.Fatal(err)
	}
	adminPassword, err := secret.AdminPassword(stateDir, project, env)
	if err != nil {
		t.Fatal(err)
	}
	s := pgenv.Spec{
		Project: project, Environment: env, Port: pgenvFreePort(t),
		Database: project + "_" + env, User: project + "_" + env + "_user",
		Password: password, AdminPassword: adminPassword,
	}
	t.Cleanup(func() {
		// Asked again at the end, the state directory gives the same passwords.
		if again, err := secret.Password(stateDir, project, env); err != nil || again != password {
			t.Errorf("the generated password changed: %q, %v", again, err)
		}
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if t.Failed() {
			if logs, err := eng.Logs(ctx, project+"-"+env+"-postgres", 40); err == nil {
				t.Logf("logs of %s-%s-postgres:\n%s", project, env, logs)
			}
		}
		if err := pgenv.Remove(ctx, eng, s, true); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return s
}

func pgenvUp(t *testing.T, ctx context.Context, eng *engine.Engine, s pgenv.Spec, wantAction string) *pgenv.Result {
	t.Helper()
	start := time.Now()
	res, err := pgenv.Up(ctx, eng, s, func(line string) { t.Logf("%s: %s", s.Environment, line) })
	if err != nil {
		t.Fatalf("Up %s-%s: %v", s.Project, s.Environment, err)
	}
	t.Logf("Up %s-%s: %s in %v", s.Project, s.Environment, res.Action, time.Since(start).Round(time.Millisecond))
	if res.Action != wantAction {
		t.Errorf("Up %s-%s: action %q, want %q", s.Project, s.Environment, res.Action, wantAction)
	}
	return res
}

func pgenvConnect(t *testing.T, ctx context.Context, dbURL string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// rowsOf returns the notes a table holds, or nil when the table does not exist.
func pgenvRows(t *testing.T, ctx context.Context, dbURL string) []string {
	t.Helper()
	conn := pgenvConnect(t, ctx, dbURL)
	rows, err := conn.Query(ctx, "SELECT note FROM notes ORDER BY id")
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func pgenvWantRows(t *testing.T, ctx context.Context, step, dbURL string, want ...string) {
	t.Helper()
	got := pgenvRows(t, ctx, dbURL)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("%s: rows %q, want %q", step, got, want)
	}
}

// TestPostgresEnvironment is issue 5's environment Postgres on podman and on docker: data
// survives stop, start, removal and recreation of the container; the password stays; projects
// and environments stay apart; hostile names are created as written; a taken port is exit 2
// before anything is created.
func TestPostgresEnvironment(t *testing.T) {
	for _, name := range pgEngines {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eng := pgenvEngine(t, name)
			t.Run("lifecycle", func(t *testing.T) { testPGEnvLifecycle(t, eng) })
			t.Run("side by side", func(t *testing.T) { testPGEnvSideBySide(t, eng) })
			t.Run("port taken", func(t *testing.T) { testPGEnvPortTaken(t, eng) })
			t.Run("ready timeout", func(t *testing.T) { testPGEnvTimeout(t, eng) })
			t.Run("port misrouted", func(t *testing.T) { testPGEnvPortMisrouted(t, eng) })
		})
	}
}

func testPGEnvLifecycle(t *testing.T, eng *engine.Engine) {
	ctx := testContext(t, 5*time.Minute)
	project := "pge" + randomHex(t, 4)
	// A second name of the same image; registered first so that it is removed last, after the
	// container using it.
	alias := "localhost/pgenv-e2e-" + randomHex(t, 4) + ":latest"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := eng.RemoveImage(ctx, alias, false); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	s := pgenvSpec(t, eng, project, "dev")

	res := pgenvUp(t, ctx, eng, s, pgenv.ActionCreated)
	if res.Container != project+"-dev-postgres" {
		t.Errorf("container %q", res.Container)
	}
	wantURL := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", s.User, s.Password, s.Port, s.Database)
	if res.HostURL != wantURL {
		t.Errorf("HostURL = %q, want %q", res.HostURL, wantURL)
	}
	if want := fmt.Sprintf("@%s:5432/%s", res.Container, s.Database); !strings.Contains(res.ContainerURL, want) {
		t.Errorf("ContainerURL = %q, want it to hold %q", res.ContainerURL, want)
	}
	conn := pgenvConnect(t, ctx, res.HostURL)
	var super bool
	if err := conn.QueryRow(ctx, "SELECT rolsuper FROM pg_roles WHERE rolname = current_user").Scan(&super); err != nil || super {
		t.Errorf("the app role is a superuser: %v (%v)", super, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE notes (id serial PRIMARY KEY, note text); INSERT INTO notes (note) VALUES ('one'), ('two')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	c, err := eng.InspectContainer(ctx, res.Container)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{pgenv.LabelProject: project, pgenv.LabelEnvironment: "dev"} {
		if c.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
		}
	}
	if c.Labels[pgenv.LabelConfig] == "" || strings.Contains(c.Labels[pgenv.LabelConfig], s.AdminPassword) {
		t.Errorf("config label %q", c.Labels[pgenv.LabelConfig])
	}
	if len(c.Ports) != 1 || c.Ports[0].HostIP != "127.0.0.1" || c.Ports[0].HostPort != s.Port {
		t.Errorf("published ports %+v, want 127.0.0.1:%d only", c.Ports, s.Port)
	}
	st, err := pgenv.Status(ctx, eng, s)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Exists || !st.Running || !st.UpToDate || !st.VolumeExists || st.Port != s.Port {
		t.Errorf("Status = %+v", st)
	}

	pgenvUp(t, ctx, eng, s, pgenv.ActionReused)

	if err := pgenv.Stop(ctx, eng, s); err != nil {
		t.Fatal(err)
	}
	if st, err := pgenv.Status(ctx, eng, s); err != nil || st.Running || !st.Exists {
		t.Errorf("Status after Stop = %+v, %v", st, err)
	}
	res = pgenvUp(t, ctx, eng, s, pgenv.ActionStarted)
	pgenvWantRows(t, ctx, "after stop and start", res.HostURL, "one", "two")

	if err := pgenv.Remove(ctx, eng, s, false); err != nil {
		t.Fatal(err)
	}
	if st, err := pgenv.Status(ctx, eng, s); err != nil || st.Exists || !st.VolumeExists {
		t.Errorf("Status after Remove without volumes = %+v, %v", st, err)
	}
	res = pgenvUp(t, ctx, eng, s, pgenv.ActionCreated)
	pgenvWantRows(t, ctx, "after remove and create", res.HostURL, "one", "two")

	// The same stored password lets the app in after all that; a wrong one is refused.
	bad := strings.Replace(res.HostURL, ":"+s.Password+"@", ":"+s.Password+"x@", 1)
	if _, err := pgx.Connect(ctx, bad); !pgenvSQLState(err, "28P01") {
		t.Errorf("wrong password: %v, want SQLSTATE 28P01", err)
	}

	// A new admin password recreates the container; the data directory keeps the old one,
	// which Up resets, and the rows stay.
	s.AdminPassword = "admin-" + randomHex(t, 8)
	res = pgenvUp(t, ctx, eng, s, pgenv.ActionRecreated)
	pgenvWantRows(t, ctx, "after admin password change", res.HostURL, "one", "two")
	admin := strings.Replace(strings.Replace(res.HostURL, s.User+":"+s.Password, "postgres:"+s.AdminPassword, 1), "/"+s.Database+"?", "/postgres?", 1)
	pgenvConnect(t, ctx, admin).Close(ctx)
	pgenvUp(t, ctx, eng, s, pgenv.ActionReused)

	// Another name for the same image is another image reference: recreated, rows kept.
	if err := eng.TagImage(ctx, "poststack/postgres:latest", alias); err != nil {
		t.Fatal(err)
	}
	s.Image = alias
	res = pgenvUp(t, ctx, eng, s, pgenv.ActionRecreated)
	pgenvWantRows(t, ctx, "after image change", res.HostURL, "one", "two")

	if err := pgenv.Remove(ctx, eng, s, true); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"container": pgenvErr(eng.InspectContainer(ctx, s.Project+"-dev-postgres")),
		"volume":    pgenvErr(eng.InspectVolume(ctx, s.Project+"-dev-pgdata")),
		"network":   pgenvErr(eng.InspectNetwork(ctx, s.Project+"-dev")),
	} {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s after Remove with volumes: %v, want not found", what, err)
		}
	}
	res = pgenvUp(t, ctx, eng, s, pgenv.ActionCreated)
	if got := pgenvRows(t, ctx, res.HostURL); got != nil {
		t.Errorf("a new volume holds the old rows %q", got)
	}
}

func pgenvErr[T any](_ T, err error) error { return err }

func pgenvSQLState(err error, code string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == code
}

func testPGEnvSideBySide(t *testing.T, eng *engine.Engine) {
	ctx := testContext(t, 5*time.Minute)
	projects := []string{"pgea" + randomHex(t, 3), "pgeb" + randomHex(t, 3)}
	var specs []pgenv.Spec
	for _, p := range projects {
		for _, env := range []string{"dev", "staging"} {
			specs = append(specs, pgenvSpec(t, eng, p, env))
		}
	}
	// Hostile names in one of them: created exactly as written, nothing else dropped.
	specs[3].Database = `x"; DROP DATABASE postgres; --`
	specs[3].User = `u"; DROP ROLE postgres; --'`
	specs[3].Password = `p'; DROP ROLE postgres; --\`

	results := make([]*pgenv.Result, len(specs))
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i, s := range specs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = pgenv.Up(ctx, eng, s, nil)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	seenPorts := map[string]bool{}
	for i, s := range specs {
		conn := pgenvConnect(t, ctx, results[i].HostURL)
		me := s.Project + "/" + s.Environment
		if _, err := conn.Exec(ctx, "CREATE TABLE notes (id serial PRIMARY KEY, note text)"); err != nil {
			t.Fatalf("%s: %v", me, err)
		}
		if _, err := conn.Exec(ctx, "INSERT INTO notes (note) VALUES ($1)", me); err != nil {
			t.Fatal(err)
		}
		var user, db, port string
		if err := conn.QueryRow(ctx, "SELECT current_user, current_database(), current_setting('port')").Scan(&user, &db, &port); err != nil {
			t.Fatal(err)
		}
		if user != s.User || db != s.Database {
			t.Errorf("%s: connected as %q to %q, want %q to %q", me, user, db, s.User, s.Database)
		}
		seenPorts[results[i].HostURL] = true
		var others []string
		rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE NOT datistemplate ORDER BY datname")
		if err != nil {
			t.Fatal(err)
		}
		if others, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			t.Fatal(err)
		}
		if want := pgenvSortedPair("postgres", s.Database); strings.Join(others, "|") != want {
			t.Errorf("%s: databases %q, want %q", me, others, want)
		}
		var roles int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname IN ('postgres', $1)", s.User).Scan(&roles); err != nil || roles != 2 {
			t.Errorf("%s: %d of the roles postgres and %q exist (%v)", me, roles, s.User, err)
		}
	}
	if len(seenPorts) != len(specs) {
		t.Errorf("%d distinct URLs for %d environments", len(seenPorts), len(specs))
	}
	for i, s := range specs {
		pgenvWantRows(t, ctx, s.Project+"/"+s.Environment, results[i].HostURL, s.Project+"/"+s.Environment)
	}
	for _, p := range projects {
		cs, err := eng.ListContainers(ctx, map[string]string{pgenv.LabelProject: p})
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != 2 || cs[0].Name != p+"-dev-postgres" || cs[1].Name != p+"-staging-postgres" {
			t.Errorf("containers of %s: %+v", p, cs)
		}
	}
}

func pgenvSortedPair(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return a + "|" + b
}

func testPGEnvPortTaken(t *testing.T, eng *engine.Engine) {
	ctx := testContext(t, time.Minute)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s := pgenvSpec(t, eng, "pgep"+randomHex(t, 4), "dev")
	s.Port = l.Addr().(*net.TCPAddr).Port
	_, err = pgenv.Up(ctx, eng, s, nil)
	if exitcode.Of(err) != exitcode.Usage {
		t.Fatalf("Up on a taken port = %v (exit %d), want exit 2", err, exitcode.Of(err))
	}
	if msg := err.Error(); !strings.Contains(msg, strconv.Itoa(s.Port)) || !strings.Contains(msg, "port:") {
		t.Errorf("error %q names neither the port nor the `port:` setting", msg)
	}
	for what, err := range map[string]error{
		"container": pgenvErr(eng.InspectContainer(ctx, s.Project+"-dev-postgres")),
		"volume":    pgenvErr(eng.InspectVolume(ctx, s.Project+"-dev-pgdata")),
		"network":   pgenvErr(eng.InspectNetwork(ctx, s.Project+"-dev")),
	} {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("%s after a refused Up: %v, want not found", what, err)
		}
	}
}

// testPGEnvPortMisrouted plants what podman's netavark leaves behind for a container whose
// run was interrupted: a forwarding rule that sends connections to the environment's port to
// an address where nothing answers, ahead of the engine's own. Up must say so at once, naming
// the port and how to find the rule, not time out without a reason.
func testPGEnvPortMisrouted(t *testing.T, eng *engine.Engine) {
	ctx := testContext(t, time.Minute)
	s := pgenvSpec(t, eng, "pgem"+randomHex(t, 4), "dev")
	testenv.ForwardElsewhere(t, s.Port, "10.88.255.254:5432")
	began := time.Now()
	_, err := pgenv.Up(ctx, eng, s, nil)
	if err == nil {
		t.Fatal("Up on a misrouted port succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, "127.0.0.1:"+strconv.Itoa(s.Port)+" go unanswered") || !strings.Contains(msg, "--dport "+strconv.Itoa(s.Port)) || !strings.Contains(msg, "port:") {
		t.Errorf("Up: %v; want it to say the port's connections go unanswered, how to find the rule, and the `port:` setting", err)
	}
	if d := time.Since(began); d > 30*time.Second {
		t.Errorf("Up failed after %v: the misrouted port was found out late", d)
	}
}

// testPGEnvTimeout gives a first start (initdb) less time than it needs.
func testPGEnvTimeout(t *testing.T, eng *engine.Engine) {
	ctx := testContext(t, time.Minute)
	s := pgenvSpec(t, eng, "pget"+randomHex(t, 4), "dev")
	s.ReadyTimeout = 1500 * time.Millisecond
	_, err := pgenv.Up(ctx, eng, s, nil)
	if exitcode.Of(err) != exitcode.Timeout {
		t.Fatalf("Up = %v (exit %d), want exit 4", err, exitcode.Of(err))
	}
	if !strings.Contains(err.Error(), "log lines of "+s.Project+"-dev-postgres") {
		t.Errorf("timeout error without the container's logs: %v", err)
	}
	if strings.Contains(err.Error(), s.AdminPassword) {
		t.Errorf("timeout error shows the admin password: %v", err)
	}
}
