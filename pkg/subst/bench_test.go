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
