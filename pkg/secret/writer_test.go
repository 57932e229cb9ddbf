package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const writerSecret = "s3cr3t-p@ss w0rd"

func TestLineWriterMasksSecretSplitAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	w := NewMasker(writerSecret).Writer(&out)
	for _, p := range []string{"step 1\nconnecting with s3cr3t", "-p@ss", " w0rd and more\nlast line without newline ", writerSecret} {
		if n, err := w.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if got, want := out.String(), "step 1\nconnecting with **** and more\n"; got != want {
		t.Errorf("before Close the writer passed on %q, want %q (the last line held)", got, want)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "step 1\nconnecting with **** and more\nlast line without newline ****"; got != want {
		t.Errorf("after Close: %q, want %q", got, want)
	}
}

func TestLineWriterMasksURLPasswordsAndKeepsLines(t *testing.T) {
	var out bytes.Buffer
	w := NewMasker().Writer(&out)
	in := "a\r\n\nRUN echo postgres://app:hunter2%40x@db:5432/app\r\nb\n"
	for i := range len(in) {
		// One byte at a time: the worst split a pipe can make.
		if _, err := w.Write([]byte{in[i]}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "a\r\n\nRUN echo postgres://app:****@db:5432/app\r\nb\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestLineWriterLongLine: a line longer than MaxHeldLine goes out in pieces
// of MaxHeldLine bytes, each masked on its own, so that at most MaxHeldLine
// bytes are held. A secret wholly inside a piece is masked; one that
// straddles the end of a piece is masked in neither, and the file gets it
// whole: that is the price of bounding what is held.
func TestLineWriterLongLine(t *testing.T) {
	var out bytes.Buffer
	w := NewMasker(writerSecret).Writer(&out)
	pad := strings.Repeat("x", MaxHeldLine-5)
	// Piece 1: pad and the first 5 bytes of the straddling secret; piece 2:
	// the rest of it, a secret wholly inside, and y's up to MaxHeldLine.
	ys := strings.Repeat("y", MaxHeldLine)
	if _, err := w.Write([]byte(pad + writerSecret + " then " + writerSecret + " " + ys)); err != nil {
		t.Fatal(err)
	}
	if want := 2*MaxHeldLine - len(writerSecret) + len(Mask); out.Len() != want {
		t.Errorf("with no newline, %d bytes passed on; want the two full pieces, %d bytes once masked", out.Len(), want)
	}
	if _, err := w.Write([]byte("\nnext " + writerSecret + "\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := pad + writerSecret + " then **** " + ys + "\nnext ****\n"
	if got := out.String(); got != want {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("differs at byte %d of %d:\n got …%.60q\nwant …%.60q", i, len(want), got[max(i-20, 0):], want[max(i-20, 0):])
	}
}

// TestLineWriterWriteError: once the writer beneath fails, every call
// reports it and nothing more is written.
func TestLineWriterWriteError(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	w := NewMasker(writerSecret).Writer(f)
	if n, err := w.Write([]byte("held")); err != nil || n != 4 {
		t.Fatalf("a partial line is held, not written: %d, %v", n, err)
	}
	if n, err := w.Write([]byte(" line\n")); !errors.Is(err, os.ErrClosed) || n != 0 {
		t.Fatalf("Write to a closed file = %d, %v; want 0, os.ErrClosed", n, err)
	}
	if _, err := w.Write([]byte("more\n")); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a later Write = %v, want the first error", err)
	}
	if err := w.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Close = %v, want the first error", err)
	}
}
