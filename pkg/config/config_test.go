package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
)

// brokenWant is the exact error each file in testdata/broken produces,
// from Load or, for problems that depend on the selected environment,
// from Environment("").
var brokenWant = map[string]string{
	"unknown-anchor":          "broken/unknown-anchor.yml:4:15: invalid YAML: unknown anchor 'pg' referenced",
	"merge-self":              "broken/merge-self.yml:4:5: a << merge includes the mapping it is in",
	"bad-env-name":            "broken/bad-env-name.yml:4:3: environment name \"Dev\" is invalid: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit",
	"bad-project-name":        "broken/bad-project-name.yml:2:9: project name \"My App\" is invalid: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit",
	"bind-invalid":            "broken/bind-invalid.yml:9:13: bind must be an IP address such as 127.0.0.1 or 0.0.0.0, got \"localhost\"",
	"deployment-unknown-key":  "broken/deployment-unknown-key.yml:10:7: unknown key \"pods\" in deployment of environment \"dev\" (did you mean \"pod\"?)",
	"duplicate-env":           "broken/duplicate-env.yml:6:3: duplicate key \"dev\" (first defined at line 4)",
	"duplicate-key":           "broken/duplicate-key.yml:9:7: duplicate key \"database\" (first defined at line 7)",
	"empty":                   "broken/empty.yml:1:1: file is empty",
	"environments-list":       "broken/environments-list.yml:4:3: environments must be a mapping of environment names, got a list",
	"init-both":               "broken/init-both.yml:10:9: init entry 1 of environment \"dev\" must have exactly one of pod or compose, got both",
	"init-empty-entry":        "broken/init-empty-entry.yml:10:9: init entry 1 of environment \"dev\" must have exactly one of pod or compose, got neither",
	"init-scalar":             "broken/init-scalar.yml:10:9: init entry 1 of environment \"dev\" must be {pod: FILE} or {compose: FILE}, got \"containers/migrations.yaml\"",
	"many-problems":           "broken/many-problems.yml:4:3: unknown key \"descripton\" in project (did you mean \"description\"?)\nbroken/many-problems.yml:9:13: port must be a number 1–65535 or auto, got \"54x\"\nbroken/many-problems.yml:11:7: variable POSTSTACK_PROJECT is built-in and cannot be set in variables:",
	"merge-not-mapping":       "broken/merge-not-mapping.yml:5:10: a << merge needs a mapping or a list of mappings, got \"1\"",
	"default-name-too-long":   "broken/default-name-too-long.yml:5:5: environment \"development-environment\": the default postgres.database \"a-project-whose-name-is-long-enough-on-its-own_development-environment\" is longer than 63 bytes: set postgres.database\nbroken/default-name-too-long.yml:5:5: environment \"development-environment\": the default postgres.user \"a-project-whose-name-is-long-enough-on-its-own_development-environment_user\" is longer than 63 bytes: set postgres.user",
	"missing-deployment-file": "broken/missing-deployment-file.yml:10:7: compose file nowhere/app.yml does not exist",
	"missing-init-file":       "broken/missing-init-file.yml:11:9: compose file containers/seed/seed.yml does not exist",
	"missing-project-name":    "broken/missing-project-name.yml:1:1: project.name is required",
	"missing-project":         "broken/missing-project.yml:1:1: project is required (project: {name: …})",
	"no-environment-selected": "broken/no-environment-selected.yml:3:1: no environment selected: set environment: or choose one of dev, test",
	"no-environments":         "broken/no-environments.yml:3:1: environments must define at least one environment",
	"not-mapping":             "broken/not-mapping.yml:1:1: the file must be a mapping, got a list",
	"only-comments":           "broken/only-comments.yml:1:1: file is empty",
	"password-empty":          "broken/password-empty.yml:9:17: password must not be empty (use auto_generated to have one generated)",
	"port-mapping":            "broken/port-mapping.yml:9:13: port must be a number 1–65535 or auto, got a mapping",
	"port-range":              "broken/port-range.yml:9:13: port must be a number 1–65535 or auto, got \"70000\"",
	"port-string":             "broken/port-string.yml:7:13: port must be a number 1–65535 or auto, got \"abc\"",
	"syntax":                  "broken/syntax.yml:3:1: invalid YAML: found unexpected end of stream",
	"tab-indent":              "broken/tab-indent.yml:2:1: invalid YAML: found character that cannot start any token",
	"two-documents":           "broken/two-documents.yml:6:1: only one YAML document is allowed",
	"unknown-env-key":         "broken/unknown-env-key.yml:5:5: unknown key \"postgress\" in environment \"dev\" (did you mean \"postgres\"?)",
	"unknown-environment":     "broken/unknown-environment.yml:1:14: environment \"prod\" is not defined (known: dev, test)",
	"unknown-postgres-key":    "broken/unknown-postgres-key.yml:9:7: unknown key \"prot\" in postgres of environment \"dev\" (did you mean \"port\"?)",
	"unknown-top-key":         "broken/unknown-top-key.yml:3:1: unknown key \"enviroments\" at the top level (did you mean \"environments\"?)",
	"url-invalid":             "broken/url-invalid.yml:7:12: url must have scheme postgres://, a database, got \"mysql://root:xxxxx@db.example.com/\"",
	"url-with-database":       "broken/url-with-database.yml:8:7: database cannot be combined with url (an external database is configured by its url alone)",
	"variable-bad-name":       "broken/variable-bad-name.yml:10:7: variable name \"MY-VAR\" is invalid: use letters, digits and '_', not starting with a digit\nbroken/variable-bad-name.yml:11:7: variable name \"1ST\" is invalid: use letters, digits and '_', not starting with a digit",
	"variable-builtin":        "broken/variable-builtin.yml:10:7: variable DB_HOST is built-in and cannot be set in variables:",
	"variable-list":           "broken/variable-list.yml:10:14: variable HOSTS must be a string, number or boolean, got a list\nbroken/variable-list.yml:11:13: variable OPTS must be a string, number or boolean, got a mapping",
	"variable-null":           "broken/variable-null.yml:10:13: variable EMPTY must be a string, number or boolean, got null",
}

func TestBroken(t *testing.T) {
	t.Chdir("testdata")
	files, err := filepath.Glob("broken/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 22 {
		t.Fatalf("only %d broken files", len(files))
	}
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yml")
		t.Run(name, func(t *testing.T) {
			want, ok := brokenWant[name]
			if !ok {
				t.Fatalf("no expected error for %s", path)
			}
			f, err := Load(path)
			if err == nil {
				_, err = f.Environment("")
			}
			if err == nil {
				t.Fatalf("no error, want %q", want)
			}
			if got := err.Error(); got != want {
				t.Errorf("error\n got: %s\nwant: %s", got, want)
			}
			if code := exitcode.Of(err); code != exitcode.Usage {
				t.Errorf("exit code %d, want %d", code, exitcode.Usage)
			}
		})
	}
	for name := range brokenWant {
		if _, err := os.Stat(filepath.Join("broken", name+".yml")); err != nil {
			t.Errorf("table entry %s has no file: %v", name, err)
		}
	}
}

func TestLoadFull(t *testing.T) {
	dir := filepath.Join("testdata", "good")
	path := filepath.Join(dir, "full.yml")
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Default != "dev" || f.Project.Name != "myapp" || f.Project.Description != "My app" {
		t.Errorf("header = %q %q %q", f.Default, f.Project.Name, f.Project.Description)
	}
	if got := f.Names(); !reflect.DeepEqual(got, []string{"dev", "staging"}) {
		t.Errorf("Names() = %v", got)
	}
	env, err := f.Environment("")
	if err != nil {
		t.Fatal(err)
	}
	pos := func(line, col int) Pos { return Pos{File: path, Line: line, Col: col} }
	want := &Environment{
		Name: "dev",
		Pos:  pos(6, 3),
		Postgres: Postgres{
			Pos: pos(7, 5), Database: "myapp_dev", User: "myapp_dev_user", GeneratePassword: true,
			Port: 5433, Image: DefaultImage, Bind: DefaultBind,
		},
		Init: []Step{
			{Kind: Pod, Path: "containers/migrations/migrations.yaml", File: filepath.Join(dir, "containers/migrations/migrations.yaml"), Pos: pos(14, 9)},
			{Kind: Compose, Path: "containers/seed/seed.yml", File: filepath.Join(dir, "containers/seed/seed.yml"), Pos: pos(15, 9)},
		},
		Deployment: &Step{Kind: Pod, Path: "containers/app/app-pod.yaml", File: filepath.Join(dir, "containers/app/app-pod.yaml"), Pos: pos(17, 7)},
		Variables: []Variable{
			{"LOG_LEVEL", "debug", pos(19, 7)},
			{"APP_PORT", "8080", pos(20, 7)},
			{"DEBUG", "true", pos(21, 7)},
			{"RATIO", "1.50", pos(22, 7)},
			{"QUOTED", "0123", pos(23, 7)},
			{"EMPTY", "", pos(24, 7)},
		},
	}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("dev =\n%+v\nwant\n%+v", env, want)
	}

	// staging loads (only the selected environment's files must exist) but
	// selecting it reports its missing deployment file.
	_, err = f.Environment("staging")
	wantErr := path + ":29:7: compose file containers/does-not-exist.yml does not exist"
	if err == nil || err.Error() != wantErr {
		t.Errorf("Environment(staging) error = %v, want %s", err, wantErr)
	}
	st := f.Environments[1]
	wantPG := Postgres{
		Pos: pos(26, 5), Database: "app_staging", User: "app", Password: "s@cret", Port: 6543,
		URL: "postgres://app:s%40cret@db.example.com:6543/app_staging?sslmode=require",
	}
	if !reflect.DeepEqual(st.Postgres, wantPG) || !st.Postgres.External() {
		t.Errorf("staging postgres =\n%+v\nwant\n%+v", st.Postgres, wantPG)
	}

	_, err = f.Environment("prod")
	wantErr = path + ":5:1: environment \"prod\" is not defined (known: dev, staging)"
	if err == nil || err.Error() != wantErr {
		t.Errorf("Environment(prod) error = %v, want %s", err, wantErr)
	}
}

func TestLoadAnchors(t *testing.T) {
	f, err := Load(filepath.Join("testdata", "good", "anchors.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Project.Name != "shop.v2" {
		t.Errorf("project name %q", f.Project.Name)
	}
	// With one environment selected by nobody, Environment("") must refuse:
	// there are two.
	if _, err := f.Environment(""); err == nil {
		t.Error("Environment(\"\") with two environments and no default: no error")
	}
	test, err := f.Environment("test")
	if err != nil {
		t.Fatal(err)
	}
	pg := test.Postgres
	if pg.Database != "shop_test" || pg.User != "shop" || pg.Password != "hunter22" || pg.GeneratePassword ||
		pg.Port != 15432 || pg.Bind != "0.0.0.0" || pg.Image != DefaultImage {
		t.Errorf("merged postgres = %+v", pg)
	}
	if len(test.Variables) != 1 || test.Variables[0].Value != "test" {
		t.Errorf("variables = %+v", test.Variables)
	}
	dev, _ := f.Environment("dev")
	if dev.Postgres.Database != "shop" || dev.Postgres.Port != 0 || !dev.Postgres.PortAuto {
		t.Errorf("dev postgres = %+v", dev.Postgres)
	}
}

func TestParseMinimal(t *testing.T) {
	data := []byte("project: {name: a}\nenvironments:\n  ci:\n    postgres: {database: d, user: u}\n")
	f, err := Parse("inline.yml", data, "/proj")
	if err != nil {
		t.Fatal(err)
	}
	env, err := f.Environment("")
	if err != nil {
		t.Fatalf("single environment should be selected by default: %v", err)
	}
	want := Postgres{Pos: Pos{"inline.yml", 4, 5}, Database: "d", User: "u", GeneratePassword: true, PortAuto: true, Image: DefaultImage, Bind: "127.0.0.1"}
	if env.Name != "ci" || !reflect.DeepEqual(env.Postgres, want) {
		t.Errorf("got %s %+v", env.Name, env.Postgres)
	}
}

// TestPostgresDefaults: every postgres key has a default (DESIGN.md), so an environment may
// omit the section or any key of it; what is given wins.
func TestPostgresDefaults(t *testing.T) {
	data := []byte(`project: {name: shop}
environments:
  dev:
    variables: {A: b}
  ci:
    postgres: {user: ci_user, port: 6543}
  prod:
    postgres: {database: shop}
`)
	f, err := Parse("inline.yml", data, "/proj")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  string
		want Postgres
	}{
		{"dev", Postgres{Pos: Pos{"inline.yml", 3, 3}, Database: "shop_dev", User: "shop_dev_user", GeneratePassword: true, PortAuto: true, Image: DefaultImage, Bind: DefaultBind}},
		{"ci", Postgres{Pos: Pos{"inline.yml", 6, 5}, Database: "shop_ci", User: "ci_user", GeneratePassword: true, Port: 6543, Image: DefaultImage, Bind: DefaultBind}},
		{"prod", Postgres{Pos: Pos{"inline.yml", 8, 5}, Database: "shop", User: "shop_prod_user", GeneratePassword: true, PortAuto: true, Image: DefaultImage, Bind: DefaultBind}},
	} {
		env, err := f.Environment(tt.env)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(env.Postgres, tt.want) {
			t.Errorf("%s: got %+v\nwant %+v", tt.env, env.Postgres, tt.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), FileName))
	if err == nil || !os.IsNotExist(unwrapAll(err)) || exitcode.Of(err) != exitcode.Usage {
		t.Errorf("err = %v (code %d)", err, exitcode.Of(err))
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"postgres", "init", "deployment", "variables"}
	tests := []struct{ word, want string }{
		{"postgress", "postgres"},
		{"Postgres", "postgres"},
		{"variable", "variables"},
		{"deploy", ""},
		{"inti", "init"},
		{"zzz", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.word, known); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.word, got, tt.want)
		}
	}
}

func TestNames(t *testing.T) {
	tests := []struct {
		s           string
		name, isVar bool
	}{
		{"myapp", true, true},
		{"my-app_2.x", true, false},
		{"-app", false, false},
		{"MyApp", false, true},
		{"DB_HOST", false, true},
		{"_x", false, true},
		{"1x", true, false},
		{"1X", false, false},
		{"", false, false},
	}
	for _, tt := range tests {
		if got := ValidName(tt.s); got != tt.name {
			t.Errorf("ValidName(%q) = %v", tt.s, got)
		}
		if got := ValidVariableName(tt.s); got != tt.isVar {
			t.Errorf("ValidVariableName(%q) = %v", tt.s, got)
		}
	}
	if !IsBuiltin("POSTSTACK_DB_PASSWORD") || IsBuiltin("DB_PASS") || len(Builtins()) != 14 {
		t.Error("built-in list is wrong")
	}
}
