package build

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/poststack/poststack/pkg/config"
	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/images"
	"github.com/poststack/poststack/pkg/safefile"
)

// Image is one image ps-build can build: a built-in definition or a
// project's containers/<name>/ directory.
type Image struct {
	Name string // "base-debian", "postgres", or the containers/ directory's name
	Ref  string // the tag it is built as, e.g. "myapp/api:latest"
	// Source names the definition in messages: "containers/api/Dockerfile"
	// (relative to the project root) or "built-in postgres".
	Source string
	// Builtin is set for definitions embedded in the binary; their files
	// live in images.FS() under Def.Dir and are written to a temporary
	// build context.
	Builtin bool
	Def     images.Definition
	// Dockerfile is the absolute path of a project image's Dockerfile and
	// Context its build context (the project root).
	Dockerfile string
	Context    string
	// BuildArgs are passed with --build-arg.
	BuildArgs map[string]string
	// Froms are the FROM lines; Deps the names of the images of this
	// project they name, sorted.
	Froms []From
	Deps  []string
}

// Project describes where a project's image definitions are.
type Project struct {
	Name string // image namespace: "<name>/<image>:latest"
	Root string // absolute project root, the build context of project images
	// Containers is the directory holding containers/<name>/ (absolute, or
	// relative to Root).
	Containers string
	// BaseImage is the image base-debian is built FROM.
	BaseImage string
	// BuildArgs are passed to every image (and override the defaults of
	// the ARGs the FROM lines use).
	BuildArgs map[string]string
}

// DefaultBaseImage is the image base-debian is built FROM unless
// --base-image says otherwise.
const DefaultBaseImage = "docker.io/library/debian:bookworm-slim"

// Plan is a set of images in build order: every image after the images it
// is built FROM.
type Plan struct {
	Project string
	Images  []*Image
}

// Discover reads the built-in definitions and every
// <Containers>/<name>/Dockerfile (or Containerfile) of p. A project's
// containers/postgres/ replaces the built-in postgres image.
func Discover(p Project) ([]*Image, error) {
	if !config.ValidName(p.Name) {
		return nil, exitcode.Usagef("project name %q cannot name images: use lower-case letters, digits, '.', '_' and '-' (set project.name in %s or --project-container-prefix)", p.Name, config.FileName)
	}
	base := p.BaseImage
	if base == "" {
		base = DefaultBaseImage
	}
	var out []*Image
	dir := p.Containers
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(p.Root, dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, exitcode.With(exitcode.Usage, fmt.Errorf("read %s: %w", dir, err))
	}
	overridden := map[string]bool{}
	var problems []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		file := ""
		for _, n := range []string{"Dockerfile", "Containerfile"} {
			// Whatever its type: a Dockerfile that is a FIFO, a device or a link out of the
			// project is refused below, not passed over.
			if _, err := os.Lstat(filepath.Join(dir, e.Name(), n)); err == nil {
				file = filepath.Join(dir, e.Name(), n)
				break
			}
		}
		if file == "" {
			continue // pod and compose files live under containers/ too
		}
		rel := relTo(p.Root, file)
		if !config.ValidName(e.Name()) {
			problems = append(problems, fmt.Sprintf("%s: directory name %q cannot name an image: use lower-case letters, digits, '.', '_' and '-'", rel, e.Name()))
			continue
		}
		data, err := safefile.ReadFile(p.Root, file)
		if err != nil {
			problems = append(problems, refused(rel, err))
			continue
		}
		args := copyArgs(p.BuildArgs)
		froms, err := ParseFroms(bytes.NewReader(data), args)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", rel, err))
			continue
		}
		overridden[e.Name()] = true
		out = append(out, &Image{
			Name: e.Name(), Ref: p.Name + "/" + e.Name() + ":latest", Source: rel,
			Dockerfile: file, Context: p.Root, BuildArgs: args, Froms: froms,
		})
	}
	if len(out) > 0 {
		// The context's ignore file decides what leaves the machine: one
		// that cannot be read is refused before anything is built.
		for _, n := range []string{".containerignore", ".dockerignore"} {
			f := filepath.Join(p.Root, n)
			if _, err := os.Lstat(f); err != nil {
				continue
			}
			if _, err := safefile.ReadFile(p.Root, f); err != nil {
				problems = append(problems, refused(n, err))
			}
		}
	}
	if len(problems) > 0 {
		return nil, exitcode.Usagef("%s", strings.Join(problems, "\n"))
	}
	var builtins []*Image
	for _, def := range images.Builtin() {
		if overridden[def.Name] {
			continue
		}
		args := copyArgs(p.BuildArgs)
		if def.Name == "base-debian" {
			if _, set := args["BASE_IMAGE"]; !set {
				args["BASE_IMAGE"] = base
			}
		} else {
			// A user's BASE_IMAGE is for base-debian; the others are
			// built FROM the images of this run.
			delete(args, "BASE_IMAGE")
		}
		data, err := fs.ReadFile(images.FS(), path.Join(def.Dir, "Dockerfile"))
		if err != nil {
			return nil, fmt.Errorf("built-in %s: %w", def.Name, err)
		}
		froms, err := ParseFroms(bytes.NewReader(data), args)
		if err != nil {
			return nil, fmt.Errorf("built-in %s: %w", def.Name, err)
		}
		builtins = append(builtins, &Image{
			Name: def.Name, Ref: def.Ref, Source: "built-in " + def.Name, Builtin: true, Def: def,
			BuildArgs: args, Froms: froms,
		})
	}
	return append(builtins, out...), nil
}

// NewPlan orders the images named by want (all of them when want is
// empty) and the images they are built FROM. An unknown name, a FROM of an
// image of this project (or of poststack/) that is not defined, and a
// dependency cycle are bad input (exit 2), reported before anything is
// built.
func NewPlan(project string, all []*Image, want []string) (*Plan, error) {
	byRef := map[string]*Image{}
	byName := map[string]*Image{}
	for _, im := range all {
		byRef[NormalizeRef(im.Ref)] = im
		byName[im.Name] = im
	}
	// A project overriding postgres answers FROM poststack/postgres too.
	if im, ok := byName["postgres"]; ok && !im.Builtin {
		for _, def := range images.Builtin() {
			if def.Name == "postgres" {
				byRef[NormalizeRef(def.Ref)] = im
			}
		}
	}
	var problems []string
	for _, im := range all {
		im.Deps = nil
		seen := map[string]bool{}
		for i, f := range im.Froms {
			if f.Image == "" || f.Internal {
				continue
			}
			dep, ok := byRef[NormalizeRef(f.Image)]
			if ok {
				im.Froms[i].Dep = dep.Name
			}
			if !ok {
				if ns := namespace(f.Image); ns == project || ns == "poststack" {
					problems = append(problems, fmt.Sprintf("%s:%d: FROM %s: no such image in this project (it builds %s)",
						im.Source, f.Line, f.Image, strings.Join(refs(all), ", ")))
				}
				continue
			}
			if !seen[dep.Name] {
				seen[dep.Name] = true
				im.Deps = append(im.Deps, dep.Name)
			}
		}
		sort.Strings(im.Deps)
	}
	if len(problems) > 0 {
		return nil, exitcode.Usagef("%s", strings.Join(problems, "\n"))
	}

	var roots []*Image
	if len(want) == 0 {
		roots = all
	}
	for _, w := range want {
		im, ok := byName[w]
		if !ok {
			im, ok = byRef[NormalizeRef(w)]
		}
		if !ok {
			names := make([]string, 0, len(all))
			for _, im := range all {
				names = append(names, im.Name)
			}
			return nil, exitcode.Usagef("unknown image %q; this project builds: %s", w, strings.Join(names, ", "))
		}
		roots = append(roots, im)
	}

	// Depth-first topological sort; a grey node met again is a cycle.
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var order []*Image
	var stack []*Image
	var visit func(im *Image) error
	visit = func(im *Image) error {
		switch color[im.Name] {
		case black:
			return nil
		case grey:
			i := 0
			for stack[i] != im {
				i++
			}
			var cyc []string
			for _, s := range append(stack[i:], im) {
				cyc = append(cyc, fmt.Sprintf("%s (%s)", s.Source, s.Ref))
			}
			return exitcode.Usagef("dependency cycle: %s", strings.Join(cyc, " → "))
		}
		color[im.Name] = grey
		stack = append(stack, im)
		for _, d := range im.Deps {
			if err := visit(byName[d]); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		color[im.Name] = black
		order = append(order, im)
		return nil
	}
	for _, im := range roots {
		if err := visit(im); err != nil {
			return nil, err
		}
	}
	return &Plan{Project: project, Images: order}, nil
}

func refs(all []*Image) []string {
	out := make([]string, len(all))
	for i, im := range all {
		out[i] = im.Ref
	}
	return out
}

func copyArgs(m map[string]string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

// refused words a Dockerfile that is not read, named as rel: a *safefile.Error names the file
// itself, by the path it was given.
func refused(rel string, err error) string {
	var se *safefile.Error
	if errors.As(err, &se) {
		return rel + ": " + se.Reason
	}
	return fmt.Sprintf("%s: %v", rel, err)
}

func relTo(root, p string) string {
	if r, err := filepath.Rel(root, p); err == nil && !strings.HasPrefix(r, "..") {
		return filepath.ToSlash(r)
	}
	return p
}
