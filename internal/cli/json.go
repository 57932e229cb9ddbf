package cli

import (
	"encoding/json"
	"io"
)

// WriteJSON writes v to w as JSON indented by two spaces, with a trailing
// newline: the one form of every binary's --json output. Durations in it
// are whole milliseconds in fields named duration_ms.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Renderer is a command's typed result: it writes itself as text for a
// person and as JSON (through WriteJSON) for a program. Both take the
// writer, so that a test renders a result without running anything.
type Renderer interface {
	RenderText(w io.Writer) error
	RenderJSON(w io.Writer) error
}

// Render writes r to standard output: as JSON with --json, else as text.
func (a *App) Render(r Renderer) error {
	if a.Globals.JSON {
		return r.RenderJSON(a.Env.Stdout)
	}
	return r.RenderText(a.Env.Stdout)
}
