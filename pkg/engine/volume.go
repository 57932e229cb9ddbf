package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
)

// Volume is a named volume.
type Volume struct {
	Name       string
	Mountpoint string // where the data lives on the engine's host
	Labels     map[string]string
}

type volumeJSON struct {
	Name       string
	Mountpoint string
	Labels     labelMap
}

func (v volumeJSON) volume() Volume {
	return Volume{Name: v.Name, Mountpoint: v.Mountpoint, Labels: cloneLabels(v.Labels)}
}

// CreateVolume creates a named volume.
func (e *Engine) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	if err := checkName("volume", name); err != nil {
		return err
	}
	args := append([]string{"volume", "create"}, labelArgs("--label", labels)...)
	if _, err := e.run(ctx, append(args, name)...); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// EnsureVolume creates the volume unless it exists, and reports whether it created it. The
// labels of an existing volume are left as they are.
func (e *Engine) EnsureVolume(ctx context.Context, name string, labels map[string]string) (bool, error) {
	_, err := e.InspectVolume(ctx, name)
	if err == nil {
		return false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	if err := e.CreateVolume(ctx, name, labels); err != nil {
		if _, ierr := e.InspectVolume(ctx, name); ierr == nil {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// InspectVolume returns a volume; a missing one is an error wrapping ErrNotFound.
func (e *Engine) InspectVolume(ctx context.Context, name string) (*Volume, error) {
	if err := checkName("volume", name); err != nil {
		return nil, err
	}
	out, err := e.run(ctx, "volume", "inspect", name)
	if isNotFound(err) {
		return nil, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect volume %s: %w", name, err)
	}
	vs, err := decodeList[volumeJSON](out)
	if err != nil {
		return nil, fmt.Errorf("inspect volume %s: %w", name, err)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("volume %q: %w", name, ErrNotFound)
	}
	v := vs[0].volume()
	return &v, nil
}

// RemoveVolume removes a volume; a missing one is not an error.
func (e *Engine) RemoveVolume(ctx context.Context, name string) error {
	if err := checkName("volume", name); err != nil {
		return err
	}
	_, err := e.run(ctx, "volume", "rm", name)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// ListVolumes returns the volumes that carry all of labels, sorted by name.
func (e *Engine) ListVolumes(ctx context.Context, labels map[string]string) ([]Volume, error) {
	args := append([]string{"volume", "ls", "--format", e.listFormat()}, labelArgs("--filter", prefixLabels(labels))...)
	out, err := e.run(ctx, args...)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	vs, err := decodeList[volumeJSON](out)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var res []Volume
	for _, v := range vs {
		if matchLabels(v.Labels, labels) {
			res = append(res, v.volume())
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
	return res, nil
}
