// Package deploy is the contract between the environment lifecycle (ps-env up/down/status) and
// the two ways an environment runs containers: podman pod files (package deploy/kube) and
// compose files (package deploy/compose). A Unit is one init entry or the deployment, already
// rendered; a Deployer checks it, starts it, waits for it and removes it.
package deploy

import (
	"context"
	"strconv"
	"time"

	"github.com/poststack/poststack/pkg/config"
)

// Labels every container, pod and compose service of an environment carries. Project and
// Environment are those of pgenv; Unit names the init entry ("init-1", "init-2", …) or
// "deploy"; Service the container's name in its pod or its compose service; Config a hash of
// the unit's final file (without this label), so that an unchanged unit is left running.
const (
	LabelProject     = "io.poststack.project"
	LabelEnvironment = "io.poststack.environment"
	LabelService     = "io.poststack.service"
	LabelUnit        = "io.poststack.unit"
	LabelConfig      = "io.poststack.config"
)

// UnitDeploy is the Unit name of an environment's deployment; init entry n (1-based) is
// InitUnit(n).
const UnitDeploy = "deploy"

// Unit is one container file of an environment, rendered and ready to check.
type Unit struct {
	Kind config.StepKind
	// Source is the template as the user named it (relative to the project), for messages.
	Source string
	// Rendered is the file after substitution. It holds secrets: never write it next to the
	// template; pass it by stdin or a private 0600 temp file that is removed.
	Rendered []byte
	// Project and Environment name the environment (validated names).
	Project, Environment string
	// Name is the unit's name within the environment: UnitDeploy or InitUnit(n).
	Name string
	// Network is the environment's network (it exists): every container joins it, so that
	// <project>-<env>-postgres resolves by name.
	Network string
	// Init: run to completion. Pods get restartPolicy Never; every container must exit 0.
	Init bool
	// Dir is the directory relative paths of the file resolve against (the template's
	// directory for compose, as docker compose does).
	Dir string
}

// ComposeProject is the compose project name of a unit: <project>-<env> for the deployment,
// <project>-<env>-init-<n> for init entry n.
func (u Unit) ComposeProject() string {
	if u.Name == UnitDeploy {
		return u.Project + "-" + u.Environment
	}
	return u.Project + "-" + u.Environment + "-" + u.Name
}

// Labels returns the labels every object of u carries, Config excepted.
func (u Unit) Labels() map[string]string {
	return map[string]string{LabelProject: u.Project, LabelEnvironment: u.Environment, LabelUnit: u.Name}
}

// Port is a host port a unit will bind.
type Port struct {
	HostIP        string `json:"host_ip"` // "" = every address
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Protocol      string `json:"protocol"` // "tcp" or "udp"
	Service       string `json:"service"`  // the container or service that publishes it
}

// Plan is a checked unit: what will be passed to the engine and what it will occupy.
type Plan struct {
	Unit Unit
	// Final is the file exactly as the engine will receive it (labels, network, restart
	// policy and, for compose, every remaining $ escaped as $$). It holds secrets.
	Final []byte
	// Fingerprint is a hash of Final without LabelConfig; LabelConfig carries it.
	Fingerprint string
	// HostPorts is every host port the unit binds (podman 4.3 publishes every containerPort).
	HostPorts []Port
	// Containers are the names of the containers the unit creates, in file order.
	Containers []string
}

// Exit is how one container of an init unit ended.
type Exit struct {
	Container string
	Service   string
	Code      int
	Logs      string // everything it wrote, stdout and stderr interleaved as the engine keeps them
}

// Container is the state of one of an environment's containers, for status and waits.
type Container struct {
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`    // LabelUnit
	Service string    `json:"service"` // LabelService
	Image   string    `json:"image"`
	State   string    `json:"state"`  // created, running, exited, …
	Health  string    `json:"health"` // "", starting, healthy, unhealthy
	Ports   []Port    `json:"ports"`
	Started time.Time `json:"started"`
	// Config is LabelConfig: equal to a Plan's Fingerprint when the container runs that plan.
	Config string `json:"config"`
}

// Change is what Apply did to one pod or compose service.
type Change struct {
	Name   string `json:"name"`   // pod or service
	Action string `json:"action"` // ActionCreated, ActionRecreated, ActionUnchanged
}

// Actions reported in Change.Action.
const (
	ActionCreated   = "created"
	ActionRecreated = "recreated"
	ActionUnchanged = "unchanged"
)

// Deployer runs units on one engine. Errors are one line naming the unit's Source; a file the
// engine or compose-go rejects is a usage error (exit 2); an engine command that fails is exit
// 1 and names the command.
type Deployer interface {
	// Plan checks u without starting anything: YAML, kinds the engine can run, compose-go's
	// validation, host ports.
	Plan(ctx context.Context, u Unit) (*Plan, error)
	// Apply starts what p describes. What already runs with p's fingerprint is left alone
	// (ActionUnchanged); what runs with another is replaced. It does not wait.
	Apply(ctx context.Context, p *Plan) ([]Change, error)
	// WaitExited waits until every container of an init plan has exited and returns each one's
	// exit code and logs (read before anything removes them).
	WaitExited(ctx context.Context, p *Plan) ([]Exit, error)
	// WaitReady waits until every container of p runs and, where it has a healthcheck, is
	// healthy; after timeout it returns an exitcode 4 error naming the container, with its last
	// log lines in Detail().
	WaitReady(ctx context.Context, p *Plan, timeout time.Duration) ([]Container, error)
	// Remove removes everything of p (pods, containers, the compose project's own networks);
	// never the environment's network or volumes.
	Remove(ctx context.Context, p *Plan) error
	// Containers lists the environment's containers this deployer made (every unit), found by
	// label; unit "" means every unit.
	Containers(ctx context.Context, project, environment, unit string) ([]Container, error)
	// RemoveAll removes every unit of the environment this deployer made, found by label (down).
	RemoveAll(ctx context.Context, project, environment string) error
}

// InitUnit is the Unit name of init entry n (1-based).
func InitUnit(n int) string { return "init-" + strconv.Itoa(n) }
