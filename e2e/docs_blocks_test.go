package e2e

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

// TestDocsCommands runs every shell block of README.md and docs/*.md (fenced ```sh, ```bash,
// ```shell or ```console) in a sandbox of its own, and fails when one does not exit as it
// should. A block says what it needs in markers on the lines right before its fence:
//
//	<!-- docs-test: skip REASON -->    not run here, for REASON (shown in the test log)
//	<!-- docs-test: needs podman -->   run only where testenv finds podman (under CI it must);
//	                                   also docker, or any program (psql, goose, migrate)
//	<!-- docs-test: exit 3 -->         the block must end with this exit code (default 0)
//	<!-- docs-test: setup goose -->    prepare the sandbox with a fixture of docsSetups
//
// A block runs as one bash script with -e and -o pipefail in the sandbox's project: a copy of
// examples/myapp under a project name of its own (automatic database port, a free app port),
// committed to a git repository whose origin/main is that commit, with bin/ps-* first on PATH,
// DATABASE_URL naming a database of its own on the test server, POSTSTACK_BASE_IMAGE the local
// Debian image (no registry here), and HOME and XDG_* inside the sandbox (not TMPDIR: as root,
// pgnative runs the server as the postgres user, which must reach its directory there). Afterwards
// whatever the block started (ephemeral servers, the project's environments and images) is
// removed.

// docsBlock is one shell block of a Markdown file with its markers.
type docsBlock struct {
	file  string
	line  int // of the opening fence
	lang  string
	body  string
	skip  string
	needs []string
	exit  int
	setup string
}

// docsFiles are the Markdown files whose shell blocks run.
func docsFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	more, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range more {
		files = append(files, filepath.Join("docs", filepath.Base(m)))
	}
	return files
}

var shellLangs = []string{"sh", "bash", "shell", "console"}

// parseBlocks returns the shell blocks of a Markdown file and their markers.
func parseBlocks(file string, data []byte) ([]docsBlock, error) {
	var (
		blocks  []docsBlock
		markers []string // the marker lines right above the current line
		cur     *docsBlock
		fence   string
		n       int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		n++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil || fence != "" {
			if strings.HasPrefix(trimmed, fence) && strings.TrimLeft(trimmed, "`~") == "" {
				if cur != nil {
					blocks = append(blocks, *cur)
				}
				cur, fence = nil, ""
				continue
			}
			if cur != nil {
				cur.body += line + "\n"
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			lang := strings.Fields(strings.TrimLeft(trimmed, "`~") + " ")
			if len(lang) > 0 && slices.Contains(shellLangs, lang[0]) {
				b := docsBlock{file: file, line: n, lang: lang[0]}
				for _, m := range markers {
					if err := b.mark(m); err != nil {
						return nil, fmt.Errorf("%s:%d: %w", file, n, err)
					}
				}
				cur = &b
			} else if len(markers) > 0 {
				return nil, fmt.Errorf("%s:%d: a docs-test marker before a block that is not a shell block", file, n)
			}
			markers = nil
			continue
		}
		if m, ok := strings.CutPrefix(trimmed, "<!-- docs-test:"); ok {
			markers = append(markers, strings.TrimSpace(strings.TrimSuffix(m, "-->")))
			continue
		}
		if trimmed != "" {
			markers = nil
		}
	}
	if cur != nil || fence != "" {
		return nil, fmt.Errorf("%s: a fence opened and never closed", file)
	}
	return blocks, sc.Err()
}

func (b *docsBlock) mark(m string) error {
	word, arg, _ := strings.Cut(m, " ")
	arg = strings.TrimSpace(arg)
	switch word {
	case "skip":
		if arg == "" {
			return errors.New("docs-test: skip needs a reason")
		}
		b.skip = arg
	case "needs":
		if arg == "" {
			return errors.New("docs-test: needs names a program")
		}
		b.needs = append(b.needs, strings.Fields(arg)...)
	case "exit":
		code, err := strconv.Atoi(arg)
		if err != nil {
			return fmt.Errorf("docs-test: exit %q: %v", arg, err)
		}
		b.exit = code
	case "setup":
		if _, ok := docsSetups()[arg]; !ok {
			return fmt.Errorf("docs-test: no setup %q", arg)
		}
		b.setup = arg
	default:
		return fmt.Errorf("docs-test: unknown marker %q (skip, needs, exit, setup)", m)
	}
	return nil
}

// script is what runs: the block as it is, or a console block's "$ " lines.
func (b docsBlock) script() string {
	if b.lang != "console" {
		return b.body
	}
	var s strings.Builder
	cont := false
	for line := range strings.Lines(b.body) {
		if c, ok := strings.CutPrefix(line, "$ "); ok || cont {
			if ok {
				line = c
			}
			s.WriteString(line)
			cont = strings.HasSuffix(strings.TrimRight(line, "\n"), "\\")
		}
	}
	return s.String()
}

// docsSandbox is where one block runs.
type docsSandbox struct {
	root, project, name string
	env                 []string
}

// docsSetup prepares a sandbox's project directory for a block (after the example's copy).
type docsSetup func(t *testing.T, ctx context.Context, s *docsSandbox)

// docsSetups are the fixtures a block can ask for with `setup NAME`.
func docsSetups() map[string]docsSetup {
	goose := func(t *testing.T, ctx context.Context, s *docsSandbox) {
		s.emptyProject(t)
		writeTree(t, filepath.Join(s.project, "db", "migrations"), map[string]string{
			"00001_users.sql":       "-- +goose Up\nCREATE TABLE users (id int PRIMARY KEY, email text);\n\n-- +goose Down\nDROP TABLE users;\n",
			"00002_email_index.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n-- +goose Down\nDROP INDEX CONCURRENTLY users_email;\n",
		})
		s.mustRun(t, ctx, testenv.Program(t, "goose"), "-dir", "db/migrations", "postgres", s.getenv("DATABASE_URL"), "up")
		s.commit(t, ctx)
	}
	golangMigrate := func(t *testing.T, ctx context.Context, s *docsSandbox) {
		s.emptyProject(t)
		writeTree(t, filepath.Join(s.project, "db", "migrations"), map[string]string{
			"1_users.up.sql":         "CREATE TABLE users (id int PRIMARY KEY, email text);\n",
			"1_users.down.sql":       "DROP TABLE users;\n",
			"2_email_index.up.sql":   "CREATE INDEX CONCURRENTLY users_email ON users (email);\n",
			"2_email_index.down.sql": "DROP INDEX CONCURRENTLY users_email;\n",
		})
		s.mustRun(t, ctx, testenv.Program(t, "migrate"), "-path", "db/migrations", "-database", s.getenv("DATABASE_URL"), "up")
		s.commit(t, ctx)
	}
	python := func(t *testing.T, ctx context.Context, s *docsSandbox) {
		s.emptyProject(t)
		writeTree(t, filepath.Join(s.project, "migrations"), map[string]string{
			"001_users.sql":          "-- Description: users\nCREATE TABLE users (id int PRIMARY KEY);\n",
			"001_users.rollback.sql": "DROP TABLE users;\n",
		})
		psql := testenv.Program(t, "psql")
		s.mustRun(t, ctx, psql, "-v", "ON_ERROR_STOP=1", "-q", s.getenv("DATABASE_URL"), "-c", pythonLedgerDDL+
			"\nCREATE TABLE users (id int PRIMARY KEY);"+
			"\nINSERT INTO public.schema_migrations (version, description, checksum) VALUES ('001', 'users', encode(sha256(convert_to("+
			"'-- Description: users\nCREATE TABLE users (id int PRIMARY KEY);\n', 'UTF8')), 'hex'));")
		s.commit(t, ctx)
	}
	return map[string]docsSetup{"goose": goose, "golang-migrate": golangMigrate, "poststack-python": python}
}

func TestDocsCommands(t *testing.T) {
	var blocks []docsBlock
	for _, f := range docsFiles(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		bs, err := parseBlocks(f, data)
		if err != nil {
			t.Fatal(err)
		}
		blocks = append(blocks, bs...)
	}
	if len(blocks) < 10 {
		t.Fatalf("found only %d shell blocks in %v", len(blocks), docsFiles(t))
	}
	cache := t.TempDir() // XDG_CACHE_HOME of every sandbox: pgnative's data directories once
	for _, b := range blocks {
		// Names without "/", so that -run 'TestDocsCommands/docs-migrating.md' selects a file.
		t.Run(fmt.Sprintf("%s:%d", strings.ReplaceAll(b.file, "/", "-"), b.line), func(t *testing.T) {
			if b.skip != "" {
				t.Skipf("docs-test: skip %s", b.skip)
			}
			for _, n := range b.needs {
				switch n {
				case "podman":
					testenv.Podman(t)
					testenv.BaseImage(t, testenv.EnginePodman)
				case "docker":
					testenv.Docker(t)
					testenv.BaseImage(t, testenv.EngineDocker)
				default:
					testenv.Program(t, n)
				}
			}
			runDocsBlock(t, b, cache)
		})
	}
}

func runDocsBlock(t *testing.T, b docsBlock, cache string) {
	timeout := 3 * time.Minute
	if len(b.needs) > 0 {
		timeout = 15 * time.Minute
	}
	ctx := testContext(t, timeout)
	s := newDocsSandbox(t, ctx, cache)
	if b.setup != "" {
		docsSetups()[b.setup](t, ctx, s)
	}
	t.Cleanup(func() { s.cleanup(t, slices.Contains(b.needs, "podman") || slices.Contains(b.needs, "docker")) })
	script := filepath.Join(s.root, "block.sh")
	if err := os.WriteFile(script, []byte(b.script()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-e", "-o", "pipefail", script)
	cmd.Dir = s.project
	cmd.Env = s.env
	cmd.Stdin = nil
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("bash: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s:%d: the block did not end within %s:\n%s\noutput:\n%s", b.file, b.line, timeout, b.body, out.String())
	}
	if code != b.exit {
		t.Fatalf("%s:%d: the block exited %d, want %d (a <!-- docs-test: exit N --> marker says otherwise):\n%s\noutput:\n%s",
			b.file, b.line, code, b.exit, b.body, out.String())
	}
	t.Logf("%s:%d: exit %d\n%s", b.file, b.line, code, out.String())
}

func newDocsSandbox(t *testing.T, ctx context.Context, cache string) *docsSandbox {
	t.Helper()
	root := t.TempDir()
	dir, project := exampleProject(t)
	s := &docsSandbox{root: root, project: dir, name: project}
	cfg := filepath.Join(s.project, ".poststack.yml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer("port: 5433", "port: auto", "port: 5434", "port: auto").Replace(string(data))
	for _, old := range []string{"APP_HOST_PORT: 8080", "APP_HOST_PORT: 8081"} {
		if !strings.Contains(text, old) {
			t.Fatalf("%s: no %q to replace", cfg, old)
		}
		text = strings.Replace(text, old, "APP_HOST_PORT: "+strconv.Itoa(appHostPort(t)), 1)
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"home", "state", "config", "data"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bin, err := filepath.Abs(binDir)
	if err != nil {
		t.Fatal(err)
	}
	s.env = []string{
		"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"),
		"HOME=" + filepath.Join(root, "home"),
		"XDG_CACHE_HOME=" + cache,
		"XDG_STATE_HOME=" + filepath.Join(root, "state"),
		"XDG_CONFIG_HOME=" + filepath.Join(root, "config"),
		"XDG_DATA_HOME=" + filepath.Join(root, "data"),
		"LANG=C.UTF-8",
		"NO_COLOR=1",
		"TERM=dumb",
		"DATABASE_URL=" + testenv.Database(t),
		"POSTSTACK_BASE_IMAGE=" + testenv.DefaultBaseImage,
		"GIT_AUTHOR_NAME=docs", "GIT_AUTHOR_EMAIL=docs@example.com",
		"GIT_COMMITTER_NAME=docs", "GIT_COMMITTER_EMAIL=docs@example.com",
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		s.env = append(s.env, "DOCKER_HOST="+h)
	}
	s.mustRun(t, ctx, "git", "init", "-q", "-b", "main")
	s.commit(t, ctx)
	return s
}

func (s *docsSandbox) getenv(name string) string {
	for _, e := range slices.Backward(s.env) {
		if v, ok := strings.CutPrefix(e, name+"="); ok {
			return v
		}
	}
	return ""
}

// emptyProject leaves only the git repository in the project directory, for a setup that
// brings files of another tool.
func (s *docsSandbox) emptyProject(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(s.project)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			if err := os.RemoveAll(filepath.Join(s.project, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// commit commits the project as it is and points origin/main at it: the base of lint --base-ref.
func (s *docsSandbox) commit(t *testing.T, ctx context.Context) {
	t.Helper()
	s.mustRun(t, ctx, "git", "add", "-A")
	s.mustRun(t, ctx, "git", "commit", "-q", "--allow-empty", "-m", "docs sandbox")
	s.mustRun(t, ctx, "git", "update-ref", "refs/remotes/origin/main", "HEAD")
}

func (s *docsSandbox) mustRun(t *testing.T, ctx context.Context, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = s.project, s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sandbox: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// cleanup removes what a block may have started: its ephemeral servers, and with an engine the
// project's environments (volumes too), containers and images.
func (s *docsSandbox) cleanup(t *testing.T, engine bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(name string, args ...string) {
		if strings.HasPrefix(name, "ps-") {
			name = filepath.Join(binDir, name)
		}
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir, cmd.Env = s.project, s.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("cleanup: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("ps-env", "ephemeral", "down", "--all")
	if !engine {
		return
	}
	if _, err := os.Stat(filepath.Join(s.project, ".poststack.yml")); err == nil {
		for _, env := range []string{"dev", "staging"} {
			run("ps-env", "down", env, "--volumes")
		}
	}
	for _, cli := range []string{"podman", "docker"} {
		if _, err := exec.LookPath(cli); err != nil {
			continue
		}
		out, _ := exec.CommandContext(ctx, cli, "ps", "-aq", "--filter", "label=io.poststack.project="+s.name).Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			run(cli, append([]string{"rm", "-f"}, ids...)...)
		}
		out, _ = exec.CommandContext(ctx, cli, "images", "-q", s.name+"/*").Output()
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			exec.CommandContext(ctx, cli, append([]string{"rmi", "-f"}, ids...)...).Run()
		}
	}
}

func TestDocsParseBlocks(t *testing.T) {
	md := "text\n\n<!-- docs-test: needs podman -->\n<!-- docs-test: exit 3 -->\n```sh\nps-env up\n```\n\n" +
		"```go\nfmt.Println()\n```\n\n<!-- docs-test: skip needs a GitHub runner -->\n```bash\nexit 1\n```\n\n" +
		"```console\n$ ps-subst --version\nps-subst dev\n$ echo a \\\n  b\na b\n```\n\n```sh\nls\n```\n"
	bs, err := parseBlocks("x.md", []byte(md))
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 4 {
		t.Fatalf("got %d blocks, want 4: %+v", len(bs), bs)
	}
	if b := bs[0]; b.line != 5 || b.exit != 3 || !slices.Equal(b.needs, []string{"podman"}) || b.body != "ps-env up\n" {
		t.Errorf("block 1: %+v", b)
	}
	if b := bs[1]; b.skip != "needs a GitHub runner" || b.lang != "bash" {
		t.Errorf("block 2: %+v", b)
	}
	if got := bs[2].script(); got != "ps-subst --version\necho a \\\n  b\n" {
		t.Errorf("console script: %q", got)
	}
	if b := bs[3]; b.skip != "" || b.exit != 0 || b.needs != nil {
		t.Errorf("block 4 took markers that were not its own: %+v", b)
	}
	for _, bad := range []string{
		"<!-- docs-test: skip -->\n```sh\nls\n```\n",
		"<!-- docs-test: frobnicate -->\n```sh\nls\n```\n",
		"<!-- docs-test: exit three -->\n```sh\nls\n```\n",
		"<!-- docs-test: skip why -->\n```yaml\na: 1\n```\n",
		"```sh\nls\n",
	} {
		if _, err := parseBlocks("bad.md", []byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
