// Package kube runs an environment's pod files with `podman kube play`: it implements
// deploy.Deployer for podman 4.3 and later.
//
// What podman 4.3.1 does with a pod file, as measured on the project's machines, and what this
// package does about it:
//   - metadata.labels of a pod go to the pod and to every one of its containers (not to the
//     infra container); a container cannot have labels of its own (annotations such as
//     io.podman.annotations.label/… stay annotations). So LabelService is set only on pods with
//     one container; Containers derives the service of the others from the container name,
//     which podman makes <pod>-<container>.
//   - every containerPort is published on the host: on hostPort when given, else on the same
//     number as the containerPort; hostIP and protocol are honoured.
//   - a livenessProbe becomes a podman healthcheck (periodSeconds the interval, 10 s by
//     default; failureThreshold the retries); readinessProbe is ignored. The healthcheck runs
//     from a systemd timer: without systemd the container stays "starting" until someone runs
//     `podman healthcheck run`, which WaitReady does at the probe's period. Before 4.4 an exec
//     probe's command is joined with spaces and run by /bin/sh -c (["sh","-c","test -f x"]
//     runs `sh -c test`): on those versions Plan rewrites a command whose arguments need
//     quoting into one shell-quoted string, which /bin/sh then runs as written.
//   - the only DNS name of a pod on a network is the pod's name; its containers' names do not
//     resolve.
//   - init containers run during `kube play`, which fails if one exits non-zero; by default
//     they are removed after success, with their logs. Under restartPolicy Always they are
//     restarted in a loop and kube play fails, so Plan refuses that combination.
//   - a PersistentVolumeClaim becomes a named volume, and playing it again fails while the
//     volume exists; a Secret becomes a podman secret that outlives the pod and cannot be used
//     from env (4.3 expects JSON), so Plan refuses it.
//
// Pod names are made unique per environment: a pod whose metadata.name does not start with
// <project>-<env>- is renamed <project>-<env>-<name>, which is then also its DNS name.
package kube

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/deploy"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/exitcode"
)

// pollInterval is how often the waits look at container state.
const pollInterval = 250 * time.Millisecond

// startProbeInterval is how often WaitReady runs a probe while a container has not yet been
// healthy.
const startProbeInterval = 300 * time.Millisecond

// defaultProbePeriod is a livenessProbe's interval when periodSeconds is not set, as podman
// (and Kubernetes) have it.
const defaultProbePeriod = 10 * time.Second

// Deployer runs pod files on podman. It holds no mutable state and is safe for concurrent use.
type Deployer struct {
	eng *engine.Engine
}

var _ deploy.Deployer = (*Deployer)(nil)

// New returns a Deployer on eng. Any engine is accepted so that status and down work
// everywhere (docker has no pods, so there is nothing of ours there); Plan refuses a pod file
// on an engine other than podman.
func New(eng *engine.Engine) (*Deployer, error) {
	if eng == nil {
		return nil, errors.New("kube: no engine")
	}
	return &Deployer{eng: eng}, nil
}

// validName is what podman accepts as a pod, container or volume name.
var validName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Plan checks u's pod file and renders the file that Apply will play: every pod gets
// Unit.Labels() and LabelConfig (and LabelService when it has one container), the
// <project>-<env>- name prefix, restartPolicy Never for an init unit, and exec probes podman
// 4.3 can run. Containers lists the pods' regular containers; init containers are gone once
// kube play returns.
func (d *Deployer) Plan(ctx context.Context, u deploy.Unit) (*deploy.Plan, error) {
	if d.eng.Name() != engine.Podman {
		return nil, exitcode.Usagef("pod file %s needs podman (kube play); %s runs compose files: set POSTSTACK_CONTAINER_RUNTIME=podman or use a compose: deployment", u.Source, d.eng.Name())
	}
	f, err := parse(u.Source, u.Rendered)
	if err != nil {
		return nil, err
	}
	// Only a file with an exec probe asks podman its version (one CLI run saved per plan).
	quote := false
	if f.hasExecProbe() {
		if quote, err = d.probesJoined(ctx); err != nil {
			return nil, fmt.Errorf("%s: %w", u.Source, err)
		}
	}
	prefix := u.Project + "-" + u.Environment + "-"
	seen := map[string]int{}
	for _, p := range f.pods {
		if !strings.HasPrefix(p.name, prefix) {
			p.name = prefix + p.name
			setScalar(p.meta, "name", p.name)
		}
		if first, ok := seen[p.name]; ok {
			return nil, exitcode.Usagef("%s:%d: pod %s is defined twice (first at line %d)", u.Source, p.line, p.name, first)
		}
		seen[p.name] = p.line
		labels := u.Labels()
		if len(p.containers) == 1 && !p.hasInit {
			labels[deploy.LabelService] = p.containers[0].name
		}
		lm, err := mapping(p.meta, "labels")
		if err != nil {
			return nil, exitcode.Usagef("%s:%d: metadata.labels: %v", u.Source, p.line, err)
		}
		for _, k := range slices.Sorted(maps.Keys(labels)) {
			setScalar(lm, k, labels[k])
		}
		if u.Init {
			setScalar(p.spec, "restartPolicy", "Never")
		} else if p.hasInit && (p.restartPolicy == "" || p.restartPolicy == "Always") {
			return nil, exitcode.Usagef("%s:%d: pod %s has initContainers under restartPolicy Always, which podman 4.3 restarts in a loop: set restartPolicy: OnFailure or Never, or make it an init: entry", u.Source, p.line, p.name)
		}
		if quote {
			for _, c := range p.containers {
				quoteProbe(c.node)
			}
		}
	}
	unlabelled, err := f.encode()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Source, err)
	}
	sum := sha256.Sum256(unlabelled)
	fp := hex.EncodeToString(sum[:])
	plan := &deploy.Plan{Unit: u, Fingerprint: fp}
	for _, p := range f.pods {
		lm, _ := mapping(p.meta, "labels")
		setScalar(lm, deploy.LabelConfig, fp)
		for _, c := range p.containers {
			plan.Containers = append(plan.Containers, p.name+"-"+c.name)
			plan.HostPorts = append(plan.HostPorts, c.ports...)
		}
	}
	if plan.Final, err = f.encode(); err != nil {
		return nil, fmt.Errorf("%s: %w", u.Source, err)
	}
	return plan, nil
}

// probesJoined reports whether this podman joins an exec probe's arguments into one shell
// line (before 4.4). An unparsable version is taken as a newer one: the rewrite would break
// those.
func (d *Deployer) probesJoined(ctx context.Context) (bool, error) {
	out, err := d.eng.Command(ctx, nil, "version", "--format", "{{.Client.Version}}")
	if err != nil {
		return false, err
	}
	major, rest, _ := strings.Cut(strings.TrimSpace(string(out)), ".")
	minor, _, _ := strings.Cut(rest, ".")
	ma, err1 := strconv.Atoi(major)
	mi, err2 := strconv.Atoi(minor)
	if err1 != nil || err2 != nil {
		return false, nil
	}
	return ma < 4 || ma == 4 && mi < 4, nil
}

// file is a parsed pod file: its documents, and views of the pods in it.
type file struct {
	docs []*yaml.Node // document nodes, in order
	pods []*pod
	// volumes are the PersistentVolumeClaim documents by volume name, played only while the
	// volume is missing; shared are the ConfigMaps, played with every pod.
	volumes map[*yaml.Node]string
	shared  []*yaml.Node
}

type pod struct {
	doc           *yaml.Node
	meta, spec    *yaml.Node
	name          string
	line          int
	restartPolicy string
	hasInit       bool
	containers    []*container // regular containers, in file order
}

type container struct {
	node        *yaml.Node
	name        string
	ports       []deploy.Port
	probePeriod time.Duration // 0: no livenessProbe
}

// podView, containerView and portView are the fields Plan reads; decoding into them gives
// yaml.v3's type errors with their lines.
type podView struct {
	Metadata struct {
		Name string
	}
	Spec struct {
		RestartPolicy  string          `yaml:"restartPolicy"`
		InitContainers []containerView `yaml:"initContainers"`
		Containers     []containerView
	}
}

type containerView struct {
	Name          string
	Ports         []portView
	LivenessProbe *struct {
		PeriodSeconds int `yaml:"periodSeconds"`
	} `yaml:"livenessProbe"`
}

type portView struct {
	ContainerPort int    `yaml:"containerPort"`
	HostPort      int    `yaml:"hostPort"`
	HostIP        string `yaml:"hostIP"`
	Protocol      string
}

// parse reads a multi-document pod file. Every error is a usage error naming source:line.
func parse(source string, data []byte) (*file, error) {
	f := &file{volumes: map[*yaml.Node]string{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(source, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Tag == "!!null" {
			continue
		}
		root := doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return nil, exitcode.Usagef("%s:%d: a document must be a mapping with apiVersion and kind", source, root.Line)
		}
		kind := ""
		if k := get(root, "kind"); k != nil {
			kind = k.Value
		}
		switch kind {
		case "Pod":
			p, err := parsePod(source, doc, root)
			if err != nil {
				return nil, err
			}
			f.pods = append(f.pods, p)
		case "ConfigMap":
			f.shared = append(f.shared, doc)
		case "PersistentVolumeClaim":
			var v struct{ Metadata struct{ Name string } }
			if err := root.Decode(&v); err != nil {
				return nil, yamlError(source, err)
			}
			if !validName.MatchString(v.Metadata.Name) {
				return nil, exitcode.Usagef("%s:%d: PersistentVolumeClaim needs a metadata.name podman accepts as a volume name, not %q", source, root.Line, v.Metadata.Name)
			}
			f.volumes[doc] = v.Metadata.Name
		case "Secret":
			return nil, exitcode.Usagef("%s:%d: kind Secret is not supported: podman 4.3 keeps it as a podman secret after the pod is gone and cannot pass it to env; put the value in the pod through a variable", source, root.Line)
		case "":
			return nil, exitcode.Usagef("%s:%d: document has no kind", source, root.Line)
		default:
			return nil, exitcode.Usagef("%s:%d: kind %s is not supported in a pod file (want Pod, ConfigMap or PersistentVolumeClaim)", source, root.Line, kind)
		}
		f.docs = append(f.docs, doc)
	}
	if len(f.pods) == 0 {
		return nil, exitcode.Usagef("%s: no Pod in the file", source)
	}
	return f, nil
}

func parsePod(source string, doc, root *yaml.Node) (*pod, error) {
	var v podView
	if err := root.Decode(&v); err != nil {
		return nil, yamlError(source, err)
	}
	p := &pod{doc: doc, line: root.Line, name: v.Metadata.Name, restartPolicy: v.Spec.RestartPolicy, hasInit: len(v.Spec.InitContainers) > 0}
	var err error
	if p.meta, err = mapping(root, "metadata"); err != nil {
		return nil, exitcode.Usagef("%s:%d: metadata: %v", source, root.Line, err)
	}
	if !validName.MatchString(p.name) {
		return nil, exitcode.Usagef("%s:%d: pod needs a metadata.name podman accepts (letters, digits, _ . -), not %q", source, root.Line, p.name)
	}
	p.spec = get(root, "spec")
	cs := get(p.spec, "containers")
	if p.spec == nil || cs == nil || cs.Kind != yaml.SequenceNode || len(cs.Content) == 0 {
		return nil, exitcode.Usagef("%s:%d: pod %s has no spec.containers", source, root.Line, p.name)
	}
	switch p.restartPolicy {
	case "", "Always", "OnFailure", "Never":
	default:
		return nil, exitcode.Usagef("%s:%d: pod %s: unknown restartPolicy %q (want Always, OnFailure or Never)", source, get(p.spec, "restartPolicy").Line, p.name, p.restartPolicy)
	}
	names := map[string]bool{}
	for _, ic := range v.Spec.InitContainers {
		names[ic.Name] = true
	}
	for i, cv := range v.Spec.Containers {
		node := cs.Content[i]
		if !validName.MatchString(cv.Name) {
			return nil, exitcode.Usagef("%s:%d: container needs a name podman accepts (letters, digits, _ . -), not %q", source, node.Line, cv.Name)
		}
		if names[cv.Name] {
			return nil, exitcode.Usagef("%s:%d: pod %s has two containers named %s", source, node.Line, p.name, cv.Name)
		}
		names[cv.Name] = true
		c := &container{node: node, name: cv.Name}
		if cv.LivenessProbe != nil {
			c.probePeriod = defaultProbePeriod
			if cv.LivenessProbe.PeriodSeconds > 0 {
				c.probePeriod = time.Duration(cv.LivenessProbe.PeriodSeconds) * time.Second
			}
		}
		ports := get(node, "ports")
		for j, pv := range cv.Ports {
			line := ports.Content[j].Line
			proto := strings.ToLower(pv.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			if proto != "tcp" && proto != "udp" {
				return nil, exitcode.Usagef("%s:%d: container %s: protocol %q (want TCP or UDP)", source, line, cv.Name, pv.Protocol)
			}
			if pv.ContainerPort < 1 || pv.ContainerPort > 65535 || pv.HostPort < 0 || pv.HostPort > 65535 {
				return nil, exitcode.Usagef("%s:%d: container %s: containerPort must be 1-65535 and hostPort 0-65535", source, line, cv.Name)
			}
			host := pv.HostPort
			if host == 0 {
				host = pv.ContainerPort // podman 4.3 publishes an unmapped port on its own number
			}
			c.ports = append(c.ports, deploy.Port{HostIP: pv.HostIP, HostPort: host, ContainerPort: pv.ContainerPort, Protocol: proto, Service: cv.Name})
		}
		p.containers = append(p.containers, c)
	}
	return p, nil
}

// encode renders the documents as one multi-document stream.
func (f *file) encode() ([]byte, error) {
	return encodeDocs(f.docs)
}

func encodeDocs(docs []*yaml.Node) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("encode pod file: %w", err)
		}
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode pod file: %w", err)
	}
	return b.Bytes(), nil
}

// hasExecProbe reports whether a container of the file has a livenessProbe with an exec command.
func (f *file) hasExecProbe() bool {
	for _, p := range f.pods {
		for _, c := range p.containers {
			if get(get(get(c.node, "livenessProbe"), "exec"), "command") != nil {
				return true
			}
		}
	}
	return false
}

// quoteProbe rewrites a livenessProbe exec command whose arguments the shell would split or
// interpret into one string of quoted arguments: podman before 4.4 runs
// `/bin/sh -c "<args joined by spaces> || exit 1"`.
func quoteProbe(c *yaml.Node) {
	cmd := get(get(get(c, "livenessProbe"), "exec"), "command")
	if cmd == nil || cmd.Kind != yaml.SequenceNode || len(cmd.Content) < 2 {
		return
	}
	needed := false
	for _, a := range cmd.Content {
		if a.Kind != yaml.ScalarNode {
			return
		}
		needed = needed || !shellSafe.MatchString(a.Value)
	}
	if !needed {
		return
	}
	words := make([]string, len(cmd.Content))
	for i, a := range cmd.Content {
		words[i] = shellQuote(a.Value)
	}
	cmd.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: strings.Join(words, " ")}}
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// mapping returns the mapping under key in m, adding an empty one when the key is missing or
// null.
func mapping(m *yaml.Node, key string) (*yaml.Node, error) {
	v := get(m, key)
	switch {
	case v == nil:
		v = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		m.Content = append(m.Content, str(key), v)
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		*v = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: v.Line}
	case v.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("line %d: not a mapping", v.Line)
	}
	return v, nil
}

// setScalar sets key in mapping m to the string value.
func setScalar(m *yaml.Node, key, value string) {
	if v := get(m, key); v != nil {
		*v = *str(value)
		return
	}
	m.Content = append(m.Content, str(key), str(value))
}

func str(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns yaml.v3's errors into a usage error "SOURCE:LINE: msg". yaml.v3 counts lines
// from 0 in its parser's messages ("did not find expected …"), from 1 elsewhere.
func yamlError(source string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if l, rest, ok := strings.Cut(strings.TrimPrefix(msg, "line "), ": "); ok {
			return exitcode.Usagef("%s:%s: %s", source, l, rest)
		}
		return exitcode.Usagef("%s: %s", source, msg)
	}
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return exitcode.Usagef("%s:1: %s", source, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	line, _ := strconv.Atoi(m[1])
	if strings.HasPrefix(m[2], "did not find expected ") || slices.Contains(parserFound, m[2]) {
		line++
	}
	return exitcode.Usagef("%s:%d: %s", source, line, m[2])
}

// parserFound are the parser's messages that do not start "did not find expected".
var parserFound = []string{"found undefined tag handle", "found duplicate %YAML directive",
	"found incompatible YAML document", "found duplicate %TAG directive"}
