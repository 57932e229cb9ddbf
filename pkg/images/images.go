// Package images holds the definitions of the images poststack builds itself: a small Debian
// base and a PostgreSQL image that honours the official postgres image's environment contract.
// They are embedded in the binaries so that ps-build works from any directory, offline, and
// builds exactly the files that were tested with the binary.
package images

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

//go:embed all:defs
var defs embed.FS

// Definition is one built-in image.
type Definition struct {
	// Name is the short name users and project files refer to: "base-debian", "postgres".
	Name string
	// Ref is the image reference the build tags: "poststack/postgres:latest".
	Ref string
	// Dir is the directory inside FS that holds the Dockerfile and the rest of the build context.
	Dir string
}

// Builtin returns the built-in images in dependency order: each may be built FROM an earlier
// one (postgres starts from base-debian), so building them in this order needs no registry.
// The slice is new on every call; callers may modify it.
func Builtin() []Definition {
	return []Definition{
		{Name: "base-debian", Ref: "poststack/base-debian:latest", Dir: "defs/base-debian"},
		{Name: "postgres", Ref: "poststack/postgres:latest", Dir: "defs/postgres"},
	}
}

// Lookup returns the built-in image called name.
func Lookup(name string) (Definition, bool) {
	for _, d := range Builtin() {
		if d.Name == name {
			return d, true
		}
	}
	return Definition{}, false
}

// FS returns the embedded definition files, rooted so that Definition.Dir names a directory in it.
func FS() fs.FS { return defs }

// WriteContext writes the files of def into dir, creating dir if needed, so that an engine can
// use dir as the build context. The embedded files carry no permissions, so shell scripts
// (*.sh: entrypoints, helpers the Dockerfile COPYs) are written 0755 and everything else 0644;
// COPY keeps those modes in the image.
func WriteContext(def Definition, dir string) error {
	if def.Dir == "" || !fs.ValidPath(def.Dir) {
		return fmt.Errorf("images: image %q: invalid definition directory %q", def.Name, def.Dir)
	}
	sub, err := fs.Sub(defs, def.Dir)
	if err != nil {
		return fmt.Errorf("images: image %q: %w", def.Name, err)
	}
	if _, err := fs.Stat(sub, "Dockerfile"); err != nil {
		return fmt.Errorf("images: image %q: no Dockerfile in %s: %w", def.Name, def.Dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("images: build context for %q: %w", def.Name, err)
	}
	err = fs.WalkDir(sub, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, data, fileMode(name)); err != nil {
			return err
		}
		// WriteFile applies the mode only when it creates the file (and through the umask):
		// an older, non-executable copy would otherwise stay that way.
		return os.Chmod(target, fileMode(name))
	})
	if err != nil {
		return fmt.Errorf("images: writing the build context of %q to %s: %w", def.Name, dir, err)
	}
	return nil
}

// fileMode is the permission a definition file gets in a build context.
func fileMode(name string) fs.FileMode {
	if strings.HasSuffix(path.Base(name), ".sh") {
		return 0o755
	}
	return 0o644
}
