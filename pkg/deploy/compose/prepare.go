// Package compose runs an environment's compose files (init entries and the deployment) with a
// compose front-end: docker compose v2, docker-compose, podman compose or podman-compose.
//
// poststack renders a compose file completely itself, so Prepare escapes every remaining $ as
// $$: the front-end's own interpolation then only turns $$ back into $ and never changes the
// result. It validates the file with compose-go's loader, adds poststack's labels to every
// service and joins every service to the environment's network.
package compose

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/exitcode"
)

// Labels docker compose v2 puts on the containers it creates.
const (
	labelComposeProject = "com.docker.compose.project"
	labelComposeService = "com.docker.compose.service"
)

// Prepare checks a compose unit without an engine or a front-end and returns its plan: the
// file is YAML, compose-go's loader accepts it (working directory u.Dir, project name
// u.ComposeProject(), no .env and no environment of its own), every remaining $ is escaped,
// every service carries u.Labels(), LabelService and LabelConfig and joins u.Network (unless it
// has a network_mode; no network is added when u.Network is empty). Container names follow
// docker compose v2: <project>-<service>-<n>, or container_name.
func Prepare(u deploy.Unit) (*deploy.Plan, error) {
	if u.Kind != "" && u.Kind != config.Compose {
		return nil, exitcode.Usagef("%s: a %s file is not a compose file", u.Source, u.Kind)
	}
	root, err := parseYAML(u.Source, u.Rendered)
	if err != nil {
		return nil, err
	}
	// compose-go warns about `version` on the process's stderr, and it is ignored anyway.
	deleteKey(root, "version")
	escapeValues(root)
	escaped, err := encode(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Source, err)
	}
	if _, err := load(u, escaped); err != nil {
		return nil, err
	}

	services := mappingValue(root, "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return nil, exitcode.Usagef("%s: no services", u.Source)
	}
	if u.Network != "" {
		if err := joinNetwork(u, root, services); err != nil {
			return nil, err
		}
	}
	names := mappingKeys(services)
	for i, svc := range names {
		labels := u.Labels()
		labels[deploy.LabelService] = svc
		if err := setLabels(services.Content[2*i+1], labels); err != nil {
			return nil, exitcode.Usagef("%s: service %q: %v", u.Source, svc, err)
		}
	}
	unlabelled, err := encode(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Source, err)
	}
	sum := sha256.Sum256(unlabelled)
	fingerprint := hex.EncodeToString(sum[:])
	for i := range names {
		if err := setLabels(services.Content[2*i+1], map[string]string{deploy.LabelConfig: fingerprint}); err != nil {
			return nil, exitcode.Usagef("%s: service %q: %v", u.Source, names[i], err)
		}
	}
	final, err := encode(root)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Source, err)
	}
	project, err := load(u, final)
	if err != nil {
		return nil, err
	}
	return &deploy.Plan{
		Unit:        u,
		Final:       final,
		Fingerprint: fingerprint,
		HostPorts:   hostPorts(project, names),
		Containers:  containerNames(project, names, "-"),
	}, nil
}

// parseYAML decodes the one YAML document of a compose file and returns its top-level mapping.
func parseYAML(source string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, exitcode.Usagef("%s: empty compose file", source)
		}
		return nil, exitcode.Usagef("%s", yamlError(source, err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, exitcode.Usagef("%s", yamlError(source, err))
		}
		return nil, exitcode.Usagef("%s:%d: a second YAML document: a compose file is one document", source, extra.Line)
	}
	if len(doc.Content) == 0 {
		return nil, exitcode.Usagef("%s: empty compose file", source)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, exitcode.Usagef("%s:%d: not a compose file: the top level must be a mapping", source, root.Line)
	}
	return root, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError renders yaml.v3's "yaml: line N: msg" as "SOURCE:N: msg".
func yamlError(source string, err error) string {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s:%s: not YAML: %s", source, m[1], m[2])
	}
	return fmt.Sprintf("%s: not YAML: %s", source, strings.TrimPrefix(msg, "yaml: "))
}

// escapeValues doubles every $ of every scalar value below n. Mapping keys are left alone:
// compose-go interpolates values only (interpolation.recursiveInterpolate), so an escaped key
// would keep its $$. Aliases are not followed: their anchor is escaped where it is defined.
func escapeValues(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			escapeValues(c)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			escapeValues(n.Content[i])
		}
	case yaml.ScalarNode:
		n.Value = strings.ReplaceAll(n.Value, "$", "$$")
	}
}

func encode(root *yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("encode compose file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode compose file: %w", err)
	}
	return b.Bytes(), nil
}

// load runs compose-go's loader on content as the front-end will: working directory u.Dir,
// project name u.ComposeProject(), and an empty environment (every $ is escaped, so none is
// looked up).
func load(u deploy.Unit, content []byte) (*types.Project, error) {
	details := types.ConfigDetails{
		WorkingDir:  u.Dir,
		ConfigFiles: []types.ConfigFile{{Filename: "-", Content: content}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName(u.ComposeProject(), true)
	})
	if err != nil {
		return nil, exitcode.Usagef("%s: %s", u.Source, loaderMessage(err))
	}
	return p, nil
}

var servicePath = regexp.MustCompile(`^services\.([^.\s]+)(\.(\S+))?\s+(.*)$`)

// loaderMessage turns compose-go's "validating -: services.web.ports must be a list" into
// `service "web": ports must be a list` (and its "services.web.imagee false schema" into
// `service "web": unknown key imagee`), one line.
func loaderMessage(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	msg = strings.TrimPrefix(msg, "validating -: ")
	msg = strings.TrimPrefix(msg, "failed to parse -: ")
	if m := servicePath.FindStringSubmatch(msg); m != nil {
		if m[3] != "" && m[4] == "false schema" {
			return fmt.Sprintf("service %q: unknown key %s", m[1], m[3])
		}
		if m[3] != "" {
			return fmt.Sprintf("service %q: %s %s", m[1], m[3], m[4])
		}
		return fmt.Sprintf("service %q: %s", m[1], m[4])
	}
	return msg
}

// mappingValue returns the value of key in mapping n, or nil.
func mappingValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func deleteKey(n *yaml.Node, key string) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content = slices.Delete(n.Content, i, i+2)
			return
		}
	}
}

func mappingKeys(n *yaml.Node) []string {
	var keys []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		keys = append(keys, n.Content[i].Value)
	}
	return keys
}

func scalar(v string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
}

func setMapping(n *yaml.Node, key string, value *yaml.Node) {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = value
			return
		}
	}
	n.Content = append(n.Content, scalar(key), value)
}

// setLabels adds labels to a service, replacing any of the same name, in the map or the list
// form the file uses.
func setLabels(svc *yaml.Node, labels map[string]string) error {
	if svc.Kind != yaml.MappingNode {
		return errors.New("not a mapping")
	}
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	l := mappingValue(svc, "labels")
	if l == nil {
		l = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setMapping(svc, "labels", l)
	}
	switch l.Kind {
	case yaml.MappingNode:
		for _, k := range keys {
			setMapping(l, k, scalar(labels[k]))
		}
	case yaml.SequenceNode:
		l.Content = slices.DeleteFunc(l.Content, func(item *yaml.Node) bool {
			k, _, _ := strings.Cut(item.Value, "=")
			_, ours := labels[k]
			return ours
		})
		for _, k := range keys {
			l.Content = append(l.Content, scalar(k+"="+labels[k]))
		}
		l.Style = 0
	default:
		return errors.New("labels is neither a mapping nor a list")
	}
	return nil
}

// joinNetwork declares u.Network as an external network of the file (reusing a declaration
// the file already has) and adds it to every service that has no network_mode, beside the
// networks the service names (the project's default network when it names none).
func joinNetwork(u deploy.Unit, root, services *yaml.Node) error {
	nets := mappingValue(root, "networks")
	if nets == nil {
		nets = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setMapping(root, "networks", nets)
	}
	if nets.Kind != yaml.MappingNode {
		return exitcode.Usagef("%s: networks is not a mapping", u.Source)
	}
	key := ""
	for i := 0; i+1 < len(nets.Content); i += 2 {
		k, def := nets.Content[i].Value, nets.Content[i+1]
		ext := mappingValue(def, "external")
		if ext == nil || ext.Value != "true" {
			continue
		}
		name := k
		if n := mappingValue(def, "name"); n != nil {
			name = strings.ReplaceAll(n.Value, "$$", "$")
		}
		if name == u.Network {
			key = k
			break
		}
	}
	if key == "" {
		if mappingValue(nets, u.Network) != nil {
			return exitcode.Usagef("%s: network %q is declared, but not as the environment's external network: rename it", u.Source, u.Network)
		}
		key = u.Network
		def := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		setMapping(def, "name", scalar(u.Network))
		setMapping(def, "external", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
		setMapping(nets, key, def)
	}
	for i := 0; i+1 < len(services.Content); i += 2 {
		svc := services.Content[i+1]
		if svc.Kind != yaml.MappingNode || mappingValue(svc, "network_mode") != nil {
			continue
		}
		sn := mappingValue(svc, "networks")
		if sn == nil {
			sn = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			if key != "default" {
				sn.Content = append(sn.Content, scalar("default"))
			}
			setMapping(svc, "networks", sn)
		}
		switch sn.Kind {
		case yaml.SequenceNode:
			if !slices.ContainsFunc(sn.Content, func(n *yaml.Node) bool { return n.Value == key }) {
				sn.Content = append(sn.Content, scalar(key))
			}
			sn.Style = 0
		case yaml.MappingNode:
			if mappingValue(sn, key) == nil {
				setMapping(sn, key, &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: yaml.FlowStyle})
			}
		default:
			return exitcode.Usagef("%s: service %q: networks is neither a list nor a mapping", u.Source, services.Content[i].Value)
		}
	}
	return nil
}

// hostPorts lists the host ports the services publish, in file order. A port without a
// published host port, or with a published range for one container port, is chosen by the
// engine and left out; compose-go has already expanded ranges of equal length.
func hostPorts(p *types.Project, order []string) []deploy.Port {
	var out []deploy.Port
	for _, name := range order {
		svc, ok := p.Services[name]
		if !ok {
			continue
		}
		for _, pc := range svc.Ports {
			hp, err := strconv.Atoi(pc.Published)
			if err != nil || hp <= 0 {
				continue
			}
			proto := pc.Protocol
			if proto == "" {
				proto = "tcp"
			}
			out = append(out, deploy.Port{HostIP: pc.HostIP, HostPort: hp, ContainerPort: int(pc.Target), Protocol: proto, Service: name})
		}
	}
	return out
}

// containerNames lists the containers the enabled services create, in file order:
// container_name, else <project><sep><service><sep><n> for each replica.
func containerNames(p *types.Project, order []string, sep string) []string {
	var out []string
	for _, name := range order {
		svc, ok := p.Services[name]
		if !ok {
			continue // disabled by a profile
		}
		if svc.ContainerName != "" {
			out = append(out, svc.ContainerName)
			continue
		}
		for n := 1; n <= svc.GetScale(); n++ {
			out = append(out, p.Name+sep+name+sep+strconv.Itoa(n))
		}
	}
	return out
}
