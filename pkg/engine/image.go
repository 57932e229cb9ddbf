package engine

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Image is what both engines report about a local image.
type Image struct {
	ID         string // "sha256:<hex>" on both engines
	RepoTags   []string
	Labels     map[string]string
	Created    time.Time
	Env        []string
	Entrypoint []string
	Cmd        []string
	StopSignal string
	// Healthcheck is the Test of the image's HEALTHCHECK, nil when it has none or disables it.
	Healthcheck []string
	Volumes     []string // sorted
	// ExposedPorts are the image's EXPOSE entries as "8080/tcp", sorted.
	ExposedPorts []string
}

type healthJSON struct{ Test []string }

// imageJSON is the part of `image inspect` used here. Podman reports the health check at the
// top level, docker inside Config.
type imageJSON struct {
	ID       string `json:"Id"`
	RepoTags []string
	Created  time.Time
	Labels   labelMap
	Config   struct {
		Env         []string
		Entrypoint  []string
		Cmd         []string
		StopSignal  string
		Labels      labelMap
		Volumes     map[string]struct{}
		Exposed     map[string]struct{} `json:"ExposedPorts"`
		Healthcheck *healthJSON
	}
	Healthcheck *healthJSON
}

func (i imageJSON) image() Image {
	out := Image{
		ID:         normalizeImageID(i.ID),
		RepoTags:   i.RepoTags,
		Labels:     cloneLabels(i.Config.Labels),
		Created:    i.Created,
		Env:        i.Config.Env,
		Entrypoint: i.Config.Entrypoint,
		Cmd:        i.Config.Cmd,
		StopSignal: i.Config.StopSignal,
	}
	if len(out.Labels) == 0 {
		out.Labels = cloneLabels(i.Labels)
	}
	hc := i.Config.Healthcheck
	if hc == nil {
		hc = i.Healthcheck
	}
	if hc != nil && len(hc.Test) > 0 && hc.Test[0] != "NONE" {
		out.Healthcheck = hc.Test
	}
	if len(i.Config.Volumes) > 0 {
		out.Volumes = sortedKeys(i.Config.Volumes)
	}
	if len(i.Config.Exposed) > 0 {
		out.ExposedPorts = sortedKeys(i.Config.Exposed)
	}
	return out
}

// InspectImage returns a local image; a missing one is an error wrapping ErrNotFound. Nothing
// is pulled.
func (e *Engine) InspectImage(ctx context.Context, ref string) (*Image, error) {
	if err := checkName("image", ref); err != nil {
		return nil, err
	}
	out, err := e.run(ctx, "image", "inspect", ref)
	if isNotFound(err) {
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	is, err := decodeList[imageJSON](out)
	if err != nil {
		return nil, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	if len(is) == 0 {
		return nil, fmt.Errorf("image %q: %w", ref, ErrNotFound)
	}
	img := is[0].image()
	return &img, nil
}

// ImageExists reports whether ref is a local image.
func (e *Engine) ImageExists(ctx context.Context, ref string) (bool, error) {
	_, err := e.InspectImage(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RemoveImage removes a local image (or just the tag ref, when the image has others); a
// missing image is not an error.
func (e *Engine) RemoveImage(ctx context.Context, ref string, force bool) error {
	if err := checkName("image", ref); err != nil {
		return err
	}
	args := []string{"rmi"}
	if force {
		args = append(args, "-f")
	}
	_, err := e.run(ctx, append(args, ref)...)
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}

// TagImage gives the local image src the additional name dst.
func (e *Engine) TagImage(ctx context.Context, src, dst string) error {
	for _, ref := range []string{src, dst} {
		if err := checkName("image", ref); err != nil {
			return err
		}
	}
	if _, err := e.run(ctx, "tag", src, dst); err != nil {
		return fmt.Errorf("tag image %s as %s: %w", src, dst, classify(err, "image", src))
	}
	return nil
}
