// Package scaffold writes a new poststack project: .poststack.yml, the project's copy of the
// built-in postgres image (containers/postgres/), an app deployment (containers/app/), a first
// migration, and the ignore entries that keep local state out of git and out of build
// contexts. The files come from the binary: templates embedded here and the built-in image
// definition of package images.
//
// Writing never leaves the project directory: a directory or file planted as a symbolic link
// to elsewhere (containers -> /etc) is refused before anything is written, and an existing
// file is replaced only when asked, its old content kept beside it as NAME.bak.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/images"
)

//go:embed templates
var templates embed.FS

// Options say what to scaffold and with which names. Project, Environment, Database, User and
// Port are required (Validate says what is wrong); at least one part must be selected.
type Options struct {
	Project     string
	Description string
	Environment string
	Database    string
	User        string
	Port        int // the environment's host port
	// Postgres selects the database parts: the postgres: section, containers/postgres/ and
	// migrations/.
	Postgres bool
	// Deploy selects the deployment parts: the deployment: and variables: sections and
	// containers/app/.
	Deploy bool
	// Force replaces existing files, each kept as NAME.bak first.
	Force bool
}

// Status says what Write did with one file.
type Status string

// The statuses of a File.
const (
	Created   Status = "created"   // it did not exist
	Kept      Status = "kept"      // it exists and was left alone (no Force, or same content)
	Replaced  Status = "replaced"  // it existed; the old one is Backup
	Updated   Status = "updated"   // an ignore file that lacked entries: they were appended
	Unchanged Status = "unchanged" // an ignore file that had every entry
)

// File is one file of the project and what Write did with it.
type File struct {
	// Path is relative to the project directory, with slashes.
	Path   string `json:"path"`
	Status Status `json:"status"`
	// Backup is where the replaced file's old content is (Replaced only).
	Backup string `json:"backup,omitempty"`
	// Added are the lines appended to an ignore file (Created, Updated).
	Added []string `json:"added,omitempty"`
}

// Result lists the files of the project in a stable order, .poststack.yml first.
type Result struct {
	Files []File `json:"files"`
}

// IgnoreEntries are the lines .gitignore and .dockerignore get: local state with secrets, and
// logs.
func IgnoreEntries() []string { return []string{".poststack/", "logs/"} }

// SanitizeName turns s (a directory's name) into a valid project name: lower case, every run
// of other characters one '-', leading and trailing separators dropped. It is "" when nothing
// usable is left.
func SanitizeName(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case r == '.' || r == '_' || r == '-':
			if b.Len() > 0 {
				b.WriteRune(r)
				dash = r == '-'
			}
		default:
			if b.Len() > 0 && !dash {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	return strings.TrimRight(b.String(), "._-")
}

// DefaultDatabase and DefaultUser are the names config gives an environment's database and
// role when postgres: omits them.
func DefaultDatabase(project, env string) string { return project + "_" + env }

// DefaultUser: see DefaultDatabase.
func DefaultUser(project, env string) string { return project + "_" + env + "_user" }

// CheckName says why s cannot name a project or an environment, nil when it can.
func CheckName(s string) error {
	if !config.ValidName(s) {
		return fmt.Errorf("%q: use lower-case letters, digits, '.', '_' and '-', starting with a letter or digit", s)
	}
	return nil
}

// CheckIdentifier says why s cannot name a database or a role, nil when it can: PostgreSQL
// truncates names past 63 bytes, which would connect to something else.
func CheckIdentifier(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > 63:
		return fmt.Errorf("%q is %d bytes long, PostgreSQL allows 63", s, len(s))
	case strings.ContainsAny(s, "\x00\n\r"):
		return fmt.Errorf("%q: no NUL or line breaks", s)
	case !utf8.ValidString(s):
		return errors.New("is not valid UTF-8")
	}
	return nil
}

// CheckPort says why p cannot be a host port, nil when it can.
func CheckPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("%d is not a port 1–65535", p)
	}
	return nil
}

// CheckDescription says why s cannot be a project description, nil when it can.
func CheckDescription(s string) error {
	switch {
	case strings.ContainsAny(s, "\x00\n\r"):
		return errors.New("one line, please")
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	}
	return nil
}

// Validate reports the first problem of o, a usage error.
func (o Options) Validate() error {
	check := func(what string, err error) error {
		if err != nil {
			return exitcode.Usagef("%s %v", what, err)
		}
		return nil
	}
	if !o.Postgres && !o.Deploy {
		return exitcode.Usagef("nothing to scaffold: select the postgres or the deploy part")
	}
	for _, err := range []error{
		check("project name", CheckName(o.Project)),
		check("description", CheckDescription(o.Description)),
		check("environment name", CheckName(o.Environment)),
	} {
		if err != nil {
			return err
		}
	}
	if !o.Postgres {
		return nil
	}
	for _, err := range []error{
		check("database name", CheckIdentifier(o.Database)),
		check("database user", CheckIdentifier(o.User)),
		check("database port", CheckPort(o.Port)),
	} {
		if err != nil {
			return err
		}
	}
	return nil
}

// planned is one file Write creates: its content, or for an ignore file the lines it must hold.
type planned struct {
	path   string // relative, slashes
	data   []byte
	exec   bool     // 0755 rather than 0644
	ignore []string // an ignore file: append these lines when missing
}

// Write scaffolds the project in root (an existing directory). Everything is checked before
// the first write: invalid options, an existing .poststack.yml without Force, and any file or
// directory on the way that is not what it should be or leads out of root are usage errors
// (exit 2) with nothing changed. The files it reports as Created or Replaced are complete;
// .poststack.yml is written last, so that an interrupted run leaves no project file naming
// files that are not there.
func Write(root string, o Options) (*Result, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	plan, err := files(o)
	if err != nil {
		return nil, err
	}
	// The project file must be valid, or every later command would fail on it.
	if _, err := config.Parse(config.FileName, plan[0].data, root); err != nil {
		return nil, fmt.Errorf("scaffold: the generated %s does not decode: %w", config.FileName, err)
	}
	if err := check(root, plan, o.Force); err != nil {
		return nil, err
	}
	res := &Result{Files: make([]File, len(plan))}
	// The project file (plan[0]) last.
	for _, i := range append(seq(1, len(plan)), 0) {
		f, err := write(root, plan[i], o.Force)
		if err != nil {
			return nil, err
		}
		res.Files[i] = f
	}
	return res, nil
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// files renders the plan: the project file first, then the ignore files, then each part.
func files(o Options) ([]planned, error) {
	data := map[string]any{
		"Project": o.Project, "Description": o.Description, "Environment": o.Environment,
		"Database": o.Database, "User": o.User, "Port": o.Port,
		"Postgres": o.Postgres, "Deploy": o.Deploy,
	}
	render := func(name string) ([]byte, error) {
		src, err := templates.ReadFile("templates/" + name)
		if err != nil {
			return nil, err
		}
		if !strings.HasSuffix(name, ".tmpl") {
			return src, nil
		}
		t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{"quote": yamlString}).Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("scaffold: template %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return nil, fmt.Errorf("scaffold: template %s: %w", name, err)
		}
		return b.Bytes(), nil
	}
	var plan []planned
	add := func(target, source string) error {
		b, err := render(source)
		if err != nil {
			return err
		}
		plan = append(plan, planned{path: target, data: b, exec: strings.HasSuffix(target, ".sh")})
		return nil
	}
	if err := add(config.FileName, "poststack.yml.tmpl"); err != nil {
		return nil, err
	}
	plan = append(plan,
		planned{path: ".gitignore", ignore: IgnoreEntries()},
		planned{path: ".dockerignore", ignore: IgnoreEntries()})
	if o.Postgres {
		pg, err := postgresImage()
		if err != nil {
			return nil, err
		}
		plan = append(plan, pg...)
		for _, f := range [][2]string{
			{"containers/postgres/postgres-pod.yaml", "postgres/postgres-pod.yaml.tmpl"},
			{"containers/postgres/docs/README.md", "postgres/docs/README.md"},
			{"migrations/0001_init.sql", "migrations/0001_init.sql"},
			{"migrations/0001_init.rollback.sql", "migrations/0001_init.rollback.sql"},
		} {
			if err := add(f[0], f[1]); err != nil {
				return nil, err
			}
		}
	}
	if o.Deploy {
		for _, f := range [][2]string{
			{"containers/app/Dockerfile", "app/Dockerfile"},
			{"containers/app/app.sh", "app/app.sh"},
			{"containers/app/app-pod.yaml", "app/app-pod.yaml"},
		} {
			if err := add(f[0], f[1]); err != nil {
				return nil, err
			}
		}
	}
	return plan, nil
}

// yamlString writes s as a YAML scalar that decodes to the string s: plain when it is a
// name that cannot read as anything else, double-quoted (Go's escapes are YAML's) otherwise.
func yamlString(s string) string {
	plain := s != ""
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '.' || r == '-')) {
			plain = false
		}
	}
	switch s {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		plain = false
	}
	if plain {
		return s
	}
	return strconv.Quote(s)
}

// postgresDir is where the project's postgres image lives: the directory ps-build looks in.
const postgresDir = "containers/postgres"

// postgresImage is the built-in postgres definition as files of containers/postgres/. A
// project image's build context is the project root, so the Dockerfile's COPY sources are
// rewritten to containers/postgres/NAME.
func postgresImage() ([]planned, error) {
	def, ok := images.Lookup("postgres")
	if !ok {
		return nil, errors.New("scaffold: no built-in postgres image")
	}
	sub, err := fs.Sub(images.FS(), def.Dir)
	if err != nil {
		return nil, err
	}
	var out []planned
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		if name == "Dockerfile" {
			if b, err = projectDockerfile(sub, b); err != nil {
				return err
			}
		}
		out = append(out, planned{path: path.Join(postgresDir, name), data: b, exec: strings.HasSuffix(name, ".sh")})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scaffold: built-in postgres image: %w", err)
	}
	return out, nil
}

const dockerfileHeader = `# The project's copy of poststack's built-in postgres image (ps-env init wrote it). ps-build
# builds it as <project>/postgres:latest in place of poststack/postgres, and .poststack.yml's
# postgres.image names it. The build context is the project root, so COPY names files as
# containers/postgres/…. See docs/README.md.
#
`

// projectDockerfile rewrites the sources of the built-in Dockerfile's COPY and ADD lines,
// files of sub, to their place in the project.
func projectDockerfile(sub fs.FS, b []byte) ([]byte, error) {
	lines := strings.SplitAfter(string(b), "\n")
	for i, line := range lines {
		fields := strings.Fields(line)
		if len(fields) == 0 || (fields[0] != "COPY" && fields[0] != "ADD") {
			continue
		}
		var args []int // indexes of the non-flag fields
		for j, f := range fields[1:] {
			if !strings.HasPrefix(f, "--") {
				args = append(args, j+1)
			}
		}
		if len(args) != 2 {
			return nil, fmt.Errorf("Dockerfile:%d: %s with %d sources: not one the scaffold can move", i+1, fields[0], len(args)-1)
		}
		src := fields[args[0]]
		if _, err := fs.Stat(sub, src); err != nil {
			return nil, fmt.Errorf("Dockerfile:%d: %s %s is not a file of the definition", i+1, fields[0], src)
		}
		fields[args[0]] = postgresDir + "/" + src
		lines[i] = strings.Join(fields, " ") + "\n"
	}
	return []byte(dockerfileHeader + strings.Join(lines, "")), nil
}
