package subst

import (
	"bytes"
	"fmt"
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

// BenchmarkCommon is the common path, the shape of bench/subst.sh's input
// and of most real templates: plain lines, each with a ${V:-d} whose
// variable is unset and a $HOME that is set.
func BenchmarkCommon(b *testing.B) {
	data, lookup := commonData(commonSize)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Stream(io.Discard, bytes.NewReader(data), "bench", lookup, Options{AllowUndefined: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCommonInserted is BenchmarkCommon told of every inserted value,
// as ps-subst's text mode is for a .yaml file (its YAML-injection warning).
func BenchmarkCommonInserted(b *testing.B) {
	data, lookup := commonData(commonSize)
	n := 0
	opt := Options{AllowUndefined: true, Inserted: func(name, value string, pos Position) { n++ }}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Stream(io.Discard, bytes.NewReader(data), "bench.yaml", lookup, opt); err != nil {
			b.Fatal(err)
		}
	}
	if n == 0 {
		b.Fatal("Inserted was never called")
	}
}

// commonSize is the input of BenchmarkCommon: large enough that the
// per-line costs dominate, as on bench/subst.sh's 30 MB file.
const commonSize = 8 << 20

func commonData(n int) ([]byte, Lookup) {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "key%d: ${V%d:-default} value $HOME text here\n", i, i%10)
	}
	return b.Bytes(), mapLookup(map[string]string{"HOME": "/home/user"})
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
