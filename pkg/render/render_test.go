package render

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/subst"
)

func lookup(vars map[string]string) subst.Lookup {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func str(name, s string) Input { return Reader(name, strings.NewReader(s)) }

func TestToHoldsBackUntilAllInputsAreGood(t *testing.T) {
	vars := lookup(map[string]string{"A": "1"})
	var out bytes.Buffer
	err := To(&out, []Input{str("a", "x=$A\n"), str("b", "y=$B\nz=${C}\n")}, vars, Options{})
	var ps subst.Problems
	if !errors.As(err, &ps) || len(ps) != 2 || ps[0].Pos.String() != "b:1:3" || ps[1].Pos.String() != "b:2:3" {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("output reached the writer despite problems: %q", out.String())
	}
	out.Reset()
	if err := To(&out, []Input{str("a", "x=$A\n"), str("b", "y=${B:-2}\n")}, vars, Options{}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "x=1\ny=2\n" {
		t.Fatalf("got %q", out.String())
	}
}

func TestToSpillsAndCleansUp(t *testing.T) {
	tmp := t.TempDir()
	line := strings.Repeat("v=${V} ", 100) + "\n"
	in := strings.Repeat(line, 2000) // ~1.4 MB in, more out
	var out bytes.Buffer
	err := To(&out, []Input{str("big", in)}, lookup(map[string]string{"V": "value"}), Options{TempDir: tmp, MemoryLimit: 4096})
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.ReplaceAll(in, "${V}", "value"); out.String() != want {
		t.Fatalf("spilled output differs: %d bytes, want %d", out.Len(), len(want))
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("spool files left behind: %v", left)
	}
	// A failing run spills too, and leaves nothing behind either.
	err = To(&out, []Input{str("big", in+"$NOPE\n")}, lookup(map[string]string{"V": "value"}), Options{TempDir: tmp, MemoryLimit: 4096})
	if err == nil {
		t.Fatal("want a problem")
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Fatalf("spool files left behind after failure: %v", left)
	}
}

func TestYAMLInputsAreOneStream(t *testing.T) {
	var out bytes.Buffer
	err := To(&out, []Input{str("a.yaml", "a: ${X}\n"), str("b.yaml", "b: ${X}\n")}, lookup(map[string]string{"X": "7"}), Options{YAML: true})
	if err != nil || out.String() != "a: 7\n---\nb: 7\n" {
		t.Fatalf("got %q, %v", out.String(), err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "out")
	vars := lookup(map[string]string{"A": "1"})

	if err := WriteFile(target, []Input{str("t", "a=$A\n")}, vars, Options{Private: true}); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", st.Mode().Perm())
	}
	if err := os.Chmod(target, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(target, []Input{str("t", "a=$A$A\n")}, vars, Options{}); err != nil {
		t.Fatal(err)
	}
	// A public output does not keep the old 0640; 0666 minus the umask has owner rw.
	if st, _ := os.Stat(target); st.Mode().Perm() == 0o640 || st.Mode().Perm()&0o600 != 0o600 {
		t.Errorf("rewritten file mode %v, want 0666 masked by the umask, not the old 0640", st.Mode().Perm())
	}
	if err := WriteFile(target, []Input{str("t", "a=$MISSING\n")}, vars, Options{}); err == nil {
		t.Fatal("want a problem")
	}
	if b, _ := os.ReadFile(target); string(b) != "a=11\n" {
		t.Errorf("target changed by a failed render: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if err := WriteFile(dir, []Input{str("t", "x")}, vars, Options{}); err == nil {
		t.Error("writing over a directory must fail")
	}
}

func TestListAndCheck(t *testing.T) {
	refs, err := References([]Input{str("t", "$A ${B:-b1} ${B-b2} ${C:+c} ${D:?d}\n$A\n")}, false)
	if err != nil {
		t.Fatal(err)
	}
	vars := List(refs)
	if len(vars) != 4 {
		t.Fatalf("%+v", vars)
	}
	a, b, c, d := vars[0], vars[1], vars[2], vars[3]
	if !a.Required || strings.Join(a.Where, ",") != "t:1:1,t:2:1" {
		t.Errorf("A: %+v", a)
	}
	if b.Required || !b.HasDefault || b.Default != "b1" {
		t.Errorf("B: %+v (the first default wins)", b)
	}
	if c.Required || c.HasDefault || !d.Required {
		t.Errorf("C: %+v D: %+v", c, d)
	}
	got := Check(vars, func(name string) (Var, bool) {
		if name == "A" {
			return Var{Value: "1", Source: "environment"}, true
		}
		return Var{}, false
	})
	want := []Status{Set, Defaulted, Defaulted, Undefined}
	for i, r := range got {
		if r.Status != want[i] {
			t.Errorf("%s: %s, want %s", r.Name, r.Status, want[i])
		}
	}
	if names := UndefinedNames(got); len(names) != 1 || names[0] != "D" {
		t.Errorf("undefined: %v", names)
	}
	_, err = References([]Input{str("x", "${"), str("y", "${1}")}, false)
	var ps subst.Problems
	if !errors.As(err, &ps) || len(ps) != 2 {
		t.Errorf("invalid templates in every input must be reported: %v", err)
	}
}
