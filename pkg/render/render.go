// Package render runs templates through the substitution engines the way
// ps-subst promises: strict by default, so that nothing reaches the output
// unless every input rendered cleanly; atomic when writing a file; and with
// reports of what the templates reference (List) and how each reference
// would resolve (Check).
package render

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/poststack/poststack/pkg/atomicfile"
	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/subst"
	"github.com/poststack/poststack/pkg/yamlsubst"
)

// Input is one template: a file, or standard input when Open reads it.
type Input struct {
	// Name is used in positions; "" reads as <stdin>.
	Name string
	Open func() (io.ReadCloser, error)
}

// File is the Input for a template the user named: symbolic links are
// followed, but only a regular file is read (never a FIFO or a device), and
// reading fails past safefile.DefaultMaxSize bytes.
func File(path string) Input {
	return ProjectFile("", path)
}

// ProjectFile is the Input for a template found inside the project
// directory root, which it must really be in (a symbolic link out of root is
// refused); a root of "" is File's trust in the path.
func ProjectFile(root, path string) Input {
	return Input{Name: path, Open: func() (io.ReadCloser, error) { return safefile.Open(root, path) }}
}

// Reader is the Input for an already open reader, such as standard input.
func Reader(name string, r io.Reader) Input {
	return Input{Name: name, Open: func() (io.ReadCloser, error) { return io.NopCloser(r), nil }}
}

// Options tune a rendering.
type Options struct {
	// YAML substitutes only inside scalar values and emits valid YAML.
	YAML bool
	// AllowUndefined expands undefined variables to "" instead of failing.
	AllowUndefined bool
	// TempDir holds output spilled while strict mode holds it back
	// ("" is os.TempDir()).
	TempDir string
	// MemoryLimit is how much held-back output stays in memory before it
	// spills to a private temporary file (0 means 1 MiB: past that, growing
	// a slice costs more in page faults than writing to the page cache).
	MemoryLimit int
	// Private makes WriteFile's file 0600, for output that holds secrets;
	// otherwise it is 0666 masked by the umask. A target's old mode is
	// never kept.
	Private bool
	// Inserted is subst.Options.Inserted, for text-mode templates.
	Inserted func(name, value string, pos subst.Position)
}

const defaultMemoryLimit = 1 << 20

// To renders inputs, in order, to w. Output reaches w only once every input
// rendered without problems; on failure w has received nothing and the error
// holds every problem found (subst.Problems) or the first I/O error.
func To(w io.Writer, inputs []Input, lookup subst.Lookup, opt Options) error {
	limit := opt.MemoryLimit
	if limit <= 0 {
		limit = defaultMemoryLimit
	}
	spool := subst.NewSpool(opt.TempDir, limit)
	defer spool.Close()
	if err := renderAll(spool, inputs, lookup, opt); err != nil {
		return err
	}
	if _, err := spool.WriteTo(w); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// WriteFile renders inputs into path atomically: the output is written to a
// temporary file beside path and renamed over it only when everything
// rendered; on any error path is untouched.
func WriteFile(path string, inputs []Input, lookup subst.Lookup, opt Options) error {
	mode := atomicfile.Public
	if opt.Private {
		mode = atomicfile.Private
	}
	return atomicfile.Write(path, mode, func(f *os.File) error { return renderAll(f, inputs, lookup, opt) })
}

// renderAll renders every input to w, going on past problems so that all
// of them are reported at once.
func renderAll(w io.Writer, inputs []Input, lookup subst.Lookup, opt Options) error {
	var problems subst.Problems
	sopt := subst.Options{AllowUndefined: opt.AllowUndefined, Inserted: opt.Inserted}
	for i, in := range inputs {
		if opt.YAML && i > 0 {
			// Two YAML files one after the other are one stream of
			// documents only with a separator between them.
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		err := renderOne(w, in, lookup, sopt, opt.YAML)
		var ps subst.Problems
		switch {
		case errors.As(err, &ps):
			problems = append(problems, ps...)
		case err != nil:
			return err
		}
	}
	if len(problems) > 0 {
		return problems
	}
	return nil
}

func renderOne(w io.Writer, in Input, lookup subst.Lookup, sopt subst.Options, yaml bool) error {
	r, err := in.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	if yaml {
		return yamlsubst.Render(w, r, in.Name, lookup, sopt)
	}
	return subst.Stream(w, r, in.Name, lookup, sopt)
}
