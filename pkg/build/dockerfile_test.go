package build

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseFroms(t *testing.T) {
	tests := []struct {
		name string
		file string
		args map[string]string
		want []From
		err  string
	}{
		{"plain", "FROM debian:bookworm\nRUN true\n", nil,
			[]From{{Image: "debian:bookworm", Line: 1}}, ""},
		{"lower-case keyword and AS", "# comment\n\nfrom golang:1.22 as Build\nFROM build\nFROM scratch\n", nil,
			[]From{{Image: "golang:1.22", Stage: "build", Line: 3}, {Image: "build", Line: 4, Internal: true}, {Line: 5}}, ""},
		{"platform flag", "FROM --platform=$BUILDPLATFORM alpine AS x\n", nil,
			[]From{{Image: "alpine", Stage: "x", Line: 1}}, ""},
		{"arg default", "ARG BASE_IMAGE=poststack/base-debian:latest\nFROM ${BASE_IMAGE}\n", nil,
			[]From{{Image: "poststack/base-debian:latest", Line: 2}}, ""},
		{"arg overridden", "ARG BASE_IMAGE=poststack/base-debian:latest\nFROM $BASE_IMAGE\n", map[string]string{"BASE_IMAGE": "localhost/debian:bookworm"},
			[]From{{Image: "localhost/debian:bookworm", Line: 2}}, ""},
		{"quoted default and :- form", "ARG V=\"15\"\nARG R\nFROM postgres:${V}-${R:-bookworm}\n", nil,
			[]From{{Image: "postgres:15-bookworm", Line: 3}}, ""},
		{":+ form", "ARG R=x\nFROM img${R:+-suffix}\n", nil,
			[]From{{Image: "img-suffix", Line: 2}}, ""},
		{"ARG after FROM does not reach later FROMs", "FROM a\nARG X=b\nFROM c$X\n", nil,
			[]From{{Image: "a", Line: 1}, {Image: "c", Line: 3}}, ""},
		{"continuation", "FROM \\\n  debian \\\n  AS base\nFROM base\n", nil,
			[]From{{Image: "debian", Stage: "base", Line: 1}, {Image: "base", Line: 4, Internal: true}}, ""},
		{"comment inside continuation", "RUN a \\\n# not a FROM\n  b\nFROM x\n", nil,
			[]From{{Image: "x", Line: 4}}, ""},
		{"escape directive", "# escape=`\nRUN dir `\n  c:\\\nFROM win\n", nil,
			[]From{{Image: "win", Line: 4}}, ""},
		{"FROM inside a RUN continuation is not a FROM", "FROM a\nRUN echo \\\n FROM b\n", nil,
			[]From{{Image: "a", Line: 1}}, ""},
		{"CRLF", "FROM a\r\nRUN x\r\n", nil, []From{{Image: "a", Line: 1}}, ""},
		{"no FROM", "RUN true\n", nil, nil, "no FROM"},
		{"empty image", "ARG B\nFROM $B\n", nil, nil, "line 2: FROM $B expands to nothing"},
		{"extra words", "FROM a b\n", nil, nil, "line 1: FROM wants an image"},
		{"bad substitution", "FROM ${A:?x}\n", nil, nil, "bad substitution"},
		{"unterminated", "FROM ${A\n", nil, nil, "unterminated"},
		{"bad escape", "# escape=x\nFROM a\n", nil, nil, "escape directive"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFroms(strings.NewReader(tc.file), tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParseFroms(f *testing.F) {
	for _, s := range []string{
		"FROM a\n", "ARG X=1\nFROM b:$X AS c\nFROM c\n", "# escape=`\nFROM `\n x\n",
		"FROM ${A:-${B}}\n", "FROM --platform=x y as z\n", "from\tdebian\n", "FROM $\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		froms, err := ParseFroms(strings.NewReader(s), map[string]string{"A": "x"})
		if err != nil {
			return
		}
		lines := strings.Count(s, "\n") + 1
		for _, fr := range froms {
			if fr.Line < 1 || fr.Line > lines {
				t.Fatalf("line %d out of 1..%d", fr.Line, lines)
			}
			if strings.ContainsAny(fr.Image, " \t\n") {
				t.Fatalf("image %q has blanks", fr.Image)
			}
		}
	})
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"poststack/postgres":                          "poststack/postgres:latest",
		"localhost/poststack/postgres:latest":         "poststack/postgres:latest",
		"docker.io/poststack/postgres:latest":         "poststack/postgres:latest",
		"docker.io/library/debian:bookworm-slim":      "debian:bookworm-slim",
		"debian":                                      "debian:latest",
		"registry:5000/x/y":                           "registry:5000/x/y:latest",
		"registry:5000/x/y:1":                         "registry:5000/x/y:1",
		"MyApp/API:V1":                                "myapp/api:v1",
		"busybox@sha256:0000000000000000000000000000": "busybox@sha256:0000000000000000000000000000",
	} {
		if got := NormalizeRef(in); got != want {
			t.Errorf("NormalizeRef(%q) = %q, want %q", in, got, want)
		}
	}
	if ns := namespace("localhost/myapp/api"); ns != "myapp" {
		t.Errorf("namespace = %q", ns)
	}
	if ns := namespace("debian:12"); ns != "" {
		t.Errorf("namespace = %q", ns)
	}
}
