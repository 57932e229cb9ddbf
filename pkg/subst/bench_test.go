package subst

import (
	"bytes"
	"io"
	"testing"

	"github.com/compose-spec/compose-go/v2/template"
)

const benchSize = 2 << 20

func BenchmarkStream(b *testing.B) {
	data, lookup := benchData(benchSize)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Stream(io.Discard, bytes.NewReader(data), "bench", lookup, Options{AllowUndefined: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkComposeGo(b *testing.B) {
	data, lookup := benchData(benchSize)
	s := string(data)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := template.SubstituteWithOptions(s, template.Mapping(lookup), template.WithoutLogging); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReferences(b *testing.B) {
	data, _ := benchData(benchSize)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := References(bytes.NewReader(data), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}

// nestedSize is the size of the nested template of issue 9 (1.2 MB; 84 s
// and 460 MB before defaults were evaluated without recursion and balanced
// braces counted once).
const nestedSize = 1_200_000

func BenchmarkNestedDefaults(b *testing.B) {
	data := []byte(nestedDefaults(nestedSize / 7))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Stream(io.Discard, bytes.NewReader(data), "bench", nil, Options{AllowUndefined: true}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNestedDefaultsReferences(b *testing.B) {
	data := []byte(nestedDefaults(nestedSize / 7))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := References(bytes.NewReader(data), "bench"); err != nil {
			b.Fatal(err)
		}
	}
}
