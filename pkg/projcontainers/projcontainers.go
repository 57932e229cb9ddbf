// Package projcontainers runs a project's own images — those ps-build builds from
// containers/<name>/ — as standalone containers, and reports, stops and removes them.
//
// A project container is named <project>-<name> (POSTSTACK_<NAME>_CONTAINER_NAME overrides the
// whole name) and labelled io.poststack.project=<project> and io.poststack.container=<name>. Every
// operation acts only on containers carrying both labels: a container of someone else's that has
// the name is a usage error (exit 2), raised before anything is changed, and is left alone.
//
// containers/postgres/ is not a project container: it replaces the image of the environment's
// database, which `ps-env up` runs.
package projcontainers

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/poststack/poststack/pkg/build"
	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/engine"
	"github.com/poststack/poststack/pkg/environ"
	"github.com/poststack/poststack/pkg/exitcode"
)

// Labels put on every project container. LabelConfig holds a hash of the settings it was
// created with, so that start knows when to recreate it.
const (
	LabelProject   = "io.poststack.project"
	LabelContainer = "io.poststack.container"
	LabelConfig    = "io.poststack.config"
)

// PostgresName is the containers/ directory that is not a project container: it overrides the
// environment database's image.
const PostgresName = "postgres"

// Project says where a project's container definitions are and how its containers run.
type Project struct {
	// Name is the project: the image namespace (<Name>/<name>:latest, as ps-build tags), the
	// value of LabelProject and the default container name prefix (<Name>-).
	Name string
	// Root is the absolute project root; relative paths resolve against it.
	Root string
	// Containers is the directory holding containers/<name>/ (absolute, or relative to Root).
	Containers string
	// Network is the network containers join: "", "bridge", "host" or "none" are the engine's
	// own modes; any other name must be an existing network.
	Network string
	// Restart is the restart policy: "", "no", "always", "unless-stopped" or "on-failure".
	Restart string
	// Environ is the process environment (NAME=value), where the POSTSTACK_<NAME>_* overrides
	// come from; nil has none. Never the project's .env: a checkout may be hostile.
	Environ []string
}

// Definition is one project container.
type Definition struct {
	Name      string `json:"name"`      // the containers/ directory's name
	Image     string `json:"image"`     // the tag ps-build builds: <project>/<name>:latest
	Source    string `json:"source"`    // the Dockerfile, relative to the project root
	Container string `json:"container"` // the container's name
}

// Port is a published port.
type Port struct {
	HostIP        string `json:"host_ip"`
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Protocol      string `json:"protocol"`
}

func (p Port) String() string {
	host := p.HostIP
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if host != "" {
		host += ":"
	}
	return fmt.Sprintf("%s%d->%d/%s", host, p.HostPort, p.ContainerPort, p.Protocol)
}

func ports(ps []engine.PortMapping) []Port {
	out := []Port{}
	for _, p := range ps {
		if p.HostPort == 0 {
			continue
		}
		out = append(out, Port{HostIP: p.HostIP, HostPort: p.HostPort, ContainerPort: p.ContainerPort, Protocol: p.Protocol})
	}
	return out
}

// EnvKey is the <NAME> of a container's overrides: the name upper-cased, every character other
// than a letter or digit as '_' ("my-api" is MY_API).
func EnvKey(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// Override variable names for the container name: POSTSTACK_<NAME>_CONTAINER_NAME,
// POSTSTACK_<NAME>_PORT and the POSTSTACK_<NAME>_ENV_ prefix.
func nameVar(name string) string   { return "POSTSTACK_" + EnvKey(name) + "_CONTAINER_NAME" }
func portVar(name string) string   { return "POSTSTACK_" + EnvKey(name) + "_PORT" }
func envPrefix(name string) string { return "POSTSTACK_" + EnvKey(name) + "_ENV_" }

// containerNameRE is what both engines accept as a container name.
var containerNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// Discover returns the project containers of p, sorted by name: every containers/<name>/ with
// a Dockerfile or Containerfile but postgres/. Bad definitions are usage errors (see
// build.Discover).
func Discover(p Project) ([]Definition, error) {
	all, err := build.Discover(build.Project{Name: p.Name, Root: p.Root, Containers: p.Containers})
	if err != nil {
		return nil, err
	}
	getenv := environ.Getenv(p.Environ)
	var out []Definition
	for _, im := range all {
		if im.Builtin || im.Name == PostgresName {
			continue
		}
		c := p.Name + "-" + im.Name
		if v := getenv(nameVar(im.Name)); v != "" {
			if !containerNameRE.MatchString(v) {
				return nil, exitcode.Usagef("%s=%q: a container name is letters, digits, '_', '.' and '-', starting with a letter or digit", nameVar(im.Name), v)
			}
			c = v
		}
		out = append(out, Definition{Name: im.Name, Image: im.Ref, Source: im.Source, Container: c})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// checkProject refuses a project name that cannot name images and labels.
func checkProject(name string) error {
	if !config.ValidName(name) {
		return exitcode.Usagef("project name %q cannot name containers: use lower-case letters, digits, '.', '_' and '-'", name)
	}
	return nil
}

// Status is a project container as the engine reports it.
type Status struct {
	Name      string `json:"name"` // the containers/ directory's name
	Container string `json:"container"`
	Image     string `json:"image"`
	State     string `json:"state"`            // created, running, paused, exited…
	Health    string `json:"health,omitempty"` // "", starting, healthy, unhealthy
	ExitCode  int    `json:"exit_code"`        // of the last run, once it exited
	Ports     []Port `json:"ports"`
	// StartedAt is zero for a container that never started.
	StartedAt time.Time `json:"started_at"`
	Running   bool      `json:"running"`
}

func statusOf(c engine.Container) Status {
	return Status{
		Name: c.Labels[LabelContainer], Container: c.Name, Image: c.Image, State: c.Status, Health: c.Health,
		ExitCode: c.ExitCode, Ports: ports(c.Ports), StartedAt: c.StartedAt, Running: c.Running,
	}
}

// ours lists the project's containers: those with its project label and a container label.
func ours(ctx context.Context, eng *engine.Engine, project string) ([]engine.Container, error) {
	cs, err := eng.ListContainers(ctx, map[string]string{LabelProject: project})
	if err != nil {
		return nil, err
	}
	var out []engine.Container
	for _, c := range cs {
		if c.Labels[LabelContainer] != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

// List returns the project's containers in every state, sorted by container name; containers
// without both labels are not listed.
func List(ctx context.Context, eng *engine.Engine, project string) ([]Status, error) {
	if err := checkProject(project); err != nil {
		return nil, err
	}
	cs, err := ours(ctx, eng, project)
	if err != nil {
		return nil, err
	}
	out := []Status{}
	for _, c := range cs {
		out = append(out, statusOf(c))
	}
	return out, nil
}

// isOurs tells whether c carries the labels of project's container name.
func isOurs(c *engine.Container, project, name string) bool {
	return c.Labels[LabelProject] == project && c.Labels[LabelContainer] == name
}

// strangerError is a container that has a name of ours without our labels.
func strangerError(container, name string) error {
	return exitcode.Usagef("container %s exists but is not the project container %s (no poststack labels for it): left alone; remove or rename it, or set %s",
		container, name, nameVar(name))
}

// resolve finds the project's containers that names designate: a containers/ name or a
// container name. A name that matches none of ours is a usage error; when a container of
// that name (or of the name derived from it) exists without our labels the error says so.
// Every name is resolved before anything is changed.
func resolve(ctx context.Context, eng *engine.Engine, p Project, names []string) ([]engine.Container, error) {
	have, err := ours(ctx, eng, p.Name)
	if err != nil {
		return nil, err
	}
	defs, derr := Discover(p)
	var out []engine.Container
	seen := map[string]bool{}
	for _, n := range names {
		var matched []engine.Container
		for _, c := range have {
			if c.Labels[LabelContainer] == n || c.Name == n {
				matched = append(matched, c)
			}
		}
		if len(matched) == 0 {
			candidates := []string{n}
			if derr == nil {
				for _, d := range defs {
					if d.Name == n {
						candidates = append([]string{d.Container}, candidates...)
					}
				}
			} else {
				candidates = append([]string{p.Name + "-" + n}, candidates...)
			}
			for _, cn := range candidates {
				c, err := eng.InspectContainer(ctx, cn)
				if errors.Is(err, engine.ErrNotFound) {
					continue
				}
				if err != nil {
					return nil, err
				}
				// Ours would have been listed.
				return nil, strangerError(c.Name, n)
			}
			return nil, exitcode.Usagef("no container of project %s is named %s (see 'ps-env containers status')", p.Name, n)
		}
		for _, c := range matched {
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}
