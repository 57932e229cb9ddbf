package compose

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/exitcode"
)

func unit(t *testing.T, file string) deploy.Unit {
	return deploy.Unit{Kind: config.Compose, Source: "deploy/compose.yml", Rendered: []byte(file), Project: "shop",
		Environment: "dev", Name: deploy.UnitDeploy, Network: "shop-dev", Dir: t.TempDir()}
}

// finalService decodes one service of a plan's final file.
func finalService(t *testing.T, p *deploy.Plan, name string) map[string]any {
	t.Helper()
	var doc struct {
		Services map[string]map[string]any
		Networks map[string]map[string]any
	}
	if err := yaml.Unmarshal(p.Final, &doc); err != nil {
		t.Fatalf("final file: %v\n%s", err, p.Final)
	}
	svc, ok := doc.Services[name]
	if !ok {
		t.Fatalf("no service %s in\n%s", name, p.Final)
	}
	return svc
}

func TestPrepareEscapesDollars(t *testing.T) {
	p, err := Prepare(unit(t, `
x-common: &env
  A: "cost $5"
services:
  web:
    image: localhost/debian:bookworm
    command: ["sh", "-c", "echo $HOME ${X} $$"]
    environment:
      <<: *env
      B: "${X:-d}"
`))
	if err != nil {
		t.Fatal(err)
	}
	svc := finalService(t, p, "web")
	if got, want := svc["command"].([]any)[2], "echo $$HOME $${X} $$$$"; got != want {
		t.Errorf("command = %q, want %q", got, want)
	}
	env := svc["environment"].(map[string]any)
	if env["A"] != "cost $$5" || env["B"] != "$${X:-d}" {
		t.Errorf("environment = %v, want A escaped once through the alias and B escaped", env)
	}
	// compose-go itself (as the front-end) reads the escaped file back as the literal text.
	project, _, err := loadFinal(p)
	if err != nil {
		t.Fatal(err)
	}
	got := project.Services["web"]
	if got.Command[2] != "echo $HOME ${X} $$" || *got.Environment["A"] != "cost $5" || *got.Environment["B"] != "${X:-d}" {
		t.Errorf("compose-go reads command %q, environment A=%q B=%q", got.Command[2], *got.Environment["A"], *got.Environment["B"])
	}
}

func TestPrepareLabelsAndNetworks(t *testing.T) {
	p, err := Prepare(unit(t, `
version: "3.8"
services:
  plain:
    image: localhost/debian:bookworm
    labels: {keep: "1", io.poststack.unit: forged}
  listed:
    image: localhost/debian:bookworm
    labels: ["keep=2"]
    networks: [back]
  mapped:
    image: localhost/debian:bookworm
    networks:
      back:
        aliases: [m]
  host:
    image: localhost/debian:bookworm
    network_mode: host
networks:
  back: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Fingerprint) != 64 {
		t.Fatalf("fingerprint %q", p.Fingerprint)
	}
	project, _, err := loadFinal(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, wantKeep := range map[string]string{"plain": "1", "listed": "2", "mapped": "", "host": ""} {
		l := project.Services[name].Labels
		want := map[string]string{deploy.LabelProject: "shop", deploy.LabelEnvironment: "dev", deploy.LabelUnit: deploy.UnitDeploy,
			deploy.LabelService: name, deploy.LabelConfig: p.Fingerprint}
		if wantKeep != "" {
			want["keep"] = wantKeep
		}
		if len(l) != len(want) {
			t.Errorf("%s: labels %v, want %v", name, l, want)
		}
		for k, v := range want {
			if l[k] != v {
				t.Errorf("%s: label %s = %q, want %q", name, k, l[k], v)
			}
		}
	}
	nets := func(name string) []string {
		var out []string
		for n := range project.Services[name].Networks {
			out = append(out, n)
		}
		return out
	}
	for name, want := range map[string][]string{"plain": {"default", "shop-dev"}, "listed": {"back", "shop-dev"}, "mapped": {"back", "shop-dev"}, "host": nil} {
		got := nets(name)
		if len(got) != len(want) {
			t.Errorf("%s: networks %v, want %v", name, got, want)
		}
		for _, n := range want {
			if _, ok := project.Services[name].Networks[n]; !ok {
				t.Errorf("%s: networks %v, want %v", name, got, want)
			}
		}
	}
	if aliases := project.Services["mapped"].Networks["back"].Aliases; len(aliases) != 1 || aliases[0] != "m" {
		t.Errorf("mapped: aliases on back = %v, want [m]", aliases)
	}
	env := project.Networks["shop-dev"]
	if !bool(env.External) || env.Name != "shop-dev" {
		t.Errorf("environment network = %+v, want external shop-dev", env)
	}
	if strings.Contains(string(p.Final), "version") {
		t.Errorf("final file keeps the obsolete version key:\n%s", p.Final)
	}

	// The fingerprint is of the file: the same input gives the same plan, another a new one.
	again, err := Prepare(p.Unit)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint != p.Fingerprint || string(again.Final) != string(p.Final) {
		t.Error("the same unit gave another plan")
	}
	u := p.Unit
	u.Rendered = []byte(strings.Replace(string(u.Rendered), `keep: "1"`, `keep: "3"`, 1))
	other, err := Prepare(u)
	if err != nil {
		t.Fatal(err)
	}
	if other.Fingerprint == p.Fingerprint {
		t.Error("a changed file kept its fingerprint")
	}
}

func TestPrepareReusesDeclaredNetwork(t *testing.T) {
	p, err := Prepare(unit(t, `
services:
  web:
    image: localhost/debian:bookworm
networks:
  default:
    name: shop-dev
    external: true
`))
	if err != nil {
		t.Fatal(err)
	}
	project, _, err := loadFinal(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(project.Networks) != 1 || len(project.Services["web"].Networks) != 1 {
		t.Errorf("networks %v, service networks %v: want the file's default only", project.Networks, project.Services["web"].Networks)
	}
}

func TestPreparePortsAndContainers(t *testing.T) {
	u := unit(t, `
services:
  web:
    image: localhost/debian:bookworm
    ports: ["127.0.0.1:8000-8001:80-81", "53:53/udp", "9000", "127.0.0.1:7000-7002:70"]
    deploy: {replicas: 2}
  worker:
    image: localhost/debian:bookworm
    scale: 3
    network_mode: none
  named:
    image: localhost/debian:bookworm
    container_name: shop-dev-special
  debug:
    image: localhost/debian:bookworm
    profiles: [debug]
`)
	u.Name = deploy.InitUnit(2)
	p, err := Prepare(u)
	if err != nil {
		t.Fatal(err)
	}
	wantPorts := []deploy.Port{
		{HostIP: "127.0.0.1", HostPort: 8000, ContainerPort: 80, Protocol: "tcp", Service: "web"},
		{HostIP: "127.0.0.1", HostPort: 8001, ContainerPort: 81, Protocol: "tcp", Service: "web"},
		{HostPort: 53, ContainerPort: 53, Protocol: "udp", Service: "web"},
	}
	if len(p.HostPorts) != len(wantPorts) {
		t.Fatalf("host ports %+v, want %+v", p.HostPorts, wantPorts)
	}
	for i, w := range wantPorts {
		if p.HostPorts[i] != w {
			t.Errorf("host port %d = %+v, want %+v", i, p.HostPorts[i], w)
		}
	}
	want := []string{"shop-dev-init-2-web-1", "shop-dev-init-2-web-2", "shop-dev-init-2-worker-1", "shop-dev-init-2-worker-2",
		"shop-dev-init-2-worker-3", "shop-dev-special"}
	if strings.Join(p.Containers, " ") != strings.Join(want, " ") {
		t.Errorf("containers %v, want %v", p.Containers, want)
	}
}

func TestPrepareRejects(t *testing.T) {
	tests := []struct {
		name, file string
		want       []string
	}{
		{"unknown key", "services:\n  web:\n    image: x\n    imagee: y\n", []string{`deploy/compose.yml: service "web": unknown key imagee`}},
		{"undefined network", "services:\n  db:\n    image: x\n    networks: [nope]\n", []string{"deploy/compose.yml: ", `service "db"`, "nope"}},
		{"bad port", "services:\n  web:\n    image: x\n    ports: [\"x:y\"]\n", []string{"deploy/compose.yml: ", "y"}},
		{"not yaml", "services:\n  web:\n    image: [x\n", []string{"deploy/compose.yml:2: not YAML: "}},
		{"tab", "services:\n\tweb: {}\n", []string{"deploy/compose.yml:2: not YAML: "}},
		{"not a mapping", "- a\n- b\n", []string{"deploy/compose.yml:1: not a compose file"}},
		{"two documents", "services: {}\n---\nservices: {}\n", []string{"deploy/compose.yml:2: a second YAML document"}},
		{"empty", "", []string{"deploy/compose.yml: empty compose file"}},
		{"network key taken", "services:\n  web:\n    image: x\nnetworks:\n  shop-dev: {}\n", []string{`network "shop-dev" is declared`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Prepare(unit(t, tt.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if exitcode.Of(err) != exitcode.Usage {
				t.Errorf("exit code %d, want %d: %v", exitcode.Of(err), exitcode.Usage, err)
			}
			msg := err.Error()
			t.Log(msg)
			if strings.Contains(msg, "\n") {
				t.Errorf("message is not one line: %q", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message %q lacks %q", msg, w)
				}
			}
		})
	}
}
