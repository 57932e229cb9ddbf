package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Network is a container network.
type Network struct {
	ID     string
	Name   string
	Labels map[string]string
}

// networkJSON matches docker's "Name"/"Id"/"Labels" and podman's lowercase "name"/"id"/"labels"
// (encoding/json matches keys case-insensitively). Labels is a string in docker's list output.
type networkJSON struct {
	ID     string `json:"Id"`
	Name   string
	Labels labelMap
}

func (n networkJSON) network() Network {
	return Network{ID: n.ID, Name: n.Name, Labels: cloneLabels(n.Labels)}
}

// CreateNetwork creates a bridge network.
func (e *Engine) CreateNetwork(ctx context.Context, name string, labels map[string]string) error {
	if err := checkName("network", name); err != nil {
		return err
	}
	args := append([]string{"network", "create"}, labelArgs("--label", labels)...)
	if _, err := e.run(ctx, append(args, name)...); err != nil {
		return fmt.Errorf("create network %s: %w", name, err)
	}
	return nil
}

// EnsureNetwork creates the network unless it exists, and reports whether it created it. The
// labels of an existing network are left as they are.
func (e *Engine) EnsureNetwork(ctx context.Context, name string, labels map[string]string) (bool, error) {
	_, err := e.InspectNetwork(ctx, name)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := e.CreateNetwork(ctx, name, labels); err != nil {
		// Someone else may have created it meanwhile.
		if _, ierr := e.InspectNetwork(ctx, name); ierr == nil {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// InspectNetwork returns a network; a missing one is an error wrapping ErrNotFound.
func (e *Engine) InspectNetwork(ctx context.Context, name string) (*Network, error) {
	if err := checkName("network", name); err != nil {
		return nil, err
	}
	out, err := e.run(ctx, "network", "inspect", name)
	if isNotFound(err) {
		return nil, fmt.Errorf("network %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect network %s: %w", name, err)
	}
	ns, err := decodeList[networkJSON](out)
	if err != nil {
		return nil, fmt.Errorf("inspect network %s: %w", name, err)
	}
	if len(ns) == 0 {
		return nil, fmt.Errorf("network %q: %w", name, ErrNotFound)
	}
	n := ns[0].network()
	return &n, nil
}

// RemoveNetwork removes a network; a missing one is not an error.
func (e *Engine) RemoveNetwork(ctx context.Context, name string) error {
	if err := checkName("network", name); err != nil {
		return err
	}
	_, err := e.run(ctx, "network", "rm", name)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("remove network %s: %w", name, err)
	}
	return nil
}

// ListNetworks returns the networks that carry all of labels, sorted by name.
func (e *Engine) ListNetworks(ctx context.Context, labels map[string]string) ([]Network, error) {
	args := append([]string{"network", "ls", "--no-trunc", "--format", e.listFormat()}, labelArgs("--filter", prefixLabels(labels))...)
	out, err := e.run(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	ns, err := decodeList[networkJSON](out)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var res []Network
	for _, n := range ns {
		if matchLabels(n.Labels, labels) {
			res = append(res, n.network())
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	return res, nil
}

// listFormat is the --format that makes a list command print JSON: podman prints an array,
// docker (20.10 has no "json" keyword) one object a line.
func (e *Engine) listFormat() string {
	if e.name == Podman {
		return "json"
	}
	return "{{json .}}"
}
