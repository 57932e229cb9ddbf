package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/poststack/poststack/internal/cli"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/hostport"
	"github.com/poststack/poststack/pkg/scaffold"
)

// inEmptyDir makes an empty directory called name the working directory.
func inEmptyDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	return dir
}

// files lists the files under dir (slashes) with their content, a link as "-> target".
func files(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&os.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "-> " + l
			return err
		}
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestInit(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		has    []string // files that must exist
		hasNot []string // and must not
		yml    []string // regexps .poststack.yml must match
	}{
		{"all", []string{"init", "--all", "--no-interactive"},
			[]string{"containers/postgres/Dockerfile", "containers/postgres/postgres-pod.yaml", "containers/postgres/docs/README.md", "containers/app/app-pod.yaml", "migrations/0001_init.sql", "migrations/0001_init.rollback.sql", ".gitignore"},
			nil,
			[]string{`(?m)^environment: dev$`, `(?m)^  name: my-shop$`, `(?m)^      database: my-shop_dev$`, `(?m)^      user: my-shop_dev_user$`, `(?m)^      port: \d+$`, `(?m)^      pod: containers/app/app-pod.yaml$`, `(?m)^      password: auto_generated$`}},
		{"none is all", []string{"init", "--no-interactive"},
			[]string{"containers/postgres/Dockerfile", "containers/app/app-pod.yaml"}, nil, nil},
		{"postgres", []string{"init", "--postgres", "--no-interactive", "--db-port", "6001", "--db-name", "shopdb", "--db-user", "shopper", "--env-name", "local"},
			[]string{"containers/postgres/Dockerfile", "migrations/0001_init.sql"},
			[]string{"containers/app/app-pod.yaml"},
			[]string{`(?m)^environment: local$`, `(?m)^      port: 6001$`, `(?m)^      database: shopdb$`, `(?m)^      user: shopper$`, `(?m)^    # deployment:`}},
		{"deploy", []string{"init", "--deploy", "--no-interactive", "--project-name", "shop", "--description", "the shop"},
			[]string{"containers/app/Dockerfile", "containers/app/app.sh", "containers/app/app-pod.yaml"},
			[]string{"containers/postgres/Dockerfile", "migrations/0001_init.sql"},
			[]string{`(?m)^  name: shop$`, `(?m)^  description: "the shop"$`, `(?m)^    deployment:$`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t, "My Shop")
			code, stdout, stderr := runEnvCmd(t, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !regexp.MustCompile(`(?m)^created  \.poststack\.yml\n`).MatchString(stdout) || !strings.Contains(stdout, "\nnext: ps-build") {
				t.Errorf("stdout:\n%s", stdout)
			}
			got := files(t, dir)
			for _, f := range tt.has {
				if _, ok := got[f]; !ok {
					t.Errorf("%s missing", f)
				}
				if !strings.Contains(stdout, "created  "+f) {
					t.Errorf("stdout does not report %s created:\n%s", f, stdout)
				}
			}
			for _, f := range tt.hasNot {
				if _, ok := got[f]; ok {
					t.Errorf("%s written", f)
				}
			}
			for _, re := range tt.yml {
				if !regexp.MustCompile(re).MatchString(got[config.FileName]) {
					t.Errorf(".poststack.yml does not match %s:\n%s", re, got[config.FileName])
				}
			}
			if f, err := config.Load(filepath.Join(dir, config.FileName)); err != nil {
				t.Error(err)
			} else if e, err := f.Environment(""); err != nil || (!slices.Contains(tt.args, "--db-port") && e.Postgres.Port < hostport.AutoStart && !e.Postgres.PortAuto) {
				t.Errorf("environment %+v, %v; want the port from %d up", e, err, hostport.AutoStart)
			}
			// The project is one the other commands accept.
			if code, stdout, stderr := runEnvCmd(t, "validate"); code != 0 {
				t.Errorf("validate: exit %d\n%s%s", code, stdout, stderr)
			}
			if code, stdout, stderr := runEnvCmd(t, "list"); code != 0 || !strings.Contains(stdout, "* ") {
				t.Errorf("list: exit %d\n%s%s", code, stdout, stderr)
			}
		})
	}
}

func TestInitJSON(t *testing.T) {
	dir := inEmptyDir(t, "shop")
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("logs/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runEnvCmd(t, "init", "--json", "--postgres", "--no-interactive", "--db-port", "6002")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r initReport
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if r.Project != "shop" || r.Environment != "dev" || !slices.Equal(r.Parts, []string{"postgres"}) ||
		r.Database != "shop_dev" || r.User != "shop_dev_user" || r.Port != 6002 {
		t.Errorf("report %+v", r)
	}
	if len(r.Files) == 0 || r.Files[0].Path != ".poststack.yml" || r.Files[0].Status != scaffold.Created {
		t.Errorf("files %+v", r.Files)
	}
	gi := scaffold.File{}
	for _, f := range r.Files {
		if f.Path == ".gitignore" {
			gi = f
		}
	}
	if gi.Status != scaffold.Updated || !slices.Equal(gi.Added, []string{".poststack/"}) {
		t.Errorf(".gitignore %+v, want updated with .poststack/", gi)
	}
	if !strings.Contains(stdout, `"status": "created"`) || strings.Contains(stdout, "null") {
		t.Errorf("stdout:\n%s", stdout)
	}
}

func TestInitForce(t *testing.T) {
	dir := inEmptyDir(t, "shop")
	if code, _, stderr := runEnvCmd(t, "init", "--no-interactive"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	mine := "-- mine\nCREATE TABLE mine ();\n"
	sql := filepath.Join(dir, "migrations", "0001_init.sql")
	if err := os.WriteFile(sql, []byte(mine), 0o644); err != nil {
		t.Fatal(err)
	}
	before := files(t, dir)

	// Without --force an existing .poststack.yml stops everything: exit 2, nothing changed.
	code, stdout, stderr := runEnvCmd(t, "init", "--no-interactive", "--project-name", "other")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "ps-env: .poststack.yml exists: ps-env init --force replaces it") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if after := files(t, dir); !maps.Equal(before, after) {
		t.Errorf("the refused run changed files")
	}

	code, stdout, stderr = runEnvCmd(t, "init", "--no-interactive", "--force", "--project-name", "other", "--db-port", "6003")
	if code != 0 {
		t.Fatalf("--force: exit %d: %s", code, stderr)
	}
	for _, want := range []string{
		`replaced +\.poststack\.yml +the old one is \.poststack\.yml\.bak`,
		`replaced +migrations/0001_init\.sql +the old one is migrations/0001_init\.sql\.bak`,
		`kept +containers/app/app\.sh +same content`,
		`unchanged +\.gitignore`,
	} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(stdout) {
			t.Errorf("stdout does not match %s:\n%s", want, stdout)
		}
	}
	after := files(t, dir)
	if after[".poststack.yml.bak"] != before[".poststack.yml"] || after["migrations/0001_init.sql.bak"] != mine {
		t.Errorf("the .bak files do not hold the old content")
	}
	if !strings.Contains(after[".poststack.yml"], "  name: other\n") || after["migrations/0001_init.sql"] == mine {
		t.Errorf("the files were not replaced")
	}
}

func TestInitFails(t *testing.T) {
	tests := []struct {
		name   string
		dir    string
		args   []string
		stderr string
	}{
		{"bad project name", "shop", []string{"--project-name", "My Shop"}, `--project-name: "My Shop": use lower-case letters`},
		{"bad env name", "shop", []string{"--env-name", "Dev"}, `--env-name: "Dev"`},
		{"bad port", "shop", []string{"--db-port", "0"}, "--db-port: 0 is not a port 1–65535"},
		{"long database", "shop", []string{"--db-name", strings.Repeat("d", 64)}, "--db-name: "},
		{"db flag without postgres", "shop", []string{"--deploy", "--db-port", "6000"}, "--db-port sets the database, which --deploy alone does not scaffold"},
		{"argument", "shop", []string{"extra"}, `unexpected argument "extra"`},
		{"no name from the directory", "___", nil, `the directory name "___" makes no project name: give --project-name`},
		{"long default user", strings.Repeat("p", 55), nil, "database user "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := inEmptyDir(t, tt.dir)
			code, stdout, stderr := runEnvCmd(t, append([]string{"init", "--no-interactive"}, tt.args...)...)
			if code != 2 || stdout != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 with %q", code, stdout, stderr, tt.stderr)
			}
			if got := files(t, dir); len(got) != 0 {
				t.Errorf("files written: %v", slices.Sorted(maps.Keys(got)))
			}
		})
	}
}

// TestInitHostileLink: a checkout whose containers/ is a link to a directory elsewhere makes init
// refuse before it writes anything, there or in the project.
func TestInitHostileLink(t *testing.T) {
	elsewhere := t.TempDir()
	dir := inEmptyDir(t, "shop")
	if err := os.Symlink(elsewhere, filepath.Join(dir, "containers")); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runEnvCmd(t, "init", "--no-interactive", "--force")
	if code != 2 || stdout != "" || !strings.Contains(stderr, "its directory leads outside the project directory") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if got := files(t, elsewhere); len(got) != 0 {
		t.Errorf("written outside the project: %v", got)
	}
	if got := files(t, dir); len(got) != 1 || got["containers"] != "-> "+elsewhere {
		t.Errorf("the project changed: %v", got)
	}
}

// terminal is the far side of a pty: what the program wrote to it, and a way to type.
type terminal struct {
	t    *testing.T
	ptmx *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // how far expect has consumed out
	more chan struct{}
}

func newTerminal(t *testing.T) (*terminal, *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	term := &terminal{t: t, ptmx: ptmx, more: make(chan struct{}, 1)}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			select {
			case term.more <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	return term, tty
}

// expect waits until s appears in the output after what the last expect matched. The deadline
// only keeps a broken prompt from hanging the test.
func (term *terminal) expect(s string) {
	term.t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		term.mu.Lock()
		rest := term.out.String()[term.seen:]
		i := strings.Index(rest, s)
		if i >= 0 {
			term.seen += i + len(s)
		}
		term.mu.Unlock()
		if i >= 0 {
			return
		}
		select {
		case <-term.more:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			term.t.Fatalf("no %q on the terminal; it shows:\n%s", s, rest)
		}
	}
}

func (term *terminal) typeLine(s string) {
	term.t.Helper()
	if _, err := io.WriteString(term.ptmx, s+"\r"); err != nil {
		term.t.Fatal(err)
	}
}

// TestInitPrompts answers init's questions through a real terminal: Enter takes the default,
// an invalid answer is explained and asked again, and a flag's value is not asked for.
func TestInitPrompts(t *testing.T) {
	dir := inEmptyDir(t, "Pty App")
	term, tty := newTerminal(t)
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runEnv(context.Background(), []string{"init", "--db-user", "flagged"},
			cli.Env{Dir: dir, Stdin: tty, Stdout: &stdout, Stderr: tty})
	}()

	term.expect("Project name [pty-app]: ")
	term.typeLine("Bad Name")
	term.expect(`project name "Bad Name": use lower-case letters`)
	term.expect("Project name [pty-app]: ")
	term.typeLine("") // the default
	term.expect("Description: ")
	term.typeLine("a shop, typed")
	term.expect("Environment name [dev]: ")
	term.typeLine("local")
	term.expect("Database name [pty-app_local]: ")
	term.typeLine("")
	term.expect("Database port [")
	term.expect("]: ")
	term.typeLine("70000")
	term.expect("database port 70000 is not a port 1–65535")
	term.expect("Database port [")
	term.typeLine("6004")

	var code int
	select {
	case code = <-done:
	case <-time.After(30 * time.Second):
		term.mu.Lock()
		t.Fatalf("init did not finish; the terminal shows:\n%s", term.out.String())
	}
	term.mu.Lock()
	shown := term.out.String()
	term.mu.Unlock()
	if code != 0 {
		t.Fatalf("exit %d; terminal:\n%s", code, shown)
	}
	if strings.Contains(shown, "Database user") {
		t.Errorf("--db-user was given, yet asked for:\n%s", shown)
	}
	if !strings.Contains(stdout.String(), "created  .poststack.yml") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	f, err := config.Load(filepath.Join(dir, config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	env, err := f.Environment("")
	if err != nil {
		t.Fatal(err)
	}
	pg := env.Postgres
	if f.Project.Name != "pty-app" || f.Project.Description != "a shop, typed" || env.Name != "local" ||
		pg.Database != "pty-app_local" || pg.Port != 6004 || pg.User != "flagged" {
		t.Errorf("project %+v, environment %s, postgres %+v", f.Project, env.Name, pg)
	}
}

// TestInitPromptInputEnds: the end of the input before the last answer is exit 2, nothing written.
func TestInitPromptInputEnds(t *testing.T) {
	dir := inEmptyDir(t, "shop")
	term, tty := newTerminal(t)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- runEnv(context.Background(), []string{"init"}, cli.Env{Dir: dir, Stdin: tty, Stdout: io.Discard, Stderr: io.MultiWriter(tty, &stderr)})
	}()
	term.expect("Project name [shop]: ")
	term.typeLine("")
	term.expect("Description: ")
	if _, err := term.ptmx.Write([]byte{4}); err != nil { // Ctrl-D: end of input
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("init did not end at the end of the input")
	}
	if !strings.Contains(stderr.String(), "Description: the input ended before an answer; nothing was written") {
		t.Errorf("stderr %q", stderr.String())
	}
	if got := files(t, dir); len(got) != 0 {
		t.Errorf("files written: %v", slices.Sorted(maps.Keys(got)))
	}
}
