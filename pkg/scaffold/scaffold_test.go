package scaffold

import (
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/build"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/render"
	"github.com/poststack/poststack/pkg/variables"
)

func opts(postgres, deploy bool) Options {
	return Options{
		Project: "shop", Description: `a "quoted" shop: #1`, Environment: "dev",
		Database: "shop_dev", User: "shop_dev_user", Port: 5440, Postgres: postgres, Deploy: deploy,
	}
}

// tree lists the files under dir (slashes, sorted) with their content, for before/after checks.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[filepath.ToSlash(rel)] = "-> " + l
		case d.IsDir():
			out[filepath.ToSlash(rel)+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		if !strings.HasSuffix(n, "/") {
			k = append(k, n)
		}
	}
	sort.Strings(k)
	return k
}

var (
	common   = []string{".dockerignore", ".gitignore", ".poststack.yml"}
	pgFiles  = []string{"containers/postgres/Dockerfile", "containers/postgres/docker-entrypoint.sh", "containers/postgres/docs/README.md", "containers/postgres/postgres-pod.yaml", "migrations/0001_init.rollback.sql", "migrations/0001_init.sql"}
	appFiles = []string{"containers/app/Dockerfile", "containers/app/app-pod.yaml", "containers/app/app.sh"}
)

func sorted(parts ...[]string) []string {
	s := slices.Concat(parts...)
	sort.Strings(s)
	return s
}

// TestWriteParts scaffolds each selection into an empty directory and checks that the result is a
// project: config decodes it, the selected environment's files exist, every template renders
// with no undefined variable, and ps-build's plan accepts the images.
func TestWriteParts(t *testing.T) {
	tests := []struct {
		name             string
		postgres, deploy bool
		want             []string
		images           []string // ps-build's plan, in order
	}{
		{"all", true, true, sorted(common, pgFiles, appFiles), []string{"base-debian", "app", "postgres"}},
		{"postgres", true, false, sorted(common, pgFiles), []string{"base-debian", "postgres"}},
		{"deploy", false, true, sorted(common, appFiles), []string{"base-debian", "postgres", "app"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := opts(tt.postgres, tt.deploy)
			res, err := Write(dir, o)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(tree(t, dir)); !slices.Equal(got, tt.want) {
				t.Errorf("files = %v\nwant %v", got, tt.want)
			}
			var reported []string
			for _, f := range res.Files {
				reported = append(reported, f.Path)
				if f.Status != Created {
					t.Errorf("%s: %s, want created", f.Path, f.Status)
				}
			}
			if reported[0] != config.FileName || !slices.Equal(sorted(reported), tt.want) {
				t.Errorf("reported %v", reported)
			}

			f, err := config.Load(filepath.Join(dir, config.FileName))
			if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			env, err := f.Environment("")
			if err != nil {
				t.Fatalf("environment: %v", err)
			}
			if f.Project.Name != "shop" || f.Project.Description != o.Description || env.Name != "dev" {
				t.Errorf("project %+v, environment %s", f.Project, env.Name)
			}
			pg := env.Postgres
			if tt.postgres {
				if pg.Database != "shop_dev" || pg.User != "shop_dev_user" || pg.Port != 5440 || !pg.GeneratePassword || pg.Image != "shop/postgres:latest" {
					t.Errorf("postgres = %+v", pg)
				}
			} else if pg.Image != config.DefaultImage || !pg.PortAuto {
				t.Errorf("postgres without the postgres part = %+v, want the defaults", pg)
			}
			if (env.Deployment != nil) != tt.deploy {
				t.Errorf("deployment = %+v", env.Deployment)
			}

			vars, err := variables.ForEnvironment(f, env, variables.Options{Port: func(string, string) (int, error) { return 5441, nil }})
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range keys(tree(t, dir)) {
				if !strings.HasSuffix(name, ".yaml") {
					continue
				}
				err := render.To(io.Discard, []render.Input{render.ProjectFile(dir, filepath.Join(dir, name))}, vars.Lookup, render.Options{YAML: true})
				if err != nil {
					t.Errorf("render %s: %v", name, err)
				}
				var doc struct {
					APIVersion string `yaml:"apiVersion"`
					Kind       string `yaml:"kind"`
				}
				b, _ := os.ReadFile(filepath.Join(dir, name))
				if err := yaml.Unmarshal(b, &doc); err != nil || doc.APIVersion != "v1" || doc.Kind != "Pod" {
					t.Errorf("%s: %+v, %v; want a v1 Pod", name, doc, err)
				}
			}

			images, err := build.Discover(build.Project{Name: "shop", Root: dir, Containers: "containers"})
			if err != nil {
				t.Fatalf("ps-build would refuse: %v", err)
			}
			plan, err := build.NewPlan("shop", images, nil)
			if err != nil {
				t.Fatalf("ps-build would refuse: %v", err)
			}
			var names []string
			for _, im := range plan.Images {
				names = append(names, im.Name)
				if im.Name == "postgres" && im.Builtin == tt.postgres {
					t.Errorf("postgres image builtin = %v", im.Builtin)
				}
			}
			if !slices.Equal(names, tt.images) {
				t.Errorf("ps-build plan %v, want %v", names, tt.images)
			}
		})
	}
}

// TestPostgresImageCopy checks that the project's postgres definition is the built-in one with
// the COPY sources moved to where they are in the project, the build context, and that its
// entrypoint is executable.
func TestPostgresImageCopy(t *testing.T) {
	dir := t.TempDir()
	if _, err := Write(dir, opts(true, false)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "containers/postgres/Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	if !strings.Contains(df, "\nCOPY containers/postgres/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh\n") ||
		strings.Contains(df, "\nCOPY docker-entrypoint.sh") || !strings.Contains(df, "\nENTRYPOINT [\"docker-entrypoint.sh\"]\n") {
		t.Errorf("Dockerfile:\n%s", df)
	}
	for _, name := range []string{"containers/postgres/docker-entrypoint.sh", "containers/app/app.sh"} {
		if name == "containers/app/app.sh" {
			if _, err := Write(dir, Options{Project: "shop", Environment: "dev", Deploy: true, Force: true}); err != nil {
				t.Fatal(err)
			}
		}
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil || st.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: mode %v, %v; want executable", name, st.Mode(), err)
		}
	}
}

func TestRefuseExistingProjectFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, config.FileName), []byte("project: {name: mine}\nenvironments: {dev: {}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := tree(t, dir)
	_, err := Write(dir, opts(true, true))
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(fmt.Sprint(err), ".poststack.yml exists: ps-env init --force replaces it") {
		t.Errorf("err = %v (exit %d), want exit 2 naming --force", err, exitcode.Of(err))
	}
	if after := tree(t, dir); !maps.Equal(before, after) {
		t.Errorf("the directory changed: %v", keys(after))
	}
}

func TestForce(t *testing.T) {
	dir := t.TempDir()
	mine := map[string]string{
		config.FileName:            "project: {name: mine}\nenvironments: {dev: {}}\n",
		"migrations/0001_init.sql": "CREATE TABLE mine ();\n",
		"containers/app/app.sh":    "echo mine\n",
	}
	for name, content := range mine {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	// Without --force only the project file stops the run; with the postgres part alone and no
	// project file, existing files are kept.
	os.Remove(filepath.Join(dir, config.FileName))
	res, err := Write(dir, opts(true, false))
	if err != nil {
		t.Fatal(err)
	}
	if st := status(res, "migrations/0001_init.sql"); st.Status != Kept {
		t.Errorf("migrations/0001_init.sql: %+v, want kept", st)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "migrations/0001_init.sql")); string(b) != mine["migrations/0001_init.sql"] {
		t.Errorf("kept file changed: %s", b)
	}

	// --force: the project file and the other files are replaced, each kept as .bak first.
	for name, content := range mine {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	o := opts(true, true)
	o.Force = true
	res, err = Write(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range mine {
		f := status(res, name)
		if f.Status != Replaced || f.Backup != name+".bak" {
			t.Errorf("%s: %+v, want replaced with %s.bak", name, f, name)
		}
		if b, err := os.ReadFile(filepath.Join(dir, name+".bak")); err != nil || string(b) != content {
			t.Errorf("%s.bak = %q, %v; want the old content", name, b, err)
		}
		if st, err := os.Stat(filepath.Join(dir, name+".bak")); err != nil || st.Mode().Perm() != 0o640 {
			t.Errorf("%s.bak mode %v, %v; want the old 0640", name, st.Mode(), err)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) == content {
			t.Errorf("%s was not replaced", name)
		}
	}
	if f := status(res, "containers/app/Dockerfile"); f.Status != Created {
		t.Errorf("containers/app/Dockerfile: %+v, want created", f)
	}
	if _, err := config.Load(filepath.Join(dir, config.FileName)); err != nil {
		t.Error(err)
	}

	// Again: every file has the content it would get, so nothing is replaced and no .bak moves.
	before := tree(t, dir)
	res, err = Write(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range res.Files {
		if f.Status != Kept && f.Status != Unchanged {
			t.Errorf("second --force: %+v, want kept", f)
		}
	}
	if after := tree(t, dir); !maps.Equal(before, after) {
		t.Errorf("the second --force changed the directory")
	}
}

func status(res *Result, path string) File {
	for _, f := range res.Files {
		if f.Path == path {
			return f
		}
	}
	return File{}
}

func TestIgnoreFiles(t *testing.T) {
	tests := []struct {
		name, old, want string
		status          Status
	}{
		{"missing", "", "# poststack: local state (generated secrets) and logs\n.poststack/\nlogs/\n", Created},
		{"appended", "node_modules/\n*.log", "node_modules/\n*.log\n# poststack: local state (generated secrets) and logs\n.poststack/\nlogs/\n", Updated},
		{"one there", "/.poststack\n", "/.poststack\n# poststack: local state (generated secrets) and logs\nlogs/\n", Updated},
		{"all there", "logs\n  .poststack/  \n", "logs\n  .poststack/  \n", Unchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.old != "" {
				if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte(tt.old), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			res, err := Write(dir, opts(false, true))
			if err != nil {
				t.Fatal(err)
			}
			if f := status(res, ".gitignore"); f.Status != tt.status {
				t.Errorf(".gitignore: %+v, want %s", f, tt.status)
			}
			got, _ := os.ReadFile(filepath.Join(dir, ".gitignore"))
			if string(got) != tt.want {
				t.Errorf(".gitignore =\n%q\nwant\n%q", got, tt.want)
			}
			if st, _ := os.Stat(filepath.Join(dir, ".gitignore")); tt.old != "" && st.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want the old 0600", st.Mode())
			}
			// Idempotent: a second run (the project file out of the way) adds nothing.
			os.Remove(filepath.Join(dir, config.FileName))
			res, err = Write(dir, opts(false, true))
			if err != nil {
				t.Fatal(err)
			}
			again, _ := os.ReadFile(filepath.Join(dir, ".gitignore"))
			if f := status(res, ".gitignore"); f.Status != Unchanged || string(again) != string(got) {
				t.Errorf("second run: %+v\n%s", f, again)
			}
		})
	}
}

// TestHostileCheckout plants links out of the project where init writes: each run is refused
// with exit 2 before anything is written, and nothing outside changes.
func TestHostileCheckout(t *testing.T) {
	tests := []struct {
		name  string
		force bool
		plant func(t *testing.T, dir, outside string)
		msg   string
	}{
		{"containers links out", false, func(t *testing.T, dir, outside string) {
			symlink(t, outside, filepath.Join(dir, "containers"))
		}, "containers/postgres/Dockerfile: its directory leads outside the project directory"},
		{"a deeper directory links out", false, func(t *testing.T, dir, outside string) {
			mkdir(t, filepath.Join(dir, "containers"))
			symlink(t, outside, filepath.Join(dir, "containers", "app"))
		}, "containers/app/Dockerfile: its directory leads outside the project directory"},
		{"dangling directory link", false, func(t *testing.T, dir, outside string) {
			symlink(t, filepath.Join(outside, "nothing"), filepath.Join(dir, "migrations"))
		}, "leads outside the project directory"},
		{"file links out, --force", true, func(t *testing.T, dir, outside string) {
			mkdir(t, filepath.Join(dir, "migrations"))
			symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, "migrations", "0001_init.sql"))
		}, "migrations/0001_init.sql: is a symbolic link to"},
		{".gitignore links out", false, func(t *testing.T, dir, outside string) {
			symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, ".gitignore"))
		}, ".gitignore: is a symbolic link to"},
		{"project file links out, --force", true, func(t *testing.T, dir, outside string) {
			symlink(t, filepath.Join(outside, "secret"), filepath.Join(dir, config.FileName))
		}, ".poststack.yml: is a symbolic link to"},
		{"a parent is a file", false, func(t *testing.T, dir, outside string) {
			if err := os.WriteFile(filepath.Join(dir, "containers"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "containers: exists and is not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir, outside := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("root:x:0:0\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tt.plant(t, dir, outside)
			before, beforeOut := tree(t, dir), tree(t, outside)
			o := opts(true, true)
			o.Force = tt.force
			_, err := Write(dir, o)
			if exitcode.Of(err) != exitcode.Usage || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Errorf("err = %v (exit %d), want exit 2 with %q", err, exitcode.Of(err), tt.msg)
			}
			if strings.Contains(fmt.Sprint(err), "root:x") {
				t.Errorf("the error shows the linked file's content: %v", err)
			}
			if after := tree(t, dir); !maps.Equal(before, after) {
				t.Errorf("the project changed: %v", keys(after))
			}
			if after := tree(t, outside); !maps.Equal(beforeOut, after) {
				t.Errorf("outside the project changed: %v", after)
			}
		})
	}
}

// TestLinkInsideProject: links that stay inside the project are fine; --force replaces the link
// itself, and the .bak keeps it.
func TestLinkInsideProject(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, filepath.Join(dir, "sql"))
	symlink(t, "sql", filepath.Join(dir, "migrations"))
	if err := os.WriteFile(filepath.Join(dir, "sql", "mine.sql"), []byte("SELECT 1;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink(t, "mine.sql", filepath.Join(dir, "sql", "0001_init.sql"))
	o := opts(true, false)
	o.Force = true
	res, err := Write(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if f := status(res, "migrations/0001_init.sql"); f.Status != Replaced {
		t.Errorf("%+v, want replaced", f)
	}
	if l, err := os.Readlink(filepath.Join(dir, "sql", "0001_init.sql.bak")); err != nil || l != "mine.sql" {
		t.Errorf(".bak = link %q, %v; want the old link", l, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sql", "mine.sql")); string(b) != "SELECT 1;\n" {
		t.Errorf("the link's target was written through: %s", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "sql", "0001_init.rollback.sql")); !strings.Contains(string(b), "DROP TABLE") {
		t.Errorf("rollback not written through the directory link: %q", b)
	}
}

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", 64)
	tests := []struct {
		name string
		edit func(*Options)
		msg  string
	}{
		{"no part", func(o *Options) { o.Postgres, o.Deploy = false, false }, "nothing to scaffold"},
		{"project name", func(o *Options) { o.Project = "My App" }, `project name "My App": use lower-case`},
		{"environment", func(o *Options) { o.Environment = "-dev" }, `environment name "-dev"`},
		{"database", func(o *Options) { o.Database = long }, "database name " + `"` + long + `" is 64 bytes long`},
		{"user", func(o *Options) { o.User = "" }, "database user must not be empty"},
		{"port", func(o *Options) { o.Port = 70000 }, "database port 70000 is not a port"},
		{"description", func(o *Options) { o.Description = "two\nlines" }, "description one line"},
		{"invalid utf-8", func(o *Options) { o.Description = "\xff" }, "description not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			o := opts(true, true)
			tt.edit(&o)
			_, err := Write(dir, o)
			if exitcode.Of(err) != exitcode.Usage || !strings.Contains(fmt.Sprint(err), tt.msg) {
				t.Errorf("err = %v, want exit 2 with %q", err, tt.msg)
			}
			if len(tree(t, dir)) != 0 {
				t.Errorf("files written: %v", keys(tree(t, dir)))
			}
		})
	}
	// The database settings do not matter without the postgres part.
	o := opts(false, true)
	o.Database, o.Port = "", 0
	if _, err := Write(t.TempDir(), o); err != nil {
		t.Error(err)
	}
}

func TestYAMLString(t *testing.T) {
	for _, s := range []string{"", "shop_dev", "shop-dev.1", "true", "null", "no", "1234", "0x1F", "a: b", "#x", `quo"te\`, "tab\there", "ünïcode", "- x", "~", "*alias", "&anchor", "{a}", "'single'"} {
		out := yamlString(s)
		var got string
		if err := yaml.Unmarshal([]byte("v: "+out), &struct{ V *string }{&got}); err != nil || got != s {
			t.Errorf("yamlString(%q) = %s decodes to %q, %v", s, out, got, err)
		}
	}
	if yamlString("shop_dev") != "shop_dev" {
		t.Errorf("a plain name is quoted: %s", yamlString("shop_dev"))
	}
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"myapp": "myapp", "My App": "my-app", "My_App": "my_app", "  --x--  ": "x", "über cool!": "ber-cool",
		"___": "", "app.v2": "app.v2", "A  B": "a-b", "x-": "x",
	} {
		if got := SanitizeName(in); got != want {
			t.Errorf("SanitizeName(%q) = %q, want %q", in, got, want)
		}
		if got := SanitizeName(in); got != "" && !config.ValidName(got) {
			t.Errorf("SanitizeName(%q) = %q is not a valid name", in, got)
		}
	}
}

func symlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestLinkOutKeptWithoutForce: a file planted as a link out of the project is left alone, and
// what it points at is neither read nor written.
func TestLinkOutKeptWithoutForce(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("root:x:0:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mkdir(t, filepath.Join(dir, "containers", "app"))
	symlink(t, secret, filepath.Join(dir, "containers", "app", "app.sh"))
	res, err := Write(dir, opts(false, true))
	if err != nil {
		t.Fatal(err)
	}
	if f := status(res, "containers/app/app.sh"); f.Status != Kept {
		t.Errorf("%+v, want kept", f)
	}
	if b, _ := os.ReadFile(secret); string(b) != "root:x:0:0\n" {
		t.Errorf("the linked file changed: %q", b)
	}
}
