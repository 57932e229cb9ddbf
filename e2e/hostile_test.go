package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/poststack/poststack/internal/testenv"
)

// The hostile-repository test: a checkout crafted to make poststack destroy data, write outside
// the project, remove other people's containers or print secrets. Every binary that reads a
// project runs in it, on a real PostgreSQL and on both engines; afterwards a canary file outside
// the project, a canary table in another database, canary containers and a canary process are
// untouched, and no password appears in any output, log, annotation, step summary or image.

// hostileWorld is what the attacks aim at, and what must survive them.
type hostileWorld struct {
	home        string // $HOME of every command: holds the canary .bashrc
	bashrc      string
	bashrcStat  os.FileInfo
	outsideDir  string // a directory of the user's, outside the project
	outsideLogs string // where the project's logs/ symlink points
	secretFile  string // a file of the user's holding a secret, outside the project
	victimURL   string // another database, with a canary table, its own role and password
	victimPW    string
	targetURL   string // the database the user means
	targetPW    string
	stranger    *exec.Cmd // a process of somebody else's
	canaries    map[string]string
	engineCLIs  map[string]string
	stateHome   string // $XDG_STATE_HOME
	tmp         string // $TMPDIR, traversable by the postgres user
	environ     []string
	summary     string // $GITHUB_STEP_SUMMARY
	ghOutput    string // $GITHUB_OUTPUT (holds database-url by design; not checked for it)
	outputs     *bytes.Buffer
	secrets     []string
}

const topSecret = "TOPSECRET-4c1b9e"

func newHostileWorld(t *testing.T) *hostileWorld {
	t.Helper()
	ctx := testContext(t, time.Minute)
	w := &hostileWorld{home: t.TempDir(), outsideDir: t.TempDir(), outsideLogs: t.TempDir(), stateHome: t.TempDir(),
		canaries: map[string]string{}, engineCLIs: map[string]string{}, outputs: &bytes.Buffer{}}
	w.bashrc = filepath.Join(w.home, ".bashrc")
	if err := os.WriteFile(w.bashrc, []byte("# the user's own\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.secretFile = filepath.Join(w.outsideDir, "id_ed25519")
	if err := os.WriteFile(w.secretFile, []byte(topSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.outsideDir, "keep"), []byte("keep\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.bashrcStat, err = os.Stat(w.bashrc); err != nil {
		t.Fatal(err)
	}

	w.targetURL = testenv.Database(t)
	w.targetPW = urlPassword(t, w.targetURL)
	w.victimPW = "victim-pw-" + randomHex(t, 6)
	role := "victim_" + randomHex(t, 4)
	// Registered before the database exists, so that it runs after testenv drops it.
	t.Cleanup(func() {
		if c, err := pgx.Connect(context.Background(), testenv.Postgres(t)); err == nil {
			c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
			c.Close(context.Background())
		}
	})
	victimDB := testenv.Database(t)
	admin, err := pgx.Connect(ctx, testenv.Postgres(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	victimName := strings.TrimPrefix(mustParseURL(t, victimDB).Path, "/")
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD '%s'; ALTER DATABASE %s OWNER TO %s",
		role, w.victimPW, pgx.Identifier{victimName}.Sanitize(), role)); err != nil {
		t.Fatal(err)
	}
	u := mustParseURL(t, victimDB)
	u.User = url.UserPassword(role, w.victimPW)
	w.victimURL = u.String()
	vconn, err := pgx.Connect(ctx, w.victimURL)
	if err != nil {
		t.Fatal(err)
	}
	defer vconn.Close(ctx)
	if _, err := vconn.Exec(ctx, "CREATE TABLE canary (v text); INSERT INTO canary VALUES ('alive'), ('well')"); err != nil {
		t.Fatal(err)
	}

	w.stranger = exec.Command("sleep", "600")
	if err := w.stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.stranger.Process.Kill(); w.stranger.Wait() })

	w.tmp, err = os.MkdirTemp("/dev/shm", "e2e-hostile-")
	if err != nil {
		w.tmp, err = os.MkdirTemp("/tmp", "e2e-hostile-")
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(w.tmp, 0o755)
	t.Cleanup(func() { os.RemoveAll(w.tmp) })
	w.summary = filepath.Join(t.TempDir(), "summary.md")
	w.ghOutput = filepath.Join(t.TempDir(), "output.txt")
	for _, f := range []string{w.summary, w.ghOutput} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	w.environ = append(os.Environ(), "HOME="+w.home, "XDG_STATE_HOME="+w.stateHome, "XDG_CACHE_HOME="+t.TempDir(),
		"TMPDIR="+w.tmp, "DATABASE_URL="+w.targetURL, "NO_COLOR=1",
		"GITHUB_ACTIONS=true", "GITHUB_STEP_SUMMARY="+w.summary, "GITHUB_OUTPUT="+w.ghOutput,
		// Stray variables of the kind a CI job may carry: none of them is a setting.
		"POSTSTACK_TARGET=0", "POSTSTACK_SHOW_SECRETS=true", "POSTSTACK_ALLOW_DRIFT=true", "POSTSTACK_OUTPUT="+w.bashrc)
	w.secrets = []string{w.targetPW, w.victimPW, topSecret}
	return w
}

// canaryContainer starts a stranger's container on engine: no poststack labels, a name that
// the forged records use.
func (w *hostileWorld) canaryContainer(t *testing.T, engine string) string {
	t.Helper()
	ctx := testContext(t, 2*time.Minute)
	cli := engineCLI(t, engine)
	name := "e2e-stranger-" + engine + "-" + randomHex(t, 3)
	args := []string{"run", "-d", "--name", name, testenv.BaseImage(t, engine), "sleep", "infinity"}
	if _, err := w.engineCmd(ctx, t, engine, cli, args...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rm := []string{"rm", "-f", name}
		if engine == testenv.EnginePodman {
			rm = []string{"rm", "-f", "-t", "0", name} // docker rm has no -t: it kills at once
		}
		if out, err := w.engineCmd(context.Background(), t, engine, cli, rm...); err != nil {
			t.Errorf("removing the canary %s: %v\n%s", name, err, out)
		}
	})
	w.canaries[engine] = name
	w.engineCLIs[engine] = cli
	return name
}

func (w *hostileWorld) engineCmd(ctx context.Context, t *testing.T, engine, cli string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Env = os.Environ()
	if engine == testenv.EngineDocker {
		cmd.Env = append(cmd.Env, "DOCKER_HOST="+testenv.Docker(t))
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", engine, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// poststack runs one of the binaries in dir; its stderr, and its stdout unless the command's job
// is to print a secret (checkStdout false), are kept for the final leak check.
func (w *hostileWorld) poststack(t *testing.T, dir string, checkStdout bool, extraEnv []string, bin string, args ...string) (string, string, int) {
	t.Helper()
	ctx := testContext(t, 5*time.Minute)
	cmd := exec.CommandContext(ctx, binary(t, bin), args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, w.environ...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	fmt.Fprintf(w.outputs, "\n$ %s %s (exit %d)\n%s", bin, strings.Join(args, " "), code, stderr.String())
	if checkStdout {
		w.outputs.WriteString(stdout.String())
	}
	return stdout.String(), stderr.String(), code
}

// want runs a command and fails the test unless it exits with code.
func (w *hostileWorld) want(t *testing.T, code int, dir string, checkStdout bool, bin string, args ...string) string {
	t.Helper()
	stdout, stderr, got := w.poststack(t, dir, checkStdout, nil, bin, args...)
	if got != code {
		t.Errorf("%s %s: exit %d, want %d\nstdout: %s\nstderr: %s", bin, strings.Join(args, " "), got, code, stdout, stderr)
	}
	return stdout
}

// hostileProject writes the crafted checkout.
func (w *hostileWorld) hostileProject(t *testing.T, project string) string {
	t.Helper()
	dir := t.TempDir()
	planted := filepath.Join(dir, "planted-state")
	writeFiles(t, dir, map[string]string{
		".poststack.yml": "environment: dev\nproject:\n  name: " + project + "\nenvironments:\n  dev:\n" +
			"    postgres:\n      database: " + project + "_dev\n      user: app\n      port: 5439\n      password: auto_generated\n" +
			"    variables:\n      GREETING: hello\n",
		".env": strings.Join([]string{
			"POSTSTACK_OUTPUT=" + w.bashrc, "POSTSTACK_O=" + w.bashrc,
			"POSTSTACK_TARGET=0", "POSTSTACK_TARGET_VERSION=0", "POSTSTACK_STEPS=99", "POSTSTACK_ALL=true",
			"POSTSTACK_ALLOW_DRIFT=true", "POSTSTACK_ALLOW_UNDEFINED=true", "POSTSTACK_SHOW_SECRETS=true",
			"POSTSTACK_STATE_DIR=" + planted, "POSTSTACK_SCRATCH_URL=" + w.victimURL,
			"POSTSTACK_DATABASE_URL=" + w.victimURL, "POSTSTACK_CONFIG_FILE=" + w.secretFile,
			"POSTSTACK_FORCE=true", "POSTSTACK_VOLUMES=true", "POSTSTACK_JSON=true",
		}, "\n") + "\n",
		".env.production":                   "API_TOKEN=" + topSecret + "\n",
		".dockerignore":                     "!.env\n!.env.production\n!.poststack\n!logs\n",
		"migrations/0001_init.sql":          "CREATE TABLE items (id int PRIMARY KEY, name text);\n",
		"migrations/0001_init.rollback.sql": "DROP TABLE items;\n",
		"migrations/0002_more.sql":          "ALTER TABLE items ADD COLUMN note text;\n",
		"migrations/0002_more.rollback.sql": "ALTER TABLE items DROP COLUMN note;\n",
		"containers/app/Dockerfile":         "FROM poststack/base-debian\nCOPY . /app\n",
		"deploy/app.yaml":                   "greeting: ${GREETING}\npassword: ${DB_PASSWORD}\n",
		"deploy/need.tmpl":                  "x: ${UNDEFINED_THING:?need ${DB_PASSWORD} here}\n",
	})
	// logs/ is a symbolic link out of the project.
	if err := os.Symlink(w.outsideLogs, filepath.Join(dir, "logs")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// forgeRecords plants ephemeral state records naming the stranger's containers, process and
// directory, both where the .env points and in the user's real state directory.
func (w *hostileWorld) forgeRecords(t *testing.T, project string) {
	t.Helper()
	created := time.Now().UTC().Format(time.RFC3339Nano)
	records := map[string]string{
		"forged0native": fmt.Sprintf(`{"id":"forged0native","provider":"native","url":"postgres://postgres:x@127.0.0.1:1/postgres","created":%q,"port":1,"detached":true,"dir":%q,"pid":%d}`,
			created, w.outsideDir, w.stranger.Process.Pid),
	}
	for engine, name := range w.canaries {
		id := "forged0" + engine
		records[id] = fmt.Sprintf(`{"id":%q,"provider":"container","url":"postgres://postgres:x@127.0.0.1:1/postgres","created":%q,"port":1,"container":%q,"engine":%q}`,
			id, created, name, engine)
	}
	for _, dir := range []string{filepath.Join(project, "planted-state"), filepath.Join(w.stateHome, "poststack", "ephemeral")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		for id, rec := range records {
			if err := os.WriteFile(filepath.Join(dir, id+".json"), []byte(rec), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// assertUntouched checks every canary.
func (w *hostileWorld) assertUntouched(t *testing.T) {
	t.Helper()
	ctx := testContext(t, time.Minute)
	if b, err := os.ReadFile(w.bashrc); err != nil || string(b) != "# the user's own\n" {
		t.Errorf("canary file %s changed: %q %v", w.bashrc, b, err)
	} else if st, _ := os.Stat(w.bashrc); !st.ModTime().Equal(w.bashrcStat.ModTime()) || st.Mode() != w.bashrcStat.Mode() {
		t.Errorf("canary file %s was rewritten", w.bashrc)
	}
	if entries, _ := os.ReadDir(w.home); len(entries) != 1 {
		t.Errorf("files appeared in $HOME next to the canary: %v", entries)
	}
	for _, name := range []string{"id_ed25519", "keep"} {
		if _, err := os.Stat(filepath.Join(w.outsideDir, name)); err != nil {
			t.Errorf("the user's directory lost %s: %v", name, err)
		}
	}
	if entries, _ := os.ReadDir(w.outsideLogs); len(entries) != 0 {
		t.Errorf("logs were written through the project's logs/ symlink: %v", entries)
	}
	conn, err := pgx.Connect(ctx, w.victimURL)
	if err != nil {
		t.Fatalf("victim database: %v", err)
	}
	defer conn.Close(ctx)
	var rows, ledger, tables int
	if err := conn.QueryRow(ctx, `select (select count(*) from canary),
		(select count(*) from pg_namespace where nspname = 'poststack'),
		(select count(*) from pg_tables where schemaname = 'public')`).Scan(&rows, &ledger, &tables); err != nil {
		t.Fatalf("victim database: %v", err)
	}
	if rows != 2 || ledger != 0 || tables != 1 {
		t.Errorf("victim database changed: %d canary rows, %d ledger schemas, %d tables", rows, ledger, tables)
	}
	if err := syscall.Kill(w.stranger.Process.Pid, 0); err != nil {
		t.Errorf("the stranger's process %d was killed: %v", w.stranger.Process.Pid, err)
	}
	for engine, name := range w.canaries {
		out, err := w.engineCmd(ctx, t, engine, w.engineCLIs[engine], "inspect", "--format", "{{.State.Running}}", name)
		if err != nil || strings.TrimSpace(out) != "true" {
			t.Errorf("the stranger's %s container %s is not running any more: %q %v", engine, name, out, err)
		}
	}
}

// assertNoSecret checks every output, the step summary, and the given files.
func (w *hostileWorld) assertNoSecret(t *testing.T, files ...string) {
	t.Helper()
	summary, _ := os.ReadFile(w.summary)
	haystacks := map[string]string{"outputs": w.outputs.String(), "step summary": string(summary)}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		haystacks[f] = string(b)
	}
	for where, text := range haystacks {
		// ::add-mask:: hands the secret to the runner, which hides it from the log: the one
		// line where it belongs.
		var kept []string
		for _, line := range strings.Split(text, "\n") {
			if !strings.HasPrefix(line, "::add-mask::") {
				kept = append(kept, line)
			}
		}
		text = strings.Join(kept, "\n")
		for _, s := range w.secrets {
			if s != "" && strings.Contains(text, s) {
				i := strings.Index(text, s)
				t.Errorf("a secret appears in %s: …%s…", where, strings.ReplaceAll(text[max(0, i-80):i], "\n", " | "))
			}
		}
	}
}

func TestHostileRepository(t *testing.T) {
	w := newHostileWorld(t)
	engines := []string{testenv.EnginePodman, testenv.EngineDocker}
	for _, e := range engines {
		w.canaryContainer(t, e)
	}
	project := "hostile" + randomHex(t, 3)
	dir := w.hostileProject(t, project)
	w.forgeRecords(t, dir)

	t.Run("ps-subst", func(t *testing.T) {
		// Rendering is the job: its stdout carries the password, nothing else may.
		out := w.want(t, 0, dir, false, "ps-subst", "--env", "dev", "--yaml", "deploy/app.yaml")
		if !strings.Contains(out, "greeting: hello") {
			t.Errorf("render: %q", out)
		}
		pw, err := os.ReadFile(filepath.Join(dir, ".poststack", project+"-dev.password"))
		if err != nil {
			t.Fatalf("the generated password: %v", err)
		}
		w.secrets = append(w.secrets, strings.TrimSpace(string(pw)))
		w.want(t, 0, dir, true, "ps-subst", "--env", "dev", "--check", "deploy/app.yaml")
		w.want(t, 0, dir, true, "ps-subst", "--env", "dev", "--list", "deploy/app.yaml")
		w.want(t, 3, dir, true, "ps-subst", "--env", "dev", "deploy/need.tmpl")
		w.want(t, 3, dir, true, "ps-subst", "deploy/need.tmpl")
	})

	t.Run("ps-migrate", func(t *testing.T) {
		w.want(t, 3, dir, true, "ps-migrate", "status", "--exit-code")
		w.want(t, 0, dir, true, "ps-migrate", "up")
		w.want(t, 0, dir, true, "ps-migrate", "status")
		w.want(t, 0, dir, true, "ps-migrate", "verify")
		w.want(t, 0, dir, true, "ps-migrate", "verify", "--rollback")
		w.want(t, 2, dir, true, "ps-migrate", "down")
		w.want(t, 0, dir, true, "ps-migrate", "down", "--steps", "1")
		w.want(t, 0, dir, true, "ps-migrate", "up")
		w.want(t, 0, dir, true, "ps-migrate", "test-connection")
		w.want(t, 0, dir, true, "ps-migrate", "wait", "--timeout", "20s")
		w.want(t, 0, dir, true, "ps-migrate", "show-schema")
		w.want(t, 0, dir, true, "ps-migrate", "dump-schema")
		if _, err := exec.LookPath("pg_dump"); err == nil {
			w.want(t, 0, dir, true, "ps-migrate", "backup", "-o", "backup.dump")
			if st, err := os.Stat(filepath.Join(dir, "backup.dump")); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("backup: %v, mode %v, want 0600", err, st.Mode().Perm())
			}
		}
		// The ledger is in the database the user named (DATABASE_URL), with both migrations.
		conn, err := pgx.Connect(testContext(t, time.Minute), w.targetURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		var n int
		if err := conn.QueryRow(context.Background(), "select count(*) from poststack.schema_migrations").Scan(&n); err != nil || n != 2 {
			t.Errorf("target ledger: %d rows, %v; want 2", n, err)
		}
	})

	t.Run("ps-env ephemeral", func(t *testing.T) {
		out := w.want(t, 0, dir, false, "ps-env", "ephemeral", "up", "--provider", "native", "--migrate", "migrations")
		w.secrets = append(w.secrets, urlPassword(t, strings.TrimSpace(out)))
		for _, e := range engines {
			builtinImagesBuilt(t, e)
			out := w.want(t, 0, dir, false, "ps-env", "ephemeral", "up", "--provider", "container", "--container-runtime", e,
				"--migrate", "migrations")
			w.secrets = append(w.secrets, urlPassword(t, strings.TrimSpace(out)))
		}
		if entries, _ := os.ReadDir(filepath.Join(dir, "planted-state")); len(entries) != 1+len(engines) {
			t.Errorf("the .env's state dir was written: %v", entries)
		}
		w.want(t, 0, dir, true, "ps-env", "ephemeral", "list")
		w.poststack(t, dir, true, nil, "ps-env", "ephemeral", "down", "--all")
		w.want(t, 2, dir, true, "ps-env", "ephemeral", "down")
	})

	for _, e := range engines {
		t.Run("ps-build "+e, func(t *testing.T) {
			builtinImagesBuilt(t, e)
			ctx := testContext(t, 10*time.Minute)
			// Build logs would be written through the logs/ symlink: refused before anything.
			stdout, stderr, code := psBuild(t, ctx, e, dir, "app")
			fmt.Fprintf(w.outputs, "\n$ ps-build app (%s, exit %d)\n%s%s", e, code, stdout, stderr)
			if code != 2 || !strings.Contains(stderr, "logs") {
				t.Fatalf("ps-build app with a symlinked logs/: exit %d, want 2 naming logs\n%s%s", code, stdout, stderr)
			}
			// The same checkout with a real logs/ (holding a log that must not reach the image).
			logs := filepath.Join(dir, "logs")
			if err := os.Remove(logs); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, map[string]string{"logs/poststack.log": "{\"msg\":\"x\"}\n"})
			defer func() {
				os.RemoveAll(logs)
				if err := os.Symlink(w.outsideLogs, logs); err != nil {
					t.Error(err)
				}
			}()
			stdout, stderr, code = psBuild(t, ctx, e, dir, "app")
			fmt.Fprintf(w.outputs, "\n$ ps-build app (%s, exit %d)\n%s%s", e, code, stdout, stderr)
			if code != 0 {
				t.Fatalf("ps-build app: exit %d\n%s%s", code, stdout, stderr)
			}
			ref := project + "/app"
			t.Cleanup(func() { w.engineCmd(context.Background(), t, e, w.engineCLIs[e], "rmi", "-f", ref) })
			listing, err := w.engineCmd(ctx, t, e, w.engineCLIs[e], "run", "--rm", ref, "find", "/app")
			if err != nil {
				t.Fatal(err)
			}
			for _, bad := range []string{"/app/.env", "/app/.poststack", "/app/logs", "/app/.env.production"} {
				if strings.Contains(listing+"\n", bad+"\n") || strings.Contains(listing, bad+"/") {
					t.Errorf("the image carries %s:\n%s", bad, listing)
				}
			}
			if !strings.Contains(listing, "/app/migrations/0001_init.sql") {
				t.Errorf("the image lacks the project's ordinary files:\n%s", listing)
			}
			var greps []string
			for _, s := range w.secrets {
				greps = append(greps, "-e", s)
			}
			found, _ := w.engineCmd(ctx, t, e, w.engineCLIs[e], append([]string{"run", "--rm", ref, "grep", "-rlF"}, append(greps, "/app")...)...)
			if strings.Contains(found, "/app/") {
				t.Errorf("secrets inside the image: %s", found)
			}
		})
	}

	w.assertUntouched(t)
	w.assertNoSecret(t)
}

// TestHostileRepositoryFiles: symbolic links, FIFOs and devices where poststack reads project
// files, a .poststack that is a link, and path settings pointing out of the project. Each is
// refused (exit 2) without reading the target or writing anywhere.
func TestHostileRepositoryFiles(t *testing.T) {
	w := newHostileWorld(t)
	project := "hostilef" + randomHex(t, 3)
	base := map[string]string{
		".poststack.yml": "environment: dev\nproject:\n  name: " + project + "\nenvironments:\n  dev:\n" +
			"    postgres:\n      database: d\n      user: u\n      port: 5439\n      password: auto_generated\n",
		"migrations/0001_init.sql":          "CREATE TABLE items (id int);\n",
		"migrations/0001_init.rollback.sql": "DROP TABLE items;\n",
		"deploy/app.yaml":                   "password: ${DB_PASSWORD}\n",
	}
	fresh := func(t *testing.T, extra func(dir string)) string {
		dir := t.TempDir()
		writeFiles(t, dir, base)
		extra(dir)
		return dir
	}
	symlink := func(t *testing.T, target, link string) {
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	migrateCommands := [][]string{{"status"}, {"up"}, {"verify"}, {"verify", "--rollback"}}

	t.Run("migration symlinked to a secret", func(t *testing.T) {
		dir := fresh(t, func(dir string) { symlink(t, w.secretFile, filepath.Join(dir, "migrations", "0002_leak.sql")) })
		for _, args := range migrateCommands {
			w.want(t, 2, dir, true, "ps-migrate", args...)
		}
		w.want(t, 2, dir, true, "ps-env", "ephemeral", "up", "--migrate", "migrations")
	})
	t.Run("migration symlinked to /dev/zero", func(t *testing.T) {
		dir := fresh(t, func(dir string) { symlink(t, "/dev/zero", filepath.Join(dir, "migrations", "0002_zero.sql")) })
		for _, args := range migrateCommands {
			w.want(t, 2, dir, true, "ps-migrate", args...)
		}
	})
	t.Run("migration FIFO", func(t *testing.T) {
		dir := fresh(t, func(dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "migrations", "0002_fifo.sql"), 0o644); err != nil {
				t.Fatal(err)
			}
		})
		start := time.Now()
		for _, args := range migrateCommands {
			w.want(t, 2, dir, true, "ps-migrate", args...)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("the FIFO held the commands for %v", d)
		}
	})
	t.Run(".env symlinked to a secret", func(t *testing.T) {
		dir := fresh(t, func(dir string) { symlink(t, w.secretFile, filepath.Join(dir, ".env")) })
		w.want(t, 2, dir, true, "ps-migrate", "status")
		w.want(t, 2, dir, true, "ps-subst", "deploy/app.yaml")
		w.want(t, 2, dir, true, "ps-env", "ephemeral", "list")
		w.want(t, 2, dir, true, "ps-build", "--dry-run")
	})
	t.Run(".poststack symlinked out of the project", func(t *testing.T) {
		dir := fresh(t, func(dir string) { symlink(t, w.outsideDir, filepath.Join(dir, ".poststack")) })
		w.want(t, 2, dir, true, "ps-subst", "--env", "dev", "deploy/app.yaml")
		if entries, _ := os.ReadDir(w.outsideDir); len(entries) != 2 {
			t.Errorf("files appeared in the .poststack link's target: %v", entries)
		}
	})
	t.Run("password file symlinked to a secret", func(t *testing.T) {
		dir := fresh(t, func(dir string) {
			os.Mkdir(filepath.Join(dir, ".poststack"), 0o700)
			symlink(t, w.secretFile, filepath.Join(dir, ".poststack", project+"-dev.password"))
		})
		w.want(t, 2, dir, true, "ps-subst", "--env", "dev", "deploy/app.yaml")
	})
	t.Run("log file symlinked to the canary", func(t *testing.T) {
		dir := fresh(t, func(dir string) {
			os.Mkdir(filepath.Join(dir, "logs"), 0o755)
			symlink(t, w.bashrc, filepath.Join(dir, "logs", "poststack.log"))
		})
		w.want(t, 0, dir, true, "ps-migrate", "up")
		w.want(t, 0, dir, true, "ps-subst", "--env", "dev", "--check", "deploy/app.yaml")
	})
	t.Run("path settings out of the project", func(t *testing.T) {
		for _, setting := range []string{"POSTSTACK_LOG_DIR=" + w.outsideLogs, "POSTSTACK_MIGRATIONS_PATH=" + w.outsideDir,
			"POSTSTACK_LOG_DIR=../../" + filepath.Base(w.outsideLogs)} {
			dir := fresh(t, func(dir string) { writeFiles(t, dir, map[string]string{".env": setting + "\n"}) })
			w.want(t, 2, dir, true, "ps-migrate", "status")
			w.want(t, 2, dir, true, "ps-env", "ephemeral", "list")
		}
	})

	w.assertUntouched(t)
	w.assertNoSecret(t)
}

func urlPassword(t *testing.T, s string) string {
	t.Helper()
	pw, _ := mustParseURL(t, s).User.Password()
	if pw == "" {
		t.Fatalf("no password in %q", strconv.Quote(s))
	}
	return pw
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("parse URL: %v", err)
	}
	return u
}
