package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
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

	"github.com/poststack/poststack/internal/testenv"
)

// The secrets sweep (issue 10): with a known password kept in .poststack/ and carried by
// database URLs, every command of every binary runs, successful and failing, as text, with
// --json and under GitHub Actions, and the password must not appear in stdout, stderr,
// logs/poststack.log or any file written outside the secret store, in any form (as it is,
// percent-encoded for a query, a path or a URL's userinfo, JSON-escaped, or any part of it),
// unless the run's job is to hand it out (--show-secrets, ephemeral up's URL, a template
// that asks for ${DB_PASSWORD}).

// sweepMiddle is the middle of every password of the sweep, between two markers: characters
// that URLs, queries, paths, JSON and YAML each encode or quote in their own way, so that
// every form is looked for.
const sweepMiddle = " p@ss/w: rd #%+&=?x<>"

// secretKind says which password a tracked secret is.
type secretKind int

const (
	kindKnown     secretKind = iota // in .poststack/ and in the database URLs; opens the database
	kindWrong                       // the wrong password of the failing runs
	kindEphemeral                   // an ephemeral server's superuser password, learned from up
)

func (k secretKind) String() string {
	return [...]string{"known password", "wrong password", "ephemeral server's password"}[k]
}

// trackedSecret is a password the sweep looks for.
type trackedSecret struct {
	kind  secretKind
	value string
	// markers are parts of value, at its start and its end, that no encoding changes: when
	// one appears, some of the secret leaked even if no whole form did (a parser quoting
	// what follows the '@' or '#' of an unencoded password).
	markers []string
	// store is the directory whose job is to keep the secret; files under it are not swept.
	store string
}

type secretForm struct{ name, text string }

// forms returns value as it is and as each encoding a program could write it in.
func (s *trackedSecret) forms() []secretForm {
	js, _ := json.Marshal(s.value)
	var raw bytes.Buffer
	enc := json.NewEncoder(&raw)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s.value)
	all := []secretForm{
		{"as it is", s.value},
		{"query-escaped", url.QueryEscape(s.value)},
		{"path-escaped", url.PathEscape(s.value)},
		{"userinfo-escaped", strings.TrimPrefix(url.UserPassword("", s.value).String(), ":")},
		{"JSON-escaped", strings.Trim(string(js), `"`)},
		{"JSON-escaped", strings.Trim(strings.TrimSpace(raw.String()), `"`)},
	}
	var out []secretForm
	for _, f := range all {
		if !slices.ContainsFunc(out, func(o secretForm) bool { return o.text == f.text }) {
			out = append(out, f)
		}
	}
	return out
}

// find reports the first form of s in data, or a marker, with its offset and length.
func (s *trackedSecret) find(data []byte) (form string, at, n int) {
	for _, f := range s.forms() {
		if i := bytes.Index(data, []byte(f.text)); i >= 0 {
			return f.name, i, len(f.text)
		}
	}
	for _, m := range s.markers {
		if i := bytes.Index(data, []byte(m)); i >= 0 {
			return "in part (" + m + ")", i, len(m)
		}
	}
	return "", -1, 0
}

// sweepMode is one way every command runs.
type sweepMode struct {
	name    string
	flags   []string // after the command path
	actions bool     // GITHUB_ACTIONS=true, with GITHUB_OUTPUT, GITHUB_ENV and GITHUB_STEP_SUMMARY
}

func sweepModes() []sweepMode {
	return []sweepMode{
		{name: "text"},
		{name: "json", flags: []string{"--json"}},
		{name: "actions", actions: true},
	}
}

// sweepCase is one run of one command.
type sweepCase struct {
	bin string
	// cmd is the command path after the binary ("ephemeral up"); "" for a binary without
	// commands.
	cmd string
	// args follow the command path and the mode's flags; env entries (NAME=value) are added
	// to the run's environment. Both may hold {placeholders} (sweepWorld.vars).
	args  []string
	env   []string
	stdin string
	exit  int
	// shows lists where the run's job is to put a secret of a kind: a secret of that kind is
	// allowed there, and must be there (so that the sweep is seen to find what it looks for).
	shows []shown
	// engine names the container engine the run needs ("podman"); such runs go where
	// testenv finds the engine.
	engine string
	// learn marks ephemeral up: its URL's password becomes a tracked secret, its ID {eph-id}.
	learn bool
	// dir is a directory under the project to run in ("" = the project).
	dir string
}

type shown struct {
	sink string // "stdout", or a file relative to the mode's root ("project/out/secret.txt")
	kind secretKind
}

// actionsOutput is the GITHUB_OUTPUT file of the actions mode: ephemeral up sets its
// database-url there.
const actionsOutput = "gha/GITHUB_OUTPUT"

func (c sweepCase) command() string { return strings.TrimSpace(c.bin + " " + c.cmd) }

// sweepCases is the table: every command --help lists must have runs here (and, for one
// reaching a database, runs that fail to reach it); TestSecretsSweep fails otherwise.
func sweepCases() []sweepCase {
	var cs []sweepCase
	add := func(c ...sweepCase) { cs = append(cs, c...) }
	mig := func(cmd string, exit int, args ...string) sweepCase {
		return sweepCase{bin: "ps-migrate", cmd: cmd, args: args, exit: exit}
	}
	withEnv := func(c sweepCase, env ...string) sweepCase { c.env = env; return c }

	// ps-migrate, successful, in an order the database allows; the URL comes from every
	// place it can: .poststack/ through --env, --database-url, POSTSTACK_DATABASE_URL,
	// DATABASE_URL, a keyword=value string, --config-file.
	add(
		mig("wait", 0, "--env", "dev", "--timeout", "20s"),
		mig("test-connection", 0, "--database-url", "{url}"),
		withEnv(mig("test-connection", 0), "DATABASE_URL={url}"),
		withEnv(mig("test-connection", 0), "POSTSTACK_DATABASE_URL={dsn}"),
		mig("create-schema", 0, "--env", "dev"),
		mig("status", 0, "--env", "dev"),
		mig("status", 3, "--exit-code", "--database-url", "{url}"),
		withEnv(mig("migration-status", 0), "POSTSTACK_DATABASE_URL={url}"),
		mig("up", 0, "--dry-run", "--env", "dev"),
		mig("up", 0, "--env", "dev", "--target", "1"),
		mig("migrate", 0, "--database-url", "{url}"),
		mig("verify", 0, "--env", "dev"),
		mig("verify", 0, "--rollback", "--env", "dev"),
		mig("show-schema", 0, "--env", "dev"),
		mig("dump-schema", 0, "--env", "dev"),
		mig("dump-schema", 0, "--env", "dev", "-o", "out/schema.sql"),
		mig("backup", 0, "--env", "dev", "-o", "out/backup.dump"),
		withEnv(mig("backup", 0), "DATABASE_URL={url}"),
		mig("new", 0, "--migrations-path", "newmigs", "add_thing"),
		mig("hash", 0, "--migrations-path", "newmigs"),
		// failing with the database reachable: bad SQL, a rollback that fails, drift
		mig("up", 1, "--env", "dev", "--migrations-path", "badsql"),
		mig("verify", 1, "--rollback", "--env", "dev", "--migrations-path", "badsql"),
		mig("verify", 3, "--env", "dev", "--migrations-path", "drift"),
		mig("up", 3, "--env", "dev", "--migrations-path", "drift"),
		mig("status", 3, "--env", "dev", "--exit-code", "--migrations-path", "drift"),
		mig("down", 1, "--env", "dev", "--steps", "1", "--migrations-path", "badrollback"),
		mig("down", 0, "--dry-run", "--env", "dev", "--steps", "1"),
		mig("down", 0, "--env", "dev", "--steps", "1"),
		mig("rollback", 0, "--database-url", "{url}", "--steps", "1"),
		mig("up", 0, "--config-file", "ps.yml"),
		// adopt: a goose ledger (made by a migration of its own ledger table) into a ledger of
		// ours beside the main one; convert: goose files into the project.
		mig("up", 0, "--env", "dev", "--migrations-path", "gooseledger", "--table", "goose_setup"),
		mig("adopt", 0, "--env", "dev", "--from", "goose", "--table", "adopted", "--dry-run"),
		mig("adopt", 0, "--database-url", "{url}", "--from", "goose", "--table", "adopted"),
		mig("adopt", 2, "--env", "dev", "--from", "golang-migrate", "--table", "adopted"),
		mig("convert", 0, "--from", "goose", "--migrations-path", "out/converted", "goose"),
		mig("convert", 2, "--from", "goose", "--migrations-path", "out/converted", "nope"),
		// lint: in a native scratch server, never the target (whose password is everywhere
		// here); a scratch URL that holds the project's schema is refused, one with a wrong
		// password fails to connect.
		mig("lint", 0),
		withEnv(mig("lint", 0, "--base", "1", "--json"), "DATABASE_URL={url}"),
		mig("lint", 1, "--migrations-path", "badsql"),
		mig("lint", 2, "--scratch-url", "{url}"),
		mig("lint", 1, "--scratch-url", "{url-wrong-password}"),
		mig("lint", 2, "--base-ref", "main"),
		mig("lint", 0, "--rules"),
		// missing files and bad usage
		mig("up", 2, "--env", "dev", "--migrations-path", "nope"),
		mig("status", 2, "--database-url", "{url}", "--migrations-path", "nope"),
		mig("verify", 2, "--env", "dev", "--migrations-path", "nope"),
		mig("down", 2, "--env", "dev", "--steps", "1", "--migrations-path", "nope"),
		mig("test-connection", 2, "--env", "dev", "--project-file", "nope.yml"),
		mig("wait", 2, "--env", "nosuchenv"),
		mig("dump-schema", 2, "--env", "dev", "-o", "nodir/schema.sql"),
		mig("backup", 2, "--env", "dev", "-o", "nodir/backup.dump"),
		mig("new", 2, "--migrations-path", "plain.txt", "add_thing"),
		mig("new", 2),
		mig("hash", 2, "--migrations-path", "nope"),
		mig("up", 2, "--database-url", "{url}", "--target", "notanumber"),
		mig("test-connection", 2, "--database-url", "{url-raw}"),
		withEnv(mig("up", 2), "DATABASE_URL={url-raw}"),
		withEnv(mig("test-connection", 1), "POSTSTACK_DATABASE_URL={dsn-wrong-host}"),
	)
	// ps-migrate, every command that reaches the database, against a wrong host and with a
	// wrong password, by URL and through .poststack/.
	for _, c := range []struct {
		cmd  string
		args []string
	}{
		{"wait", []string{"--timeout", "1s"}},
		{"test-connection", nil},
		{"create-schema", nil},
		{"status", nil},
		{"migration-status", nil},
		{"up", nil},
		{"migrate", nil},
		{"down", []string{"--steps", "1"}},
		{"rollback", []string{"--steps", "1"}},
		{"verify", nil},
		{"verify", []string{"--rollback"}},
		{"show-schema", nil},
		{"dump-schema", nil},
		{"backup", []string{"-o", "out/failed.dump"}},
		{"adopt", []string{"--from", "goose"}},
	} {
		exit := 1
		if c.cmd == "wait" {
			exit = 4 // it waits for a server that lets it in, until --timeout
		}
		add(
			mig(c.cmd, exit, append([]string{"--database-url", "{url-wrong-host}"}, c.args...)...),
			mig(c.cmd, exit, append([]string{"--env", "nohost"}, c.args...)...),
			mig(c.cmd, exit, append([]string{"--database-url", "{url-wrong-password}"}, c.args...)...),
			mig(c.cmd, exit, append([]string{"--env", "badpw"}, c.args...)...),
		)
	}

	// ps-subst: templates that do and do not ask for secrets, --list, --check, bad templates,
	// missing files.
	sub := func(exit int, args ...string) sweepCase { return sweepCase{bin: "ps-subst", args: args, exit: exit} }
	showsOut := func(c sweepCase, k secretKind) sweepCase { c.shows = []shown{{"stdout", k}}; return c }
	add(
		sub(0, "--env", "dev", "plain.txt"),
		withEnv(sub(0, "plain.txt"), "POSTSTACK_DATABASE_URL={url}", "APP_PORT=8080", "DB_HOST=h"),
		showsOut(sub(0, "--env", "dev", "secret.txt"), kindKnown),
		func() sweepCase {
			c := sub(0, "--env", "dev", "-o", "out/secret.txt", "secret.txt")
			c.shows = []shown{{"project/out/secret.txt", kindKnown}}
			return c
		}(),
		showsOut(sub(0, "--env", "dev", "--yaml", "pod.yml"), kindKnown),
		showsOut(sub(0, "--env", "dev", "pod.yml"), kindKnown), // text mode: the injection warning
		func() sweepCase {
			c := showsOut(sub(0, "--env", "dev", "-"), kindKnown)
			c.stdin = "pw=${DB_PASSWORD}\n"
			return c
		}(),
		sub(0, "--env", "dev", "--list", "secret.txt"),
		sub(0, "--env", "dev", "--check", "secret.txt"),
		showsOut(sub(0, "--env", "dev", "--check", "--show-secrets", "secret.txt"), kindKnown),
		sub(0, "--env", "dev", "--env-file", "app.env", "--check", "app.txt"),
		withEnv(sub(0, "--check", "url.txt"), "DATABASE_URL={url}"),
		withEnv(sub(0, "--check", "url.txt"), "DATABASE_URL={url-raw}"),
		sub(0, "--env", "badpw", "--check", "secret.txt"),
		sub(3, "--env", "dev", "undefined.txt"),
		sub(3, "--env", "dev", "--check", "undefined.txt"),
		sub(2, "--env", "dev", "nested.txt"),
		sub(2, "--env", "dev", "badop.txt"),
		sub(2, "--env", "dev", "unterminated.txt"),
		sub(3, "--env", "dev", "required.txt"),
		sub(2, "--env", "dev", "nope.txt"),
		sub(2, "--env", "dev", "--env-file", "nope.env", "plain.txt"),
		sub(2, "--env", "nosuchenv", "plain.txt"),
		sub(2, "--env", "dev", "--set", "DB_PASSWORD={password}", "plain.txt"),
		sub(2, "--env", "dev", "--set", "POSTSTACK_HOST_DATABASE_URL={url-wrong-password}", "plain.txt"),
		sub(2, "--env", "dev", "-o", "nodir/out.txt", "secret.txt"),
	)

	// ps-build: the plan needs no engine; a build does.
	build := func(exit int, args ...string) sweepCase {
		return sweepCase{bin: "ps-build", args: args, exit: exit, env: []string{"POSTSTACK_DATABASE_URL={url}"}}
	}
	onPodman := func(c sweepCase) sweepCase { c.engine = testenv.EnginePodman; return c }
	add(
		build(0, "--dry-run", "--build-arg", "DATABASE_URL={url}", "app"),
		build(0, "--dry-run"),
		build(2, "--dry-run", "nosuchimage"),
		build(2, "--dry-run", "--project-containers-path", "cyclic"),
		onPodman(build(0, "--container-runtime", "podman", "--base-image", testenv.DefaultBaseImage, "--build-arg", "DATABASE_URL={url}", "app")),
		onPodman(build(1, "--container-runtime", "podman", "--base-image", testenv.DefaultBaseImage, "--build-arg", "DATABASE_URL={url}",
			"--project-containers-path", "failing", "fail")),
	)

	// ps-env ephemeral: up hands out its own URL; nothing else may show it, or the known one.
	eph := func(cmd string, exit int, args ...string) sweepCase {
		return sweepCase{bin: "ps-env", cmd: "ephemeral " + cmd, args: args, exit: exit, env: []string{"POSTSTACK_DATABASE_URL={url}"}}
	}
	up := func(c sweepCase) sweepCase {
		c.learn = true
		c.shows = []shown{{"stdout", kindEphemeral}, {actionsOutput, kindEphemeral}}
		return c
	}
	add(
		up(eph("up", 0, "--provider", "native", "--migrate", "migrations")),
		eph("list", 0),
		showsOut(eph("list", 0, "--show-secrets"), kindEphemeral),
		eph("list", 2, "unexpected"),
		eph("down", 0, "{eph-id}"),
		eph("up", 1, "--provider", "native", "--migrate", "badsql"),
		eph("up", 2, "--provider", "native", "--migrate", "nope"),
		eph("up", 2, "--provider", "bogus"),
		eph("down", 2, "nosuchid"),
		eph("down", 2),
		up(eph("up", 0, "--provider", "native")),
		eph("down", 0, "--all"),
		onPodman(up(eph("up", 0, "--provider", "container", "--container-runtime", "podman", "--image", "localhost/poststack/postgres:latest"))),
		onPodman(eph("list", 0)),
		onPodman(eph("down", 0, "--all")),
	)
	// ps-env list and switch: the project's environments, one external by a URL with the
	// known password, which neither may show.
	envCmd := func(cmd string, exit int, args ...string) sweepCase {
		return sweepCase{bin: "ps-env", cmd: cmd, args: args, exit: exit}
	}
	// switch rewrites the project file, which holds that URL as the user wrote it.
	rewrites := func(c sweepCase) sweepCase { c.shows = []shown{{"project/.poststack.yml", kindKnown}}; return c }
	add(
		envCmd("list", 0),
		envCmd("list", 2, "unexpected"),
		rewrites(envCmd("switch", 0, "external")),
		rewrites(envCmd("switch", 0, "dev")),
		envCmd("switch", 2, "nosuchenv"),
		envCmd("switch", 2),
		// url's job is to hand out the URL, password included; on stdout only.
		showsOut(envCmd("url", 0, "dev"), kindKnown),
		showsOut(envCmd("url", 0, "dev", "--container"), kindKnown),
		showsOut(envCmd("url", 0, "external"), kindKnown),
		envCmd("url", 2, "nosuchenv"),
		envCmd("url", 2, "--host", "--container"),
		// dry-run, config and validate report variables and settings, secrets masked;
		// dry-run --show-secrets exists to show them.
		envCmd("dry-run", 0, "dev"),
		envCmd("dry-run", 0, "dev", "--file", "secret.txt"),
		envCmd("dry-run", 0, "external", "--file", "pod.yml"),
		showsOut(envCmd("dry-run", 0, "dev", "--file", "secret.txt", "--show-secrets"), kindKnown),
		envCmd("dry-run", 3, "dev", "--file", "undefined.txt"),
		envCmd("dry-run", 3, "dev", "--file", "required.txt"),
		envCmd("dry-run", 2, "dev", "--file", "nested.txt"),
		envCmd("dry-run", 2, "dev", "--file", "nope.txt"),
		envCmd("dry-run", 2, "nosuchenv"),
		envCmd("dry-run", 2, "dev", "--set", "DB_PASSWORD={password}"),
		envCmd("config", 0),
		envCmd("config", 0, "external"),
		envCmd("config", 0, "badpw", "--env-file", "app.env"),
		envCmd("config", 2, "nosuchenv"),
		envCmd("config", 2, "dev", "--set", "POSTSTACK_HOST_DATABASE_URL={url-wrong-password}"),
		envCmd("validate", 0),
		envCmd("validate", 0, "external"),
		envCmd("validate", 2, "nosuchenv"),
	)
	// ps-env's environment lifecycle: the external environment (no engine: its database is the
	// test server, reached by a URL with the known password) and, on podman, box from nothing
	// to a deployed pod whose variables carry the password, and back.
	add(
		envCmd("up", 0, "external"),
		envCmd("up", 0, "external", "--only", "migrate"),
		envCmd("up", 1, "external", "--migrations-path", "badsql"),
		envCmd("up", 2, "external", "--only", "bogus"),
		envCmd("up", 2, "nosuchenv"),
		envCmd("start", 0, "external", "--no-migrate"),
		envCmd("deploy", 0, "external"),
		envCmd("restart", 0, "external"),
		envCmd("status", 0, "external"),
		envCmd("status", 2, "nosuchenv"),
		envCmd("logs", 0, "external"),
		envCmd("down", 0, "external"),
		envCmd("stop", 0, "external"),
		envCmd("down", 2, "nosuchenv"),
		envCmd("init", 2, "--no-interactive"),
		// init scaffolds a new project in an empty directory; the URL in its environment must
		// not end up in a file it writes.
		func() sweepCase {
			c := envCmd("init", 0, "--no-interactive", "--project-name", "fresh")
			c.dir, c.env = "fresh", []string{"POSTSTACK_DATABASE_URL={url}", "DATABASE_URL={url}"}
			return c
		}(),
		envCmd("start", 2, "nosuchenv"),
		envCmd("stop", 2, "nosuchenv"),
		envCmd("restart", 2, "nosuchenv"),
		envCmd("deploy", 2, "nosuchenv"),
		envCmd("logs", 2, "nosuchenv"),
		envCmd("init", 2, "--no-interactive", "--project-name", "Bad"),
		onPodman(envCmd("up", 0, "box", "--container-runtime", "podman")),
		onPodman(envCmd("up", 0, "box", "--container-runtime", "podman")),
		onPodman(envCmd("status", 0, "box", "--container-runtime", "podman")),
		onPodman(envCmd("logs", 0, "box", "--container-runtime", "podman")),
		onPodman(envCmd("deploy", 0, "box", "--container-runtime", "podman")),
		onPodman(envCmd("down", 0, "box", "--container-runtime", "podman", "--volumes")),
	)
	// ps-env containers: the project's app image (built by ps-build above) run with secret
	// variables from the environment, which no output may show.
	ctr := func(cmd string, exit int, args ...string) sweepCase {
		return sweepCase{bin: "ps-env", cmd: "containers " + cmd, args: args, exit: exit,
			env: []string{"POSTSTACK_APP_ENV_DATABASE_URL={url}", "POSTSTACK_APP_ENV_DB_PASSWORD={password}"}}
	}
	add(
		ctr("start", 2, "unexpected"),
		ctr("status", 2, "unexpected"),
		ctr("stop", 2),
		ctr("rm", 2),
		onPodman(ctr("start", 0, "--container-runtime", "podman", "--container", "app")),
		onPodman(ctr("start", 2, "--container-runtime", "podman", "--container", "nosuch")),
		onPodman(ctr("status", 0, "--container-runtime", "podman")),
		onPodman(ctr("stop", 0, "--container-runtime", "podman", "--all")),
		onPodman(ctr("rm", 0, "--container-runtime", "podman", "--force", "app")),
		onPodman(ctr("rm", 2, "--container-runtime", "podman", "app")),
	)
	// ps-env db: reset, snapshot and restore dev's database on the test server, whose
	// superuser password the store holds as an environment's container's; nohost and badpw fail
	// to reach it. The last run waits for the spare a reset leaves to the server.
	dbCmd := func(cmd string, exit int, args ...string) sweepCase {
		return sweepCase{bin: "ps-env", cmd: "db " + cmd, args: args, exit: exit}
	}
	add(
		dbCmd("reset", 0, "dev"),
		dbCmd("reset", 0, "dev", "--no-seed"),
		dbCmd("reset", 0),
		dbCmd("reset", 1, "nohost"),
		dbCmd("reset", 1, "badpw"),
		dbCmd("reset", 1, "dev", "--migrations-path", "badsql"),
		dbCmd("reset", 2, "external"),
		dbCmd("reset", 2, "nosuchenv"),
		dbCmd("snapshot", 0, "s1", "dev"),
		dbCmd("snapshot", 2, "s1", "dev"),
		dbCmd("snapshot", 2, `x"; drop database postgres; --`),
		dbCmd("snapshot", 1, "s1", "nohost"),
		dbCmd("restore", 0, "s1", "dev"),
		dbCmd("restore", 2, "nosuch", "dev"),
		dbCmd("restore", 1, "s1", "badpw"),
		dbCmd("drop-snapshot", 0, "s1", "dev"),
		dbCmd("drop-snapshot", 2, "s1", "dev"),
		dbCmd("snapshots", 2, "external"),
		dbCmd("snapshots", 0, "dev"),
	)
	return cs
}

// TestSecretsSweep is issue 10's secrets sweep; see the comment at the top of this file.
func TestSecretsSweep(t *testing.T) {
	ctx := testContext(t, 3*time.Minute)
	cases := sweepCases()
	checkSweepCovers(t, ctx, cases)

	admin := testenv.Postgres(t)
	db := newSweepDatabase(t, ctx, admin)
	for _, mode := range sweepModes() {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			w := newSweepWorld(t, ctx, db, mode)
			var engine []sweepCase
			for _, c := range cases {
				if c.engine != "" {
					engine = append(engine, c)
					continue
				}
				w.run(t, ctx, c)
			}
			w.checkSinksWritten(t)
			t.Run(testenv.EnginePodman, func(t *testing.T) {
				testenv.Podman(t)
				testenv.BaseImage(t, testenv.EnginePodman)
				builtPostgresImage(t, testenv.EnginePodman)
				t.Cleanup(func() { removeImage(t, w.vars["{project}"]+"/app:latest") })
				for _, c := range engine {
					w.run(t, ctx, c)
				}
			})
		})
	}
}

// checkSinksWritten fails when a file the sweep reads was never written: then it would
// find nothing there whatever the binaries did.
func (w *sweepWorld) checkSinksWritten(t *testing.T) {
	t.Helper()
	sinks := []string{"project/logs/poststack.log", "cache/poststack", "state/poststack/ephemeral"}
	if w.mode.actions {
		sinks = append(sinks, "gha/GITHUB_OUTPUT", "gha/GITHUB_STEP_SUMMARY")
	}
	for _, s := range sinks {
		p := filepath.Join(w.root, filepath.FromSlash(s))
		st, err := os.Stat(p)
		if err != nil || st.Mode().IsRegular() && st.Size() == 0 {
			t.Errorf("the runs wrote nothing to %s (%v): the sweep looks there for nothing", s, err)
		}
	}
}

func removeImage(t *testing.T, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "podman", "rmi", "--force", "--ignore", ref).CombinedOutput(); err != nil {
		t.Logf("podman rmi %s: %v: %s", ref, err, out)
	}
}

// checkSweepCovers fails when a command that a binary's --help lists (recursively) has no
// run in cases, or when cases run a command no --help lists: commands added later must join
// the sweep.
func checkSweepCovers(t *testing.T, ctx context.Context, cases []sweepCase) {
	t.Helper()
	entries, err := os.ReadDir(binDir)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasPrefix(e.Name(), "ps-") {
			listed = append(listed, helpLeaves(t, ctx, e.Name(), nil)...)
		}
	}
	if len(listed) < 4 {
		t.Fatalf("found only the commands %q in %s", listed, binDir)
	}
	type runs struct{ ok, failing bool }
	swept := map[string]*runs{}
	for _, c := range cases {
		r := swept[c.command()]
		if r == nil {
			r = &runs{}
			swept[c.command()] = r
		}
		r.ok, r.failing = r.ok || c.exit == 0, r.failing || c.exit != 0
	}
	for _, cmd := range listed {
		if r := swept[cmd]; r == nil || !r.ok || !r.failing {
			t.Errorf("%s is listed by --help but not swept both succeeding and failing: give it such runs in sweepCases", cmd)
		}
		delete(swept, cmd)
	}
	for cmd := range swept {
		t.Errorf("sweepCases runs %s, which no --help lists", cmd)
	}
}

// helpLeaves returns the commands without subcommands under bin's command path, as
// "ps-env ephemeral up", from the COMMANDS section of each --help.
func helpLeaves(t *testing.T, ctx context.Context, bin string, path []string) []string {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), append(slices.Clone(path), "--help")...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s --help: %v", bin, strings.Join(path, " "), err)
	}
	subs := helpCommands(string(out))
	if len(subs) == 0 {
		return []string{strings.Join(append([]string{bin}, path...), " ")}
	}
	var leaves []string
	for _, s := range subs {
		leaves = append(leaves, helpLeaves(t, ctx, bin, append(slices.Clone(path), s))...)
	}
	return leaves
}

// helpCommands returns the names in the COMMANDS section of a --help text.
func helpCommands(help string) []string {
	var names []string
	in := false
	for line := range strings.Lines(help) {
		line = strings.TrimRight(line, "\n")
		switch {
		case line == "COMMANDS":
			in = true
		case in && strings.TrimSpace(line) == "":
			return names
		case in:
			if f := strings.Fields(line); len(f) > 0 {
				names = append(names, f[0])
			}
		}
	}
	return names
}

// sweepDatabase is the server, the role whose password is the known secret, and the
// secrets of the sweep.
type sweepDatabase struct {
	admin         string
	host          string
	port          int
	closedPort    int // a port on 127.0.0.1 where nothing listens
	role          string
	known, wrong  string
	knownMarks    []string
	wrongMarks    []string
	createdPrefix string
}

func newSweepDatabase(t *testing.T, ctx context.Context, admin string) *sweepDatabase {
	t.Helper()
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("admin URL port: %v", err)
	}
	id := randomHex(t, 4)
	d := &sweepDatabase{
		admin:      admin,
		host:       u.Hostname(),
		port:       port,
		role:       "sweep_" + id,
		knownMarks: []string{"Sw33p" + randomHex(t, 4), "T41l" + randomHex(t, 4)},
		wrongMarks: []string{"Wr0ng" + randomHex(t, 4), "T41l" + randomHex(t, 4)},
	}
	d.known = d.knownMarks[0] + sweepMiddle + d.knownMarks[1]
	d.wrong = d.wrongMarks[0] + sweepMiddle + d.wrongMarks[1]
	d.createdPrefix = d.role + "_"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d.closedPort = ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{d.role}.Sanitize()+" LOGIN CREATEDB PASSWORD "+quoteLiteral(d.known)); err != nil {
		t.Fatalf("create role: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("drop role %s: %v", d.role, err)
			return
		}
		defer conn.Close(ctx)
		// Every database the role owns: the sweep's, and any scratch database a failed run left.
		rows, err := conn.Query(ctx, "select datname from pg_database where datdba = (select oid from pg_roles where rolname = $1)", d.role)
		if err != nil {
			t.Errorf("drop role %s: %v", d.role, err)
			return
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Errorf("drop role %s: %v", d.role, err)
			return
		}
		for _, n := range names {
			// ps-env db's templates and snapshots must stop being templates to be dropped.
			if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH IS_TEMPLATE false"); err != nil {
				t.Errorf("drop database %s: %v", n, err)
			}
			if _, err := conn.Exec(ctx, "DROP DATABASE "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
				t.Errorf("drop database %s: %v", n, err)
			}
		}
		if _, err := conn.Exec(ctx, "DROP ROLE "+pgx.Identifier{d.role}.Sanitize()); err != nil {
			t.Errorf("drop role %s: %v", d.role, err)
		}
	})
	return d
}

// adminPassword is the test server's superuser password.
func (d *sweepDatabase) adminPassword(t *testing.T) string {
	t.Helper()
	u, err := url.Parse(d.admin)
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := u.User.Password()
	return pw
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// create makes a database of the role's own.
func (d *sweepDatabase) create(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" OWNER "+pgx.Identifier{d.role}.Sanitize()); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
}

func (d *sweepDatabase) url(password string, port int, db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(d.role, password),
		Host:     net.JoinHostPort(d.host, strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// sweepWorld is one mode's project, home and state, and what its runs may not leak.
type sweepWorld struct {
	mode    sweepMode
	root    string // project/, home/, cache/, state/, config/, gha/
	project string
	tmp     string // TMPDIR, the native servers' parent; their own directories are not swept
	environ []string
	vars    map[string]string
	secrets []*trackedSecret
	files   map[string]fileState
}

type fileState struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func newSweepWorld(t *testing.T, ctx context.Context, d *sweepDatabase, mode sweepMode) *sweepWorld {
	t.Helper()
	w := &sweepWorld{mode: mode, root: t.TempDir(), files: map[string]fileState{}}
	w.project = filepath.Join(w.root, "project")
	tmp, err := os.MkdirTemp("/dev/shm", "e2e-sweep-")
	if err != nil {
		tmp, err = os.MkdirTemp("", "e2e-sweep-")
	}
	if err != nil {
		t.Fatal(err)
	}
	w.tmp = tmp
	// The native servers run as the postgres user when the test runs as root.
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })

	dbName := d.createdPrefix + mode.name
	d.create(t, ctx, dbName)
	name := "sweep" + randomHex(t, 3) + mode.name
	good := d.url(d.known, d.port, dbName)
	w.vars = map[string]string{
		"{project}":            name,
		"{password}":           d.known,
		"{url}":                good,
		"{url-wrong-password}": d.url(d.wrong, d.port, dbName),
		"{url-wrong-host}":     d.url(d.known, d.closedPort, dbName),
		// A password pasted into a URL without encoding: unparsable, and a parser's error
		// quotes what it could not parse.
		"{url-raw}":        fmt.Sprintf("postgres://%s:%s@%s:%d/%s", d.role, d.known, d.host, d.port, dbName),
		"{dsn}":            fmt.Sprintf("host=%s port=%d user=%s password='%s' dbname=%s sslmode=disable", d.host, d.port, d.role, d.known, dbName),
		"{dsn-wrong-host}": fmt.Sprintf("host=%s port=%d user=%s password='%s' dbname=%s sslmode=disable", d.host, d.closedPort, d.role, d.known, dbName),
		"{eph-id}":         "no-ephemeral-server-yet",
	}
	store := filepath.Join(w.project, ".poststack")
	w.secrets = []*trackedSecret{
		{kind: kindKnown, value: d.known, markers: d.knownMarks, store: store},
		{kind: kindWrong, value: d.wrong, markers: d.wrongMarks, store: store},
	}

	pg := func(port int) string {
		return fmt.Sprintf("    postgres:\n      database: %s\n      port: %d\n      user: %s\n      password: auto_generated\n", dbName, port, d.role)
	}
	migration := map[string]string{
		"0001_first.sql":           "CREATE TABLE sweep_first (id int PRIMARY KEY, note text);\n",
		"0001_first.rollback.sql":  "DROP TABLE sweep_first;\n",
		"0002_second.sql":          "CREATE TABLE sweep_second (id int PRIMARY KEY);\n",
		"0002_second.rollback.sql": "DROP TABLE sweep_second;\n",
	}
	files := map[string]string{
		".poststack.yml": "environment: dev\nproject:\n  name: " + name + "\nenvironments:\n" +
			"  dev:\n" + pg(d.port) + "    variables:\n      APP_PORT: 8080\n" +
			"  badpw:\n" + pg(d.port) +
			"  nohost:\n" + pg(d.closedPort) +
			"  external:\n    postgres:\n      url: " + strconv.Quote(good) + "\n" +
			// box: an environment of its own on podman, its password the known one; its port is
			// picked here, not auto, since the parallel worlds have separate homes and claims.
			"  box:\n    postgres:\n      port: " + strconv.Itoa(appHostPort(t)) + "\n    deployment:\n      pod: boxpod.yml\n",
		"boxpod.yml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: box\nspec:\n  containers:\n    - name: app\n" +
			"      image: " + testenv.DefaultBaseImage + "\n      command: [\"sh\", \"-c\", \"echo started; exec sleep 600\"]\n" +
			"      env:\n        - name: DATABASE_URL\n          value: ${POSTSTACK_DATABASE_URL}\n" +
			"        - name: DB_PASSWORD\n          value: ${DB_PASSWORD}\n",
		"ps.yml":                    "database_url: " + strconv.Quote(good) + "\n",
		"app.env":                   "APP_DATABASE_URL=" + good + "\n",
		"plain.txt":                 "host=${DB_HOST} port=${APP_PORT}\n",
		"secret.txt":                "password=${DB_PASSWORD}\nurl=${POSTSTACK_HOST_DATABASE_URL}\n",
		"pod.yml":                   "env:\n  password: ${DB_PASSWORD}\n  url: ${POSTSTACK_DATABASE_URL}\n",
		"app.txt":                   "app=${APP_DATABASE_URL}\n",
		"url.txt":                   "db=${DATABASE_URL}\n",
		"undefined.txt":             "password=${DB_PASSWORD} missing=${SWEEP_UNDEFINED}\n",
		"nested.txt":                "x${DB_PASSWORD:+${DB_USER}\n",
		"badop.txt":                 "pw=${DB_PASSWORD!}\n",
		"unterminated.txt":          "password=${DB_PASSWORD\n",
		"required.txt":              "x=${SWEEP_UNDEFINED:?the password is ${DB_PASSWORD}}\n",
		"containers/app/Dockerfile": "FROM " + testenv.DefaultBaseImage + "\nARG DATABASE_URL\nRUN test -n \"$DATABASE_URL\"\n",
		"cyclic/a/Dockerfile":       "FROM " + name + "/b:latest\n",
		"cyclic/b/Dockerfile":       "FROM " + name + "/a:latest\n",
		"failing/fail/Dockerfile":   "FROM " + testenv.DefaultBaseImage + "\nARG DATABASE_URL\nRUN echo \"connecting to $DATABASE_URL\" && exit 1\n",
		"goose/00001_first.sql":     "-- +goose Up\nCREATE TABLE sweep_goose (id int);\n-- +goose Down\nDROP TABLE sweep_goose;\n",
		"gooseledger/0001_goose_ledger.sql": "CREATE TABLE goose_db_version (id serial PRIMARY KEY, version_id bigint NOT NULL, is_applied boolean NOT NULL, tstamp timestamp DEFAULT now());\n" +
			"INSERT INTO goose_db_version (version_id, is_applied) VALUES (0, true), (1, true), (2, true);\n",
	}
	for dir, extra := range map[string]map[string]string{
		"migrations":  nil,
		"badsql":      {"0003_bad.sql": "CREATE TABLE sweep_third (id int);\nSELECT no_such_column FROM sweep_first;\n", "0003_bad.rollback.sql": "DROP TABLE sweep_third;\n"},
		"drift":       {"0001_first.sql": "CREATE TABLE sweep_first (id int PRIMARY KEY, note text, changed int);\n"},
		"badrollback": {"0002_second.rollback.sql": "DROP TABLE sweep_no_such_table;\n"},
	} {
		for f, content := range migration {
			files[dir+"/"+f] = content
		}
		for f, content := range extra {
			files[dir+"/"+f] = content
		}
	}
	writeFiles(t, w.project, files)
	for _, dir := range []string{"logs", "out", "newmigs", "fresh", "home", "cache", "state", "config", "gha"} {
		base := w.project
		if !slices.Contains([]string{"logs", "out", "newmigs", "fresh"}, dir) {
			base = w.root
		}
		if err := os.MkdirAll(filepath.Join(base, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The secret store as poststack keeps it: 0700 with a .gitignore, passwords 0600.
	if err := os.Mkdir(store, 0o700); err != nil {
		t.Fatal(err)
	}
	for file, content := range map[string]string{
		".gitignore":              "*\n",
		name + "-dev.password":    d.known + "\n",
		name + "-nohost.password": d.known + "\n",
		name + "-box.password":    d.known + "\n",
		name + "-badpw.password":  d.wrong + "\n",
		// ps-env db connects as the environment container's superuser, here the test server's.
		name + "-dev.admin-password": d.adminPassword(t) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(store, file), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "POSTSTACK_"), strings.HasPrefix(name, "GITHUB_"), strings.HasPrefix(name, "RUNNER_"),
			strings.HasPrefix(name, "XDG_"), strings.HasPrefix(name, "PG"), strings.HasPrefix(name, "DOCKER_"),
			name == "DATABASE_URL", name == "HOME", name == "TMPDIR", name == "NO_COLOR":
			continue
		}
		w.environ = append(w.environ, kv)
	}
	w.environ = append(w.environ,
		"HOME="+filepath.Join(w.root, "home"),
		"XDG_CACHE_HOME="+filepath.Join(w.root, "cache"),
		"XDG_STATE_HOME="+filepath.Join(w.root, "state"),
		"XDG_CONFIG_HOME="+filepath.Join(w.root, "config"),
		"TMPDIR="+tmp,
		"NO_COLOR=1",
		// Everything that is logged reaches the log file and stderr.
		"POSTSTACK_LOG_LEVEL=debug",
	)
	if mode.actions {
		for _, v := range []string{"GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY"} {
			p := filepath.Join(w.root, "gha", v)
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			w.environ = append(w.environ, v+"="+p)
		}
		w.environ = append(w.environ, "GITHUB_ACTIONS=true")
	} else {
		w.environ = append(w.environ, "GITHUB_ACTIONS=")
	}
	t.Cleanup(func() {
		// Whatever a failed run left running.
		cmd := exec.Command(filepath.Join(binDir, "ps-env"), "ephemeral", "down", "--all")
		cmd.Dir, cmd.Env = w.project, w.environ
		_ = cmd.Run()
	})
	w.snapshot(t, nil)
	return w
}

func (w *sweepWorld) expand(s string) string {
	for k, v := range w.vars {
		s = strings.ReplaceAll(s, k, v)
	}
	return s
}

// run runs c and reports every secret it leaked.
func (w *sweepWorld) run(t *testing.T, ctx context.Context, c sweepCase) {
	t.Helper()
	args := strings.Fields(c.cmd)
	args = append(args, w.mode.flags...)
	for _, a := range c.args {
		args = append(args, w.expand(a))
	}
	label := c.command() + " " + strings.Join(c.args, " ")
	if w.mode.flags != nil {
		label += " [" + strings.Join(w.mode.flags, " ") + "]"
	}
	env := slices.Clone(w.environ)
	for _, e := range c.env {
		env = append(env, w.expand(e))
		label += " [" + e + "]"
	}
	runCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(runCtx, filepath.Join(binDir, c.bin), args...)
	cmd.Dir, cmd.Env, cmd.Stdin = filepath.Join(w.project, c.dir), env, strings.NewReader(c.stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	if d := time.Since(began); d > time.Second {
		t.Logf("%s: %v", label, d.Round(time.Millisecond))
	}
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", label, err)
	}
	if code != c.exit {
		t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", label, code, c.exit, stdout.String(), stderr.String())
	}
	if c.learn && code == 0 {
		w.learn(t, ctx, label, stdout.String())
	}

	found := map[shown]bool{}
	sinks := map[string][]byte{"stdout": w.streamText(stdout.Bytes()), "stderr": w.streamText(stderr.Bytes())}
	for _, sink := range []string{"stdout", "stderr"} {
		w.check(t, label, c, sink, "", sinks[sink], found)
	}
	w.snapshot(t, func(path, sink string, data []byte) { w.check(t, label, c, sink, path, data, found) })
	for _, s := range c.shows {
		if s.sink == actionsOutput && !w.mode.actions {
			continue
		}
		if !found[s] && code == c.exit {
			t.Errorf("%s: %s lacks the %s it exists to show: the sweep would not see it there", label, s.sink, s.kind)
		}
	}
}

// streamText is what a stream says besides ::add-mask:: lines under Actions, which exist to
// register the secret with the runner.
func (w *sweepWorld) streamText(b []byte) []byte {
	if !w.mode.actions {
		return b
	}
	var out []byte
	for line := range bytes.Lines(b) {
		if !bytes.HasPrefix(bytes.TrimSpace(line), []byte("::add-mask::")) {
			out = append(out, line...)
		}
	}
	return out
}

// check reports each tracked secret in data unless the case shows it there; path is the
// file's absolute path ("" for a stream), for the secret stores.
func (w *sweepWorld) check(t *testing.T, label string, c sweepCase, sink, path string, data []byte, found map[shown]bool) {
	t.Helper()
	for _, s := range w.secrets {
		if path != "" && strings.HasPrefix(path, s.store+string(filepath.Separator)) {
			continue
		}
		form, at, n := s.find(data)
		if at < 0 {
			continue
		}
		if slices.Contains(c.shows, shown{sink, s.kind}) {
			found[shown{sink, s.kind}] = true
			continue
		}
		lo, hi := max(at-80, 0), min(at+n+40, len(data))
		t.Errorf("%s: %s carries the %s %s: …%s…", label, sink, s.kind, form, data[lo:hi])
	}
}

// learn makes the password of the URL ephemeral up printed a tracked secret, kept in the
// ephemeral state directory, and its server's ID {eph-id}.
func (w *sweepWorld) learn(t *testing.T, ctx context.Context, label, stdout string) {
	t.Helper()
	var inst struct {
		ID  string `json:"id"`
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(stdout), &inst); err != nil {
		inst.URL = strings.TrimSpace(stdout)
	}
	u, err := url.Parse(inst.URL)
	if err != nil {
		t.Fatalf("%s: stdout is no URL: %q", label, stdout)
	}
	pw, ok := u.User.Password()
	if !ok || len(pw) < 12 {
		t.Fatalf("%s: the URL %q has no password of 12 characters or more", label, inst.URL)
	}
	store := filepath.Join(w.root, "state", "poststack", "ephemeral")
	if inst.ID == "" {
		// Text prints only the URL: the server's record, which holds it, names the ID.
		records, err := filepath.Glob(filepath.Join(store, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			var rec struct {
				ID  string `json:"id"`
				URL string `json:"url"`
			}
			data, err := os.ReadFile(r)
			if err == nil && json.Unmarshal(data, &rec) == nil && rec.URL == inst.URL {
				inst.ID = rec.ID
			}
		}
		if inst.ID == "" {
			t.Fatalf("%s: no record in %s has the URL it printed", label, store)
		}
	}
	w.vars["{eph-id}"] = inst.ID
	w.secrets = append(w.secrets, &trackedSecret{
		kind: kindEphemeral, value: pw, markers: []string{pw[:12], pw[len(pw)-12:]}, store: store,
	})
}

// snapshot walks the mode's directories and TMPDIR and calls changed (when not nil) with
// what each new or changed regular file gained: the appended part of a file that grew in
// place (poststack.log, GITHUB_OUTPUT), else all of it.
func (w *sweepWorld) snapshot(t *testing.T, changed func(path, sink string, data []byte)) {
	t.Helper()
	for _, root := range []struct{ dir, name string }{{w.root, ""}, {w.tmp, "TMPDIR"}} {
		err := filepath.WalkDir(root.dir, func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
					return nil // a server's files come and go while it runs
				}
				return err
			}
			if e.IsDir() {
				if root.name == "TMPDIR" && path != root.dir && strings.HasPrefix(e.Name(), "pgnative-") {
					return fs.SkipDir // a running server's data directory
				}
				return nil
			}
			if !e.Type().IsRegular() {
				return nil
			}
			info, err := e.Info()
			if err != nil {
				return nil
			}
			st := fileState{size: info.Size(), mtime: info.ModTime()}
			if sys, ok := info.Sys().(*syscall.Stat_t); ok {
				st.ino = sys.Ino
			}
			old, seen := w.files[path]
			w.files[path] = st
			if changed == nil || (seen && old == st) {
				return nil
			}
			data, err := readFrom(path, old, seen, st)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			rel, _ := filepath.Rel(root.dir, path)
			changed(path, filepath.ToSlash(filepath.Join(root.name, rel)), data)
			return nil
		})
		if err != nil {
			t.Fatalf("walk %s: %v", root.dir, err)
		}
	}
}

// readFrom returns what a file gained since old: its tail when it grew in place, else all.
func readFrom(path string, old fileState, seen bool, now fileState) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if seen && old.ino == now.ino && now.size > old.size {
		if _, err := f.Seek(old.size, io.SeekStart); err != nil {
			return nil, err
		}
	}
	return io.ReadAll(f)
}
