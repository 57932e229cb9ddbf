package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/internal/testenv"
)

func regularMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		t.Fatalf("%s is %v of %d bytes, want a non-empty regular file", path, st.Mode(), st.Size())
	}
	return st.Mode().Perm()
}

// TestAttackBackupModes: `backup -o` over an existing world-readable file
// used to keep its mode, leaving a full data dump readable by every local
// user. A backup is 0600 always; dump-schema (a file for review, committed
// like a shell redirection's output) is 0666 masked by the umask, not the
// old file's mode. An output planted as a link is replaced, its target left
// alone.
func TestAttackBackupModes(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, basic)
	env := []string{"DATABASE_URL=" + db}
	if r := runIn(t, dir, env, "up"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	conn := connect(t, db)
	if _, err := conn.Exec(t.Context(), "INSERT INTO users VALUES (1, 'private@example.com')"); err != nil {
		t.Fatal(err)
	}

	backup := filepath.Join(dir, "db.dump")
	write(t, backup, "old")
	if err := os.Chmod(backup, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runIn(t, dir, env, "backup", "-o", "db.dump"); r.code != 0 {
		t.Fatalf("backup: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := regularMode(t, backup); got != 0o600 {
		t.Errorf("backup over a 0644 file has mode %04o, want 0600", got)
	}

	schema := filepath.Join(dir, "schema.sql")
	write(t, schema, "old")
	if err := os.Chmod(schema, 0o600); err != nil {
		t.Fatal(err)
	}
	if r := runIn(t, dir, env, "dump-schema", "-o", "schema.sql"); r.code != 0 {
		t.Fatalf("dump-schema: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, want := regularMode(t, schema), testenv.UmaskedMode(t, dir); got != want {
		t.Errorf("dump-schema over a 0600 file has mode %04o, want 0666 masked by the umask, %04o", got, want)
	}

	for _, cmd := range []string{"backup", "dump-schema"} {
		t.Run(cmd+" -o symlink", func(t *testing.T) {
			canary := filepath.Join(t.TempDir(), "bashrc")
			write(t, canary, "canary\n")
			old := time.Now().Add(-time.Hour).Truncate(time.Second)
			if err := os.Chtimes(canary, old, old); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(dir, cmd+".out")
			if err := os.Symlink(canary, link); err != nil {
				t.Fatal(err)
			}
			if r := runIn(t, dir, env, cmd, "-o", cmd+".out"); r.code != 0 {
				t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
			}
			regularMode(t, link)
			if b, _ := os.ReadFile(canary); string(b) != "canary\n" {
				t.Errorf("the link's target was written: %q", b)
			}
			if st, _ := os.Stat(canary); !st.ModTime().Equal(old) {
				t.Errorf("the link's target was modified at %v", st.ModTime())
			}
			if b, _ := os.ReadFile(link); cmd == "dump-schema" && !strings.Contains(string(b), "CREATE TABLE public.users") {
				t.Errorf("dump-schema output lacks the schema:\n%s", b)
			}
		})
	}
}
