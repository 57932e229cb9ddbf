package variables

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
)

func load(t *testing.T, yml string) (*config.File, *config.Environment) {
	t.Helper()
	dir := t.TempDir()
	f, err := config.Parse("p.yml", []byte(yml), dir)
	if err != nil {
		t.Fatal(err)
	}
	env, err := f.Environment("")
	if err != nil {
		t.Fatal(err)
	}
	return f, env
}

const devYML = `
environment: dev
project: {name: myapp}
environments:
  dev:
    postgres:
      database: myapp_dev
      user: app
      password: "p@ss:w/rd%"
      port: 5433
    variables:
      OVERRIDDEN_BY_VARS: variables
      OVERRIDDEN_BY_PROC: variables
      OVERRIDDEN_BY_SET: variables
      APP_PORT: 8080
`

func TestPrecedence(t *testing.T) {
	f, env := load(t, devYML)
	envFile, _ := filepath.Abs(filepath.Join("testdata", "quotes.env"))
	s, err := ForEnvironment(f, env, Options{
		EnvFiles: []string{envFile},
		Environ: []string{
			"FROM_PROC=proc", "OVERRIDDEN_BY_PROC=environment", "OVERRIDDEN_BY_SET=environment",
			"DB_PASSWORD=ignored", "POSTSTACK_PROJECT=ignored", "=C:=weird", "NOEQUALS", "dotted.name=x",
		},
		Set: []string{"OVERRIDDEN_BY_SET=set=with=equals", "NEW_FROM_SET="},
	})
	if err != nil {
		t.Fatal(err)
	}
	dotenvSrc := ".env (" + envFile + ")"
	tests := []struct {
		name, value, source string
	}{
		{"EXPORTED", "yes", dotenvSrc},
		{"SINGLE", `single $NOT_EXPANDED \n`, dotenvSrc},
		{"DOUBLE", "line1\nline2 proc", dotenvSrc},
		{"UNQUOTED", "plain value", dotenvSrc},
		{"EMPTY", "", dotenvSrc},
		{"FROM_ENV_FILE", "dotenv", dotenvSrc},
		{"OVERRIDDEN_BY_VARS", "variables", SourceVariables},
		{"OVERRIDDEN_BY_PROC", "environment", SourceEnvironment},
		{"OVERRIDDEN_BY_SET", "set=with=equals", SourceSet},
		{"NEW_FROM_SET", "", SourceSet},
		{"APP_PORT", "8080", SourceVariables},
		{"FROM_PROC", "proc", SourceEnvironment},
		{"DB_HOST", "myapp-dev-postgres", SourceBuiltin},
		{"DB_PASSWORD", "p@ss:w/rd%", SourceBuiltin},
		{"POSTSTACK_PROJECT", "myapp", SourceBuiltin},
	}
	for _, tt := range tests {
		v, ok := s.Var(tt.name)
		if !ok || v.Value != tt.value || v.Source != tt.source {
			t.Errorf("%s = %+v (set %v), want %q from %q", tt.name, v, ok, tt.value, tt.source)
		}
	}
	for _, absent := range []string{"", "NOEQUALS", "dotted.name", "=C:"} {
		if _, ok := s.Lookup(absent); ok {
			t.Errorf("%q should not be a variable", absent)
		}
	}
	all := s.All()
	for i, name := range config.Builtins() {
		if all[i].Name != name || all[i].Source != SourceBuiltin {
			t.Errorf("All()[%d] = %+v, want built-in %s", i, all[i], name)
		}
	}
	if got := s.Get("MISSING"); got != "" {
		t.Errorf("Get(MISSING) = %q", got)
	}
	lookup := s.Lookup // the substitution engine's signature
	if v, ok := lookup("APP_PORT"); !ok || v != "8080" {
		t.Errorf("Lookup(APP_PORT) = %q, %v", v, ok)
	}
	if env := s.Environ(); len(env) != len(all) || env[0] != "POSTSTACK_PROJECT=myapp" {
		t.Errorf("Environ() = %q", env[:1])
	}
}

func TestBuiltinsContainer(t *testing.T) {
	f, env := load(t, devYML)
	s, err := ForEnvironment(f, env, Options{EnvFiles: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"POSTSTACK_PROJECT":           "myapp",
		"POSTSTACK_ENVIRONMENT":       "dev",
		"POSTSTACK_DATABASE_URL":      "postgres://app:p%40ss%3Aw%2Frd%25@myapp-dev-postgres:5432/myapp_dev?sslmode=disable",
		"POSTSTACK_HOST_DATABASE_URL": "postgres://app:p%40ss%3Aw%2Frd%25@127.0.0.1:5433/myapp_dev?sslmode=disable",
		"DB_HOST":                     "myapp-dev-postgres",
		"DB_PORT":                     "5432",
		"DB_NAME":                     "myapp_dev",
		"DB_USER":                     "app",
		"DB_PASSWORD":                 "p@ss:w/rd%",
		"POSTSTACK_DB_HOST":           "myapp-dev-postgres",
		"POSTSTACK_DB_PORT":           "5432",
		"POSTSTACK_DB_NAME":           "myapp_dev",
		"POSTSTACK_DB_USER":           "app",
		"POSTSTACK_DB_PASSWORD":       "p@ss:w/rd%",
	}
	for k, v := range want {
		if got := s.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// The URL must round-trip through net/url to the same password.
	if !strings.Contains(s.Get("POSTSTACK_DATABASE_URL"), "p%40ss") {
		t.Error("password not percent-encoded")
	}
}

func TestPostgresURLRoundTrip(t *testing.T) {
	tests := []struct{ user, pw, host, db string }{
		{"app", "p@ss:w/rd%", "h", "db"},
		{"us:er@x", "#?&= ", "::1", "my db/x"},
		{"u", "", "10.0.0.1", "d"},
	}
	for _, tt := range tests {
		raw := PostgresURL(tt.user, tt.pw, tt.host, 6000, tt.db)
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		pw, _ := u.User.Password()
		if u.User.Username() != tt.user || pw != tt.pw || u.Hostname() != tt.host || u.Port() != "6000" ||
			u.Path != "/"+tt.db || u.Query().Get("sslmode") != "disable" {
			t.Errorf("%s parsed back as %+v", raw, u)
		}
	}
}

func TestBuiltinsBindAndGenerated(t *testing.T) {
	f, env := load(t, `
project: {name: shop}
environments:
  ci:
    postgres: {database: d, user: u, bind: 0.0.0.0}
`)
	calls := 0
	s, err := ForEnvironment(f, env, Options{Password: func(project, env string) (string, error) {
		calls++
		if project != "shop" || env != "ci" {
			t.Errorf("Password(%q, %q)", project, env)
		}
		return "generated", nil
	}, Port: func(project, env string) (int, error) { return 6001, nil }})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || s.Get("DB_PASSWORD") != "generated" || s.Get("DB_PORT") != "5432" ||
		s.Get("POSTSTACK_HOST_DATABASE_URL") != "postgres://u:generated@127.0.0.1:6001/d?sslmode=disable" {
		t.Errorf("calls=%d DB_PASSWORD=%q host url=%q", calls, s.Get("DB_PASSWORD"), s.Get("POSTSTACK_HOST_DATABASE_URL"))
	}
	boom := errors.New("boom")
	_, err = ForEnvironment(f, env, Options{Password: func(string, string) (string, error) { return "", boom }})
	if !errors.Is(err, boom) {
		t.Errorf("password error not passed on: %v", err)
	}

	// Without a Password function the secret package stores one in the
	// project directory, and the second run reuses it.
	s1, err := ForEnvironment(f, env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := ForEnvironment(f, env, Options{})
	if pw := s1.Get("DB_PASSWORD"); len(pw) != 32 || s2.Get("DB_PASSWORD") != pw {
		t.Errorf("generated passwords %q, %q", pw, s2.Get("DB_PASSWORD"))
	}
	if _, err := os.Stat(filepath.Join(f.Dir, ".poststack", "shop-ci.password")); err != nil {
		t.Error(err)
	}
}

func TestBuiltinsExternal(t *testing.T) {
	f, env := load(t, `
project: {name: shop}
environments:
  prod:
    postgres:
      url: postgres://admin:s%23cr%40t@db.example.com/shop_prod?sslmode=require
`)
	s, err := ForEnvironment(f, env, Options{Password: func(string, string) (string, error) {
		t.Error("no password is generated for an external database")
		return "", nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	u := "postgres://admin:s%23cr%40t@db.example.com/shop_prod?sslmode=require"
	want := map[string]string{
		"POSTSTACK_DATABASE_URL": u, "POSTSTACK_HOST_DATABASE_URL": u,
		"DB_HOST": "db.example.com", "DB_PORT": "5432", "DB_NAME": "shop_prod", "DB_USER": "admin", "DB_PASSWORD": "s#cr@t",
		"POSTSTACK_DB_HOST": "db.example.com", "POSTSTACK_DB_PASSWORD": "s#cr@t",
	}
	for k, v := range want {
		if got := s.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestSetErrors(t *testing.T) {
	f, env := load(t, devYML)
	tests := []struct {
		set  []string
		want string
	}{
		{[]string{"DB_HOST=x"}, "--set DB_HOST: DB_HOST is built-in and cannot be overridden"},
		{[]string{"NOVALUE"}, `--set "NOVALUE": want NAME=VALUE`},
		{[]string{"1BAD=x"}, `--set "1BAD=x": "1BAD" is not a valid variable name`},
		{[]string{"=x"}, `--set "=x": "" is not a valid variable name`},
		{[]string{"A-B=1", "POSTSTACK_DATABASE_URL=x"}, "--set \"A-B=1\": \"A-B\" is not a valid variable name (letters, digits and '_', not starting with a digit)\n--set POSTSTACK_DATABASE_URL: POSTSTACK_DATABASE_URL is built-in and cannot be overridden"},
	}
	for _, tt := range tests {
		_, err := ForEnvironment(f, env, Options{Set: tt.set})
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) || exitcode.Of(err) != exitcode.Usage {
			t.Errorf("--set %q: err = %v (code %d), want prefix %q", tt.set, err, exitcode.Of(err), tt.want)
		}
	}
}

func TestParseAssignment(t *testing.T) {
	tests := []struct {
		in, name, value string
		ok              bool
	}{
		{"A=b", "A", "b", true},
		{"URL=postgres://u:p@h/db?x=1", "URL", "postgres://u:p@h/db?x=1", true},
		{"EMPTY=", "EMPTY", "", true},
		{"_x9=1", "_x9", "1", true},
		{"A", "", "", false},
		{"A B=c", "", "", false},
	}
	for _, tt := range tests {
		name, value, err := ParseAssignment(tt.in)
		if (err == nil) != tt.ok || name != tt.name || value != tt.value {
			t.Errorf("ParseAssignment(%q) = %q, %q, %v", tt.in, name, value, err)
		}
		if err != nil && !strings.Contains(err.Error(), tt.in) {
			t.Errorf("error %q does not quote the argument", err)
		}
	}
}

func TestStandalone(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.env")
	b := filepath.Join(dir, "b.env")
	os.WriteFile(a, []byte("A=1\nB=from-a\nDB_HOST=db\n"), 0o600)
	os.WriteFile(b, []byte("B=${A}-from-b\nC=${HOME}\n"), 0o600)
	s, err := Standalone(Options{
		EnvFiles: []string{a, b},
		Environ:  []string{"HOME=/root", "A=proc"},
		Set:      []string{"DB_HOST=set-is-fine-without-a-project"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Var{
		{Name: "A", Value: "proc", Source: SourceEnvironment},
		{Name: "B", Value: "proc-from-b", Source: ".env (" + b + ")"},
		{Name: "DB_HOST", Value: "set-is-fine-without-a-project", Source: SourceSet},
		{Name: "C", Value: "/root", Source: ".env (" + b + ")"},
		{Name: "HOME", Value: "/root", Source: SourceEnvironment},
	}
	if got := s.All(); !reflect.DeepEqual(got, want) {
		t.Errorf("All() =\n%+v\nwant\n%+v", got, want)
	}

	_, err = Standalone(Options{EnvFiles: []string{filepath.Join(dir, "missing.env")}})
	if err == nil || exitcode.Of(err) != exitcode.Usage || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing env file: %v", err)
	}
	os.WriteFile(a, []byte("BAD KEY=1\n"), 0o600)
	_, err = Standalone(Options{EnvFiles: []string{a}})
	if err == nil || exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), a) {
		t.Errorf("bad env file: %v", err)
	}
}

func TestDefaultDotEnv(t *testing.T) {
	f, env := load(t, devYML)
	os.WriteFile(filepath.Join(f.Dir, ".env"), []byte("FROM_DEFAULT=1\n"), 0o600)
	s, err := ForEnvironment(f, env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Var("FROM_DEFAULT"); v.Value != "1" || v.Source != ".env ("+filepath.Join(f.Dir, ".env")+")" {
		t.Errorf("FROM_DEFAULT = %+v", v)
	}
	s, _ = ForEnvironment(f, env, Options{EnvFiles: []string{}})
	if _, ok := s.Lookup("FROM_DEFAULT"); ok {
		t.Error("an explicit empty EnvFiles must not read the default .env")
	}
}

func TestSecrets(t *testing.T) {
	tests := []struct {
		name, value string
		want        bool
	}{
		{"DB_PASSWORD", "x", true},
		{"POSTSTACK_HOST_DATABASE_URL", "x", true},
		{"API_KEY", "x", true},
		{"github_token", "x", true},
		{"MY_SECRET_VALUE", "x", true},
		{"PASSWORD", "x", true},
		{"KEYBOARD", "x", false},
		{"TOKENIZER_MODE", "x", false},
		{"DB_HOST", "x", false},
		{"PWD", "/home", false},
		{"DATABASE_URL", "postgres://u:pw@h/db", true},
		{"DATABASE_URL", "postgres://u@h/db", false},
	}
	for _, tt := range tests {
		if got := IsSecret(tt.name, tt.value); got != tt.want {
			t.Errorf("IsSecret(%q, %q) = %v", tt.name, tt.value, got)
		}
	}
	f, env := load(t, devYML)
	s, err := ForEnvironment(f, env, Options{EnvFiles: []string{}, Environ: []string{"GH_TOKEN=ghp_x", "PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Secrets()
	want := []string{
		"postgres://app:p%40ss%3Aw%2Frd%25@myapp-dev-postgres:5432/myapp_dev?sslmode=disable",
		"postgres://app:p%40ss%3Aw%2Frd%25@127.0.0.1:5433/myapp_dev?sslmode=disable",
		"p@ss:w/rd%", "ghp_x",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Secrets() = %q\nwant %q", got, want)
	}
}
