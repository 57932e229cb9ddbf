package envcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
)

// The kinds of document podman kube play takes: workloads run containers, the others
// support them.
const (
	workloadKinds = "Pod, Deployment, DaemonSet, Job"
	allKinds      = workloadKinds + ", ConfigMap, Secret, PersistentVolumeClaim"
)

// podKind reports whether kind is a workload and whether podman kube play knows it.
func podKind(kind string) (workload, known bool) {
	switch kind {
	case "Pod", "Deployment", "DaemonSet", "Job":
		return true, true
	case "ConfigMap", "Secret", "PersistentVolumeClaim":
		return false, true
	}
	return false, false
}

// node is a place in a pod file: the template's node, for positions, and the rendered
// file's node at the same place, for values. Substitution changes scalar values only, so
// both trees have the same shape.
type node struct{ t, r *yaml.Node }

func (n node) ok() bool { return n.t != nil && n.r != nil }

func (n node) key(k string) node {
	if !n.ok() || n.t.Kind != yaml.MappingNode || n.r.Kind != yaml.MappingNode || len(n.t.Content) != len(n.r.Content) {
		return node{}
	}
	for i := 0; i+1 < len(n.r.Content); i += 2 {
		if n.r.Content[i].Value == k {
			return node{deref(n.t.Content[i+1]), deref(n.r.Content[i+1])}
		}
	}
	return node{}
}

func (n node) items() []node {
	if !n.ok() || n.t.Kind != yaml.SequenceNode || n.r.Kind != yaml.SequenceNode || len(n.t.Content) != len(n.r.Content) {
		return nil
	}
	out := make([]node, len(n.r.Content))
	for i := range n.r.Content {
		out[i] = node{deref(n.t.Content[i]), deref(n.r.Content[i])}
	}
	return out
}

func (n node) str() string {
	if !n.ok() || n.r.Kind != yaml.ScalarNode || n.r.Tag == "!!null" {
		return ""
	}
	return n.r.Value
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// checkPod is a light check of a pod file, template and rendering: every document is a
// mapping of a kind podman kube play runs, at least one is a workload, and every container
// of a workload has a name and an image.
func checkPod(name string, template, rendered []byte) []Problem {
	tdocs, err := decodeAll(template)
	if err != nil {
		return []Problem{{Pos: config.Pos{File: name, Line: 1, Col: 1}, Msg: "pod file is not YAML: " + err.Error(), Code: exitcode.Usage}}
	}
	rdocs, err := decodeAll(rendered)
	if err != nil || len(rdocs) != len(tdocs) {
		return []Problem{{Pos: config.Pos{File: name, Line: 1, Col: 1}, Msg: fmt.Sprintf("pod file does not render to the same YAML documents (%v)", err), Code: exitcode.Usage}}
	}
	var ps []Problem
	problem := func(at *yaml.Node, format string, args ...any) {
		ps = append(ps, Problem{Pos: config.Pos{File: name, Line: at.Line, Col: at.Column}, Msg: fmt.Sprintf(format, args...), Code: exitcode.Usage})
	}
	workloads := 0
	for i := range tdocs {
		doc := node{deref(tdocs[i]), deref(rdocs[i])}
		if doc.t.Kind != yaml.MappingNode {
			problem(doc.t, "a pod file document must be a mapping with kind:, got %s", describe(doc.t))
			continue
		}
		kind := doc.key("kind")
		workload, known := podKind(kind.str())
		switch {
		case !kind.ok():
			problem(doc.t, "document has no kind: (want one of %s)", allKinds)
			continue
		case !known:
			problem(kind.t, "kind %q is not one podman kube play runs (want one of %s)", kind.str(), allKinds)
			continue
		case !workload:
			continue
		}
		workloads++
		spec := doc.key("spec")
		if kind.str() != "Pod" {
			spec = spec.key("template").key("spec")
		}
		containers := spec.key("containers")
		if len(containers.items()) == 0 {
			at := doc.t
			if spec.ok() {
				at = spec.t
			}
			problem(at, "%s has no containers", kind.str())
		}
		for _, list := range []string{"initContainers", "containers"} {
			for _, c := range spec.key(list).items() {
				if c.t.Kind != yaml.MappingNode {
					problem(c.t, "a container must be a mapping with name: and image:, got %s", describe(c.t))
					continue
				}
				for _, field := range []string{"name", "image"} {
					if c.key(field).str() == "" {
						problem(c.t, "container has no %s:", field)
					}
				}
			}
		}
	}
	if workloads == 0 && len(ps) == 0 {
		ps = append(ps, Problem{Pos: config.Pos{File: name, Line: 1, Col: 1}, Msg: "pod file has no " + workloadKinds + ": nothing to run", Code: exitcode.Usage})
	}
	return ps
}

func decodeAll(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		doc := new(yaml.Node)
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(doc.Content) > 0 {
			docs = append(docs, doc.Content[0])
		}
	}
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}
