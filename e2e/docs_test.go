package e2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/cli"
)

// The reference pages docs/ps-*.md are generated from the binaries' --help (issue 13): the
// root's and every command's, found through the COMMANDS sections as the secrets sweep finds
// them. `go test ./e2e -run TestDocsPages -update` rewrites them; without -update the test
// fails when a page is not what --help says now, so a flag removed or renamed fails it.

var updateDocs = flag.Bool("update", false, "rewrite docs/ps-*.md from the binaries' --help")

// docsPage is one generated page: the binary, its file and the hand-written introduction
// that opens it (what the binary is for; the rest of the page comes from --help).
type docsPage struct {
	bin, file, intro string
	// envNote names environment variables the binary reads that are not a flag's; every
	// `NAME` in it must appear in the binary's --help texts, so the note cannot drift either.
	envNote string
}

func docsPages() []docsPage {
	return []docsPage{
		{
			bin: "ps-subst", file: "docs/ps-subst.md",
			intro: "`ps-subst` substitutes `${VAR}` into text or YAML, from files or standard input to standard\n" +
				"output (or atomically to `-o FILE`), with docker compose's grammar, strictly: an undefined\n" +
				"variable is reported at `FILE:LINE:COL` and nothing is written (exit 3). With `--env NAME` the\n" +
				"variables are those of an environment of `.poststack.yml`, with its built-ins\n" +
				"(`POSTSTACK_DATABASE_URL`, `DB_HOST`, …). It is the piece that lets a pod or compose file be\n" +
				"rendered and piped to an engine:\n\n" +
				"<!-- docs-test: needs podman -->\n" +
				"```sh\n" +
				"cat > hello-pod.yaml <<'EOF'\n" +
				"apiVersion: v1\n" +
				"kind: Pod\n" +
				"metadata:\n" +
				"  name: ps-subst-hello\n" +
				"spec:\n" +
				"  restartPolicy: Never\n" +
				"  containers:\n" +
				"    - name: hello\n" +
				"      image: ${IMAGE}\n" +
				"      command: [echo, \"${GREETING}\"]\n" +
				"EOF\n" +
				"IMAGE=localhost/debian:bookworm GREETING='hello: world # not a comment' \\\n" +
				"  ps-subst --yaml < hello-pod.yaml | podman kube play -\n" +
				"podman pod rm --force ps-subst-hello\n" +
				"```\n\n" +
				"See the [README](../README.md#ps-subst) for the grammar, precedence and YAML rules in prose.",
			envNote: "Besides the settings above, `NO_COLOR` turns colour off. With `--env`, the template variables\n" +
				"`POSTSTACK_DATABASE_URL`, `DB_HOST` and the others are built-ins of the environment,\n" +
				"not settings: nothing overrides them (see the README).",
		},
		{
			bin: "ps-migrate", file: "docs/ps-migrate.md",
			intro: "`ps-migrate` runs SQL migrations with rollback against a PostgreSQL database: locked,\n" +
				"transactional (each migration commits with its ledger row or not at all) and checksummed,\n" +
				"with errors at `FILE:LINE:COL`. It also reviews a branch's new migrations before merge\n" +
				"(`lint`), keeps `migrations/poststack.sum` so that parallel branches conflict in git\n" +
				"(`new`, `hash`), dumps and backs up schemas, and takes over from goose, golang-migrate or\n" +
				"the Python poststack (`adopt`, `convert`; see [migrating.md](migrating.md)).\n\n" +
				"See the [README](../README.md#ps-migrate) for the file layout, the ledger and the guarantees.",
			envNote: "Besides the settings above: the database is `--database-url` (or `POSTSTACK_DATABASE_URL`),\n" +
				"else `DATABASE_URL`, else `--env NAME`'s; `lint` takes `GITHUB_BASE_REF` as its base on a pull\n" +
				"request; `NO_COLOR` turns colour off.",
		},
		{
			bin: "ps-env", file: "docs/ps-env.md",
			intro: "`ps-env` runs a project's environments, as `.poststack.yml` describes them: `ps-env up`\n" +
				"takes one from nothing to running (its own PostgreSQL container with the data in a volume,\n" +
				"the migrations, the init containers, the deployment as a podman pod or a compose project,\n" +
				"healthy), a second `up` changes nothing, `down` keeps the data. It scaffolds projects\n" +
				"(`init`), inspects them (`status`, `logs`, `dry-run`, `config`, `validate`), resets and\n" +
				"snapshots an environment's database in milliseconds (`db`), runs the project's images as\n" +
				"standalone containers (`containers`), and starts throwaway PostgreSQL servers for CI jobs\n" +
				"and tests (`ephemeral`).\n\n" +
				"See the [README](../README.md#ps-env) for a tour and what each phase of `up` guarantees.",
			envNote: "Besides the settings above: `ephemeral` records its servers under `XDG_STATE_HOME`\n" +
				"(`--state-dir`); `containers` reads `POSTSTACK_<NAME>_CONTAINER_NAME`, `POSTSTACK_<NAME>_PORT`\n" +
				"and `POSTSTACK_<NAME>_ENV_<VAR>` per container from the process environment only; `NO_COLOR`\n" +
				"turns colour off.",
		},
		{
			bin: "ps-build", file: "docs/ps-build.md",
			intro: "`ps-build` builds, with podman or docker, the built-in base and postgres images and the\n" +
				"project's own (`containers/<name>/Dockerfile`) in the order their `FROM` lines give,\n" +
				"independent ones at the same time; an image whose inputs did not change is not built\n" +
				"again, and no local secret (`.poststack/`, `.env*`) ever reaches a build context.\n\n" +
				"See the [README](../README.md#ps-build) for the images and the rules in prose.",
			envNote: "Besides the settings above: the build digests are kept under `XDG_CACHE_HOME`; `NO_COLOR`\n" +
				"turns colour off.",
		},
	}
}

// docsHelp is one command's --help, parsed.
type docsHelp struct {
	path     []string // ["ps-env", "ephemeral", "up"]
	short    string
	usage    []string
	long     string
	commands []docsSub
	flags    []docsFlag
	notes    string // "The settings marked …" (root) or "The global flags … are accepted here too."
	examples []string
	subs     []*docsHelp
}

func (h *docsHelp) name() string { return strings.Join(h.path, " ") }

type docsSub struct{ name, short string }

// docsFlag is one line of a FLAGS section.
type docsFlag struct {
	name, arg, usage, def string
	// env is the variable the flag falls back to ("" for none); where says from where.
	env, where string
}

// docsCWD is the name of the directory --help runs in: the default of
// --project-container-prefix is the working directory's name, written so on the page.
const docsCWD = "poststack-docs-cwd"

// readHelp runs bin path... --help in dir and, recursively, every command it lists.
func readHelp(t *testing.T, ctx context.Context, dir, bin string, path []string) *docsHelp {
	t.Helper()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), append(slices.Clone(path), "--help")...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "NO_COLOR=1", "TERM=dumb", "LANG=C.UTF-8"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s --help: %v\n%s", bin, strings.Join(path, " "), err, stderr.String())
	}
	h, err := parseHelp(string(out))
	if err != nil {
		t.Fatalf("%s %s --help: %v", bin, strings.Join(path, " "), err)
	}
	h.path = append([]string{bin}, path...)
	for _, s := range h.commands {
		h.subs = append(h.subs, readHelp(t, ctx, dir, bin, append(slices.Clone(path), s.name)))
	}
	return h
}

var (
	flagLineRE = regexp.MustCompile(`^  (-{1,2}[A-Za-z0-9][-A-Za-z0-9]*)(?: (\S+))?  +(.*)$`)
	markerRE   = regexp.MustCompile(` \[(env(?: ([A-Z0-9_]+))?(, \.env, config)?)\]$`)
	defaultRE  = regexp.MustCompile(` \(default ([^()]*)\)$`)
)

// parseHelp reads the layout internal/cli's help prints: a short line, USAGE, a long
// description, COMMANDS, FLAGS, a paragraph on where flags come from, EXAMPLES.
func parseHelp(text string) (*docsHelp, error) {
	h := &docsHelp{}
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	i := 0
	if len(lines) > 0 && lines[0] != "USAGE" {
		h.short = lines[0]
		i = 1
	}
	var long []string
	block := func(heading string) []string { // the indented lines under heading, to a blank line
		var b []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			b = append(b, lines[i])
		}
		return b
	}
	for ; i < len(lines); i++ {
		line := lines[i]
		switch {
		case line == "USAGE":
			for _, u := range block(line) {
				h.usage = append(h.usage, strings.TrimSpace(u))
			}
		case line == "COMMANDS":
			for _, c := range block(line) {
				f := strings.Fields(c)
				if len(f) == 0 {
					continue
				}
				h.commands = append(h.commands, docsSub{name: f[0], short: strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(c), f[0]))})
			}
		case line == "FLAGS":
			for _, l := range block(line) {
				f, err := parseFlagLine(l)
				if err != nil {
					return nil, err
				}
				h.flags = append(h.flags, f)
			}
		case line == "EXAMPLES":
			for _, e := range block(line) {
				h.examples = append(h.examples, strings.TrimPrefix(e, "  "))
			}
		case strings.HasPrefix(line, "The settings marked [env") || strings.HasPrefix(line, "The global flags (see"):
			var p []string
			for ; i < len(lines) && lines[i] != ""; i++ {
				p = append(p, lines[i])
			}
			h.notes = strings.Join(p, " ")
		case h.usage == nil:
			if line != "" {
				return nil, fmt.Errorf("line %d: %q before USAGE", i+1, line)
			}
		default:
			long = append(long, line)
		}
	}
	if h.usage == nil {
		return nil, fmt.Errorf("no USAGE section")
	}
	h.long = strings.Trim(strings.Join(long, "\n"), "\n")
	return h, nil
}

func parseFlagLine(l string) (docsFlag, error) {
	m := flagLineRE.FindStringSubmatch(l)
	if m == nil {
		return docsFlag{}, fmt.Errorf("FLAGS line %q is not `  --name [arg]  usage`", l)
	}
	f := docsFlag{name: m[1], arg: m[2], usage: m[3], where: "command line"}
	if mm := markerRE.FindStringSubmatch(f.usage); mm != nil {
		f.usage = strings.TrimSuffix(f.usage, mm[0])
		f.env = mm[2]
		if f.env == "" {
			f.env = cli.EnvName(strings.TrimLeft(f.name, "-"))
		}
		f.where = "`" + f.env + "`"
		if mm[3] != "" {
			f.where += ", `.env`, `--config-file`"
		}
	}
	if dm := defaultRE.FindStringSubmatch(f.usage); dm != nil {
		f.usage = strings.TrimSuffix(f.usage, dm[0])
		f.def = dm[1]
	}
	return f, nil
}

// renderPage writes a page: the generated notice, the introduction, the commands, the global
// flags and their variables, then a section per command.
func renderPage(p docsPage, root *docsHelp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- Generated from `%s --help` and the --help of every command by\n"+
		"     `go test ./e2e -run TestDocsPages -update`; do not edit. The introduction is in\n"+
		"     e2e/docs_test.go (docsPages), the rest in the commands' help. -->\n\n", p.bin)
	fmt.Fprintf(&b, "# %s\n\n%s\n\n", p.bin, p.intro)
	fmt.Fprintf(&b, "This page is generated from `%s --help` and each command's `--help`; a test fails when\nthey differ.\n\n", p.bin)
	if root.short != "" {
		fmt.Fprintf(&b, "> %s\n\n", strings.TrimPrefix(root.short, p.bin+": "))
	}
	writeUsage(&b, root)
	if len(root.subs) > 0 {
		b.WriteString("## Commands\n\n| command | what it does |\n|---|---|\n")
		walkHelp(root, func(h *docsHelp) {
			if h == root {
				return
			}
			fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", h.name(), anchor(h.name()), cell(h.short))
		})
		b.WriteString("\n")
	}
	b.WriteString("## Flags\n\n")
	writeFlags(&b, root.flags)
	if root.notes != "" {
		fmt.Fprintf(&b, "%s\n\n", root.notes)
	}
	b.WriteString("## Environment variables\n\n")
	b.WriteString("The flags that fall back to the environment (the rest come from the command line only):\n\n")
	b.WriteString("| variable | flag | command | also read from |\n|---|---|---|---|\n")
	seen := map[string]bool{}
	walkHelp(root, func(h *docsHelp) {
		for _, f := range h.flags {
			if f.env == "" || seen[f.env] {
				continue
			}
			seen[f.env] = true
			cmd := "all"
			if h != root {
				cmd = "`" + h.name() + "`"
			}
			where := "the environment only"
			if strings.Contains(f.where, ".env") {
				where = "`.env`, `--config-file`"
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s |\n", f.env, f.name, cmd, where)
		}
	})
	fmt.Fprintf(&b, "\n%s\n\n", p.envNote)
	if len(root.examples) > 0 {
		b.WriteString("## Examples\n\n")
		writeExamples(&b, root)
	}
	walkHelp(root, func(h *docsHelp) {
		if h == root {
			return
		}
		fmt.Fprintf(&b, "%s %s\n\n", strings.Repeat("#", len(h.path)), h.name())
		if target, ok := aliasOf(h, root); ok {
			fmt.Fprintf(&b, "An alias of [`%s`](#%s): the same usage, flags and examples.\n\n", target.name(), anchor(target.name()))
			return
		}
		if h.short != "" {
			fmt.Fprintf(&b, "%s.\n\n", strings.TrimSuffix(upperFirst(h.short), "."))
		}
		writeUsage(&b, h)
		if len(h.commands) > 0 {
			b.WriteString("| command | what it does |\n|---|---|\n")
			for _, s := range h.subs {
				fmt.Fprintf(&b, "| [`%s`](#%s) | %s |\n", s.name(), anchor(s.name()), cell(s.short))
			}
			b.WriteString("\n")
		}
		if len(h.flags) > 0 {
			writeFlags(&b, h.flags)
		}
		if h.notes != "" {
			fmt.Fprintf(&b, "%s\n\n", h.notes)
		}
		if len(h.examples) > 0 {
			writeExamples(&b, h)
		}
	})
	return strings.ReplaceAll(strings.TrimRight(b.String(), "\n")+"\n", docsCWD, "<the working directory's name>")
}

func writeUsage(b *strings.Builder, h *docsHelp) {
	b.WriteString("```text\n")
	for _, u := range h.usage {
		fmt.Fprintf(b, "%s\n", u)
	}
	b.WriteString("```\n\n")
	if h.long != "" {
		fmt.Fprintf(b, "```text\n%s\n```\n\n", h.long)
	}
}

func writeFlags(b *strings.Builder, flags []docsFlag) {
	b.WriteString("| flag | default | from | meaning |\n|---|---|---|---|\n")
	for _, f := range flags {
		name := f.name
		if f.arg != "" {
			name += " " + f.arg
		}
		def := ""
		if f.def != "" {
			def = "`" + f.def + "`"
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", name, cell(def), f.where, cell(f.usage))
	}
	b.WriteString("\n")
}

// writeExamples writes a command's examples as its --help shows them. They are that text, not
// a tour: the block runner skips them (README.md's tour is the runnable one).
func writeExamples(b *strings.Builder, h *docsHelp) {
	fmt.Fprintf(b, "<!-- docs-test: skip the examples of `%s --help`, shown as it prints them -->\n```sh\n", h.name())
	for _, e := range h.examples {
		fmt.Fprintf(b, "%s\n", e)
	}
	b.WriteString("```\n\n")
}

// aliasOf reports the command h is an alias of ("alias of up"), when their help is the same
// but for the name.
func aliasOf(h, root *docsHelp) (*docsHelp, bool) {
	name, ok := strings.CutPrefix(h.short, "alias of ")
	if !ok {
		return nil, false
	}
	parent := root
	for _, p := range h.path[1 : len(h.path)-1] {
		for _, s := range parent.subs {
			if s.path[len(s.path)-1] == p {
				parent = s
			}
		}
	}
	for _, s := range parent.subs {
		if s.path[len(s.path)-1] == name && slices.Equal(s.flags, h.flags) && s.long == h.long && slices.Equal(s.examples, h.examples) {
			return s, true
		}
	}
	return nil, false
}

func walkHelp(h *docsHelp, f func(*docsHelp)) {
	f(h)
	for _, s := range h.subs {
		walkHelp(s, f)
	}
}

// anchor is the id GitHub gives a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cell makes text safe inside a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

var envNoteNameRE = regexp.MustCompile("`([A-Z][A-Z0-9]*(?:_[A-Z0-9<>]+)+|NO_COLOR)`")

// helpTexts is every help text of a tree, for the check of a page's envNote.
func helpTexts(h *docsHelp) string {
	var b strings.Builder
	walkHelp(h, func(h *docsHelp) {
		fmt.Fprintln(&b, h.short, h.long, h.notes)
		for _, f := range h.flags {
			fmt.Fprintln(&b, f.name, f.usage, f.def, f.env)
		}
	})
	return b.String()
}

func TestDocsPages(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	dir := filepath.Join(t.TempDir(), docsCWD)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range docsPages() {
		root := readHelp(t, ctx, dir, p.bin, nil)
		texts := helpTexts(root)
		for _, m := range envNoteNameRE.FindAllStringSubmatch(p.envNote, -1) {
			if !strings.Contains(texts, m[1]) {
				t.Errorf("%s: the environment note names %s, which no --help of %s mentions", p.file, m[1], p.bin)
			}
		}
		page := renderPage(p, root)
		path := filepath.Join(repoRoot, p.file)
		if *updateDocs {
			if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		old, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v (run `go test ./e2e -run TestDocsPages -update`)", p.file, err)
			continue
		}
		if string(old) != page {
			t.Errorf("%s is not what `%s --help` says now; run `go test ./e2e -run TestDocsPages -update` and review the diff:\n%s",
				p.file, p.bin, firstDifference(string(old), page))
		}
	}
}

// firstDifference shows the first lines where a and b differ, with a little context.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	i := 0
	for i < len(al) && i < len(bl) && al[i] == bl[i] {
		i++
	}
	line := func(l []string, i int) string {
		if i < len(l) {
			return l[i]
		}
		return "(end of file)"
	}
	var s strings.Builder
	for j := i; j < i+3; j++ {
		fmt.Fprintf(&s, "line %d\n  page: %s\n  help: %s\n", j+1, line(al, j), line(bl, j))
	}
	return s.String()
}

func TestDocsParseHelp(t *testing.T) {
	h, err := parseHelp("do a thing\n\nUSAGE\n  x do [--n N]\n\nlong text\n\n  indented\n\nFLAGS\n" +
		"  --n N                   how many (default 3)\n" +
		"  --database-url URL      the database [env, .env, config]\n" +
		"  --base-image image      base (default debian) [env POSTSTACK_BASE_IMAGE, .env, config]\n" +
		"  --config-file file      settings [env POSTSTACK_CONFIG_FILE]\n" +
		"  -o string               output\n\n" +
		"The global flags (see 'x --help') are accepted here too.\n\nEXAMPLES\n  x do --n 4\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []docsFlag{
		{name: "--n", arg: "N", usage: "how many", def: "3", where: "command line"},
		{name: "--database-url", arg: "URL", usage: "the database", env: "POSTSTACK_DATABASE_URL", where: "`POSTSTACK_DATABASE_URL`, `.env`, `--config-file`"},
		{name: "--base-image", arg: "image", usage: "base", def: "debian", env: "POSTSTACK_BASE_IMAGE", where: "`POSTSTACK_BASE_IMAGE`, `.env`, `--config-file`"},
		{name: "--config-file", arg: "file", usage: "settings", env: "POSTSTACK_CONFIG_FILE", where: "`POSTSTACK_CONFIG_FILE`"},
		{name: "-o", arg: "string", usage: "output", where: "command line"},
	}
	if !slices.Equal(h.flags, want) {
		t.Errorf("flags:\n got %+v\nwant %+v", h.flags, want)
	}
	if h.short != "do a thing" || h.long != "long text\n\n  indented" || !slices.Equal(h.usage, []string{"x do [--n N]"}) ||
		h.notes != "The global flags (see 'x --help') are accepted here too." || !slices.Equal(h.examples, []string{"x do --n 4"}) {
		t.Errorf("parsed %+v", h)
	}
	if _, err := parseHelp("USAGE\n  x\n\nFLAGS\n  not a flag line\n"); err == nil {
		t.Error("a FLAGS line that is not a flag was accepted")
	}
}
