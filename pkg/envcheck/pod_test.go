package envcheck

import (
	"strings"
	"testing"
)

// TestCheckPod: positions come from the template, values from the rendering.
func TestCheckPod(t *testing.T) {
	tests := []struct {
		name, template, rendered string
		want                     []string
	}{
		{"pod", "kind: Pod\nspec:\n  containers: [{name: a, image: b}]\n", "", nil},
		{"deployment and a config map", "kind: ConfigMap\n---\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - {name: a, image: b}\n", "", nil},
		{"rendered empty", "kind: Pod\nspec:\n  containers:\n    - name: ${N}\n      image: b\n", "kind: Pod\nspec:\n  containers:\n    - name:\n      image: b\n",
			[]string{"p.yaml:4:7: container has no name:"}},
		{"no workload", "kind: ConfigMap\n", "", []string{"p.yaml:1:1: pod file has no Pod, Deployment, DaemonSet, Job: nothing to run"}},
		{"no containers", "kind: Pod\nspec: {}\n", "", []string{"p.yaml:2:7: Pod has no containers"}},
		{"scalar document", "just text\n", "", []string{`p.yaml:1:1: a pod file document must be a mapping with kind:, got "just text"`}},
		{"init containers", "kind: Pod\nspec:\n  initContainers: [x]\n  containers: [{name: a, image: b}]\n", "",
			[]string{`p.yaml:3:20: a container must be a mapping with name: and image:, got "x"`}},
	}
	for _, tt := range tests {
		rendered := tt.rendered
		if rendered == "" {
			rendered = tt.template
		}
		var got []string
		for _, p := range checkPod("p.yaml", []byte(tt.template), []byte(rendered)) {
			got = append(got, p.Error())
		}
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s: got\n%s\nwant\n%s", tt.name, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}
