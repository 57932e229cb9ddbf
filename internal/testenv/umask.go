package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// UmaskedMode is the mode a file created 0666 gets in dir under the process's umask: what a
// public output must have, whatever the file it replaces had.
func UmaskedMode(tb testing.TB, dir string) os.FileMode {
	tb.Helper()
	probe := filepath.Join(dir, ".umask-probe")
	f, err := os.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := f.Stat()
	f.Close()
	os.Remove(probe)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Mode().Perm()
}
