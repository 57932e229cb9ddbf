package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/exitcode"
)

const setDefaultBody = "project:\n  name: app\nenvironments:\n  dev: {}\n  prod: {}\n"

func TestSetDefault(t *testing.T) {
	tests := []struct {
		name, in, env, want string
		err                 string // substring; "" for success
	}{
		{"plain", "environment: dev\n" + setDefaultBody, "prod", "environment: prod\n" + setDefaultBody, ""},
		{"comment kept", "# header\nenvironment: dev   # the current one\n" + setDefaultBody, "prod",
			"# header\nenvironment: prod   # the current one\n" + setDefaultBody, ""},
		{"double quoted", `environment: "dev" # x` + "\n" + setDefaultBody, "prod", `environment: "prod" # x` + "\n" + setDefaultBody, ""},
		{"single quoted", "environment: 'dev'\n" + setDefaultBody, "prod", "environment: 'prod'\n" + setDefaultBody, ""},
		{"quoted with hash", `environment: "d#v"` + "\n" + setDefaultBody, "prod", `environment: "prod"` + "\n" + setDefaultBody, ""},
		{"not first", setDefaultBody + "environment: dev\n", "prod", setDefaultBody + "environment: prod\n", ""},
		{"value on next line", "environment:\n  dev\n" + setDefaultBody, "prod", "environment:\n  prod\n" + setDefaultBody, ""},
		{"missing key", "# header\n\n" + setDefaultBody, "dev", "# header\n\nenvironment: dev\n" + setDefaultBody, ""},
		{"missing key after document start", "---\n" + setDefaultBody, "dev", "---\nenvironment: dev\n" + setDefaultBody, ""},
		{"number-like name quoted", setDefaultBody, "1", "environment: \"1\"\n" + setDefaultBody, ""},
		{"boolean-like name quoted", "environment: dev\n" + setDefaultBody, "true", "environment: \"true\"\n" + setDefaultBody, ""},
		{"crlf", strings.ReplaceAll("environment: dev # c\n"+setDefaultBody, "\n", "\r\n"), "prod",
			strings.ReplaceAll("environment: prod # c\n"+setDefaultBody, "\n", "\r\n"), ""},
		{"crlf missing key", strings.ReplaceAll(setDefaultBody, "\n", "\r\n"), "dev",
			strings.ReplaceAll("environment: dev\n"+setDefaultBody, "\n", "\r\n"), ""},
		{"multibyte before", "project: {name: app, description: \"é\"}  \nenvironment: dev # ü\nenvironments: {dev: {}}\n", "x",
			"project: {name: app, description: \"é\"}  \nenvironment: x # ü\nenvironments: {dev: {}}\n", ""},
		{"flow top level", `{environment: dev, project: {name: app}, environments: {dev: {}}}`, "dev", "", "flow mapping"},
		{"flow top level, missing key", `{project: {name: app}, environments: {dev: {}}}`, "dev", "", "flow mapping"},
		{"top level list", "- a\n", "dev", "", "must be a mapping"},
		{"empty", "", "dev", "", "empty"},
		{"block scalar", "environment: |\n  dev\n" + setDefaultBody, "prod", "", "plain or quoted string"},
		{"tagged", "environment: !!str dev\n" + setDefaultBody, "prod", "", "plain or quoted string"},
		{"mapping value", "environment: {a: b}\n" + setDefaultBody, "prod", "", "plain or quoted string"},
		{"multi-line quoted", "environment: \"de\n  v\"\n" + setDefaultBody, "prod", "", "spans lines"},
		{"invalid name", setDefaultBody, "Prod Env", "", "environment name"},
		{"invalid yaml", "a: [\n", "dev", "", "invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SetDefault([]byte(tt.in), tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("SetDefault = %q, %v; want error containing %q", got, err, tt.err)
				}
				if exitcode.Of(err) != exitcode.Usage {
					t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetDefault: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("SetDefault =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// FuzzSetDefault checks that whatever SetDefault returns decodes to the
// input's document with only environment changed, and differs from the
// input in one line (changed or added).
func FuzzSetDefault(f *testing.F) {
	for _, s := range []string{
		"environment: dev\n" + setDefaultBody,
		"# c\nenvironment: 'dev' # c\n" + setDefaultBody,
		"environment: \"dev\"\r\n" + strings.ReplaceAll(setDefaultBody, "\n", "\r\n"),
		setDefaultBody,
		"---\n" + setDefaultBody,
		"a: &x {b: 1}\nc: *x\n<<: {environment: z}\n",
		"environment:\n    dev   \n",
		"{a: 1}",
	} {
		f.Add(s, "prod")
	}
	f.Fuzz(func(t *testing.T, in, env string) {
		out, err := SetDefault([]byte(in), env)
		if err != nil {
			return
		}
		var before, after map[string]any
		if err := yaml.Unmarshal([]byte(in), &before); err != nil {
			t.Fatalf("SetDefault accepted %q, which does not decode: %v", in, err)
		}
		if err := yaml.Unmarshal(out, &after); err != nil {
			t.Fatalf("SetDefault(%q) = %q, which does not decode: %v", in, out, err)
		}
		if after["environment"] != env {
			t.Fatalf("SetDefault(%q, %q) = %q: environment is %v", in, env, out, after["environment"])
		}
		delete(before, "environment")
		delete(after, "environment")
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("SetDefault(%q) = %q changed more than environment: %v, want %v", in, out, after, before)
		}
		a, b := bytes.Split([]byte(in), []byte("\n")), bytes.Split(out, []byte("\n"))
		switch len(b) - len(a) {
		case 0:
			diff := 0
			for i := range a {
				if !bytes.Equal(a[i], b[i]) {
					diff++
				}
			}
			if diff > 1 {
				t.Fatalf("SetDefault(%q) = %q changed %d lines", in, out, diff)
			}
		case 1:
			i := 0
			for i < len(a) && bytes.Equal(a[i], b[i]) {
				i++
			}
			if !reflect.DeepEqual(a[i:], b[i+1:]) {
				t.Fatalf("SetDefault(%q) = %q changed more than one added line", in, out)
			}
		default:
			t.Fatalf("SetDefault(%q) = %q: %d lines, input has %d", in, out, len(b), len(a))
		}
	})
}
