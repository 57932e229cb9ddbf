package subst

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// nestedDefaults is the template of issue 9's report, n levels deep:
// ${V0:-${V1:-…${V9:-${V0:-…x}…}}}, all on one line.
func nestedDefaults(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "${V%d:-", i%10)
	}
	b.WriteString("x")
	b.WriteString(strings.Repeat("}", n))
	b.WriteString("\n")
	return b.String()
}

// hostileShapes builds templates of about size bytes that a quadratic
// engine chokes on: each is one long line.
var hostileShapes = []struct {
	name string
	make func(size int) string
}{
	{"deep nesting", func(size int) string { return nestedDefaults(size / 7) }},
	{"deep nesting, distinct names", func(size int) string {
		var b strings.Builder
		n := 0
		for ; b.Len() < size*7/10; n++ {
			fmt.Fprintf(&b, "${N%d:-", n)
		}
		return b.String() + "x" + strings.Repeat("}", n)
	}},
	{"deep nesting with long text", func(size int) string {
		n := size / 47
		return strings.Repeat("${A:-"+strings.Repeat("d", 20), n) + strings.Repeat(strings.Repeat("t", 20)+"}", n)
	}},
	{"deep required messages", func(size int) string {
		n := size / 7
		return strings.Repeat("${U:?m", n) + strings.Repeat("}", n)
	}},
	{"wide nesting", func(size int) string {
		return strings.Repeat("${A:-${B:-${C:-x}}} ", size/21)
	}},
	{"siblings with a long tail", func(size int) string {
		k := size / 2 / 13
		return "${A:-" + strings.Repeat("${B:-${C:-x}}", k) + strings.Repeat("y", size/2) + "}"
	}},
	{"long default", func(size int) string { return "${A:-" + strings.Repeat("d", size) + "}" }},
	{"many $$", func(size int) string { return strings.Repeat("$$", size/2) }},
	{"many $$ in a default", func(size int) string { return "${A:-" + strings.Repeat("$$", size/2) + "}" }},
	{"unterminated ${ at the end", func(size int) string { return strings.Repeat("a", size) + "${" }},
	{"unterminated ${A:- at the start", func(size int) string { return "${A:-" + strings.Repeat("a", size) }},
	{"unclosed defaults", func(size int) string { return strings.Repeat("${A:-", size/5) }},
}

// TestHostileShapesAreLinear renders, streams and lists every hostile
// shape at 256 KB and 1 MB: a fourfold input may cost about four times the
// memory, not sixteen, and 1 MB takes well under a second (the nested
// defaults of issue 9 took 84 s and 460 MB at 1.2 MB).
func TestHostileShapesAreLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("1 MB templates")
	}
	for _, shape := range hostileShapes {
		t.Run(shape.name, func(t *testing.T) {
			small, smallTime := allocated(t, shape.make(256<<10))
			big, bigTime := allocated(t, shape.make(1<<20))
			if big > 8*small+1<<20 {
				t.Errorf("256 KB allocates %d bytes, 1 MB %d: not linear", small, big)
			}
			if bigTime > 5*time.Second {
				t.Errorf("1 MB took %v (256 KB %v)", bigTime, smallTime)
			}
		})
	}
}

// allocated runs s through Expand, Stream (read in small pieces, as from a
// pipe) and References, checks that they agree, and returns the bytes
// allocated and the time taken.
func allocated(t *testing.T, s string) (uint64, time.Duration) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for _, opt := range []Options{{AllowUndefined: true}, {}} {
		want, werr := Expand(s, nil, opt, Position{})
		var out bytes.Buffer
		serr := Stream(&out, iotest.HalfReader(strings.NewReader(s)), "", nil, opt)
		if out.String() != want {
			t.Fatalf("Stream and Expand differ")
		}
		if (werr == nil) != (serr == nil) || werr != nil && len(werr.(Problems)) != len(serr.(Problems)) {
			t.Fatalf("Stream and Expand report differently")
		}
	}
	if _, err := References(strings.NewReader(s), ""); err != nil && !errors.As(err, new(Problems)) {
		t.Fatal(err)
	}
	d := time.Since(start)
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, d
}

// TestNestedDefaultsCompatible checks the deep template against compose-go
// itself at a depth it still handles in reasonable time.
func TestNestedDefaultsCompatible(t *testing.T) {
	for _, shape := range hostileShapes {
		s := shape.make(2 << 10)
		compareWithCompose(t, s, fuzzMapping("V3", ""))
		compareWithCompose(t, s, fuzzMapping("N7", "seven"))
	}
}
