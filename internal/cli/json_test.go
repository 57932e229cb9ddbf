package cli

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestWriteJSON(t *testing.T) {
	type row struct {
		Name       string `json:"name"`
		DurationMS int64  `json:"duration_ms"`
	}
	var b bytes.Buffer
	if err := WriteJSON(&b, struct {
		Rows  []row   `json:"rows"`
		Error *string `json:"error"`
	}{Rows: []row{{"a<b", 3}}}); err != nil {
		t.Fatal(err)
	}
	want := "{\n  \"rows\": [\n    {\n      \"name\": \"a\\u003cb\",\n      \"duration_ms\": 3\n    }\n  ],\n  \"error\": null\n}\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if err := WriteJSON(&b, func() {}); err == nil || !strings.Contains(err.Error(), "unsupported type") {
		t.Errorf("a value JSON cannot hold: err = %v", err)
	}
}

// greeting is a Renderer for TestRender.
type greeting struct{ Name string }

func (g greeting) RenderText(w io.Writer) error {
	_, err := fmt.Fprintf(w, "hello %s\n", g.Name)
	return err
}

func (g greeting) RenderJSON(w io.Writer) error {
	return WriteJSON(w, struct {
		Name string `json:"name"`
	}{g.Name})
}

func TestRender(t *testing.T) {
	for _, tt := range []struct {
		json bool
		want string
	}{{false, "hello you\n"}, {true, "{\n  \"name\": \"you\"\n}\n"}} {
		var out bytes.Buffer
		app := New("ps-test", Env{Stdout: &out})
		app.Globals.JSON = tt.json
		if err := app.Render(greeting{"you"}); err != nil || out.String() != tt.want {
			t.Errorf("--json=%v: %q, %v; want %q", tt.json, out.String(), err, tt.want)
		}
	}
}
