package secret

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
)

// outside is a directory of someone else's that an attack points into, with
// what it held before the attack.
type outside struct {
	dir   string
	files map[string]string
	mtime time.Time
}

func newOutside(t *testing.T, files map[string]string) outside {
	t.Helper()
	o := outside{dir: t.TempDir(), files: files, mtime: time.Now().Add(-time.Hour).Truncate(time.Second)}
	for name, content := range files {
		p := filepath.Join(o.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, o.mtime, o.mtime); err != nil {
			t.Fatal(err)
		}
	}
	return o
}

func (o outside) path(name string) string { return filepath.Join(o.dir, name) }

// assertUntouched checks that o holds exactly what it held, unmodified.
func (o outside) assertUntouched(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(o.files) {
		t.Errorf("files created in %s: %v", o.dir, entries)
	}
	for name, content := range o.files {
		p := o.path(name)
		b, err := os.ReadFile(p)
		if err != nil || string(b) != content {
			t.Errorf("%s changed: %q, %v", p, b, err)
		}
		if st, err := os.Stat(p); err != nil || !st.ModTime().Equal(o.mtime) || st.Mode().Perm() != 0o600 {
			t.Errorf("%s modified: %v", p, err)
		}
	}
}

const sshKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"

// TestAttackStateDir: a repository ships .poststack as something other than
// a private directory of the user's. Each is exit 2 naming the fix; no
// password comes out of it and nothing is written through it.
func TestAttackStateDir(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, project string, o outside)
		want  func(state string) string
	}{
		{"symlink to a directory of the attacker's", func(t *testing.T, project string, o outside) {
			mustSymlink(t, o.dir, filepath.Join(project, StateDir))
		}, func(s string) string {
			return s + " is a symlink, so secrets would be kept wherever it points; remove it (rm " + s + ") and run again"
		}},
		{"dangling symlink", func(t *testing.T, project string, o outside) {
			mustSymlink(t, o.path("made-by-us"), filepath.Join(project, StateDir))
		}, func(s string) string { return s + " is a symlink" }},
		{"a regular file", func(t *testing.T, project string, o outside) {
			if err := os.WriteFile(filepath.Join(project, StateDir), []byte("x"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, func(s string) string { return s + " is not a directory; remove it (rm " + s + ") and run again" }},
		{"mode 0755", func(t *testing.T, project string, o outside) {
			writeState(t, project, "p-e.password", "shipped-by-the-repo\n", 0o600)
			chmod(t, filepath.Join(project, StateDir), 0o755)
		}, func(s string) string {
			return s + " has mode 0755, open to group or others; fix it with: chmod 700 " + s
		}},
		{"mode 0707", func(t *testing.T, project string, o outside) {
			writeState(t, project, "p-e.password", "shipped-by-the-repo\n", 0o600)
			chmod(t, filepath.Join(project, StateDir), 0o707)
		}, func(s string) string { return "has mode 0707" }},
		{"owned by someone else", func(t *testing.T, project string, o outside) {
			if os.Getuid() != 0 {
				t.Skip("changing a directory's owner needs root")
			}
			writeState(t, project, "p-e.password", "shipped-by-the-repo\n", 0o600)
			if err := os.Chown(filepath.Join(project, StateDir), 12345, 12345); err != nil {
				t.Fatal(err)
			}
		}, func(s string) string {
			return s + " is owned by uid 12345, not by you (uid 0); remove it (rm -r " + s + ") or run as its owner"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutside(t, map[string]string{"p-e.password": "attacker-chosen\n"})
			project := t.TempDir()
			tt.setup(t, project, o)
			state := filepath.Join(project, StateDir)
			for _, get := range []func(string, string, string) (string, error){Password, AdminPassword} {
				pw, err := get(project, "p", "e")
				if err == nil || !strings.Contains(err.Error(), tt.want(state)) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.want(state))
				}
				if code := exitcode.Of(err); code != exitcode.Usage {
					t.Errorf("exit code %d, want 2", code)
				}
				if pw != "" {
					t.Errorf("a password came out of a refused state directory: %q", pw)
				}
			}
			o.assertUntouched(t)
		})
	}
}

// TestAttackPasswordFile: .poststack/p-e.password is planted as a link to a
// file of the user's (an SSH key, 0600 like a password file) or as some
// other non-password. The target is never read — its content would become
// the password, go to the database and into containers — nor changed.
func TestAttackPasswordFile(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		setup func(t *testing.T, path string, o outside)
		want  string
	}{
		{"symlink to an SSH key", "p-e.password", func(t *testing.T, path string, o outside) {
			mustSymlink(t, o.path("id_rsa"), path)
		}, "is a symlink, not a password of ours; remove it (rm "},
		{"admin password symlink", "p-e.admin-password", func(t *testing.T, path string, o outside) {
			mustSymlink(t, o.path("id_rsa"), path)
		}, "is a symlink"},
		{"relative symlink inside the state dir", "p-e.password", func(t *testing.T, path string, o outside) {
			writeState(t, filepath.Dir(filepath.Dir(path)), "other", sshKey, 0o600)
			mustSymlink(t, "other", path)
		}, "is a symlink"},
		{"dangling symlink", "p-e.password", func(t *testing.T, path string, o outside) {
			mustSymlink(t, o.path("made-by-us"), path)
		}, "is a symlink"},
		{"fifo", "p-e.password", func(t *testing.T, path string, o outside) {
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file; remove it (rm "},
		{"a directory", "p-e.password", func(t *testing.T, path string, o outside) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, "is not a regular file"},
		{"huge", "p-e.password", func(t *testing.T, path string, o outside) {
			if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "is 1048576 bytes, not a password of ours"},
		{"owned by someone else", "p-e.password", func(t *testing.T, path string, o outside) {
			if os.Getuid() != 0 {
				t.Skip("changing a file's owner needs root")
			}
			if err := os.WriteFile(path, []byte("theirs\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, 12345, 12345); err != nil {
				t.Fatal(err)
			}
		}, "is owned by uid 12345, not by you (uid 0); remove it (rm "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOutside(t, map[string]string{"id_rsa": sshKey})
			project := t.TempDir()
			state := filepath.Join(project, StateDir)
			if err := os.Mkdir(state, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(state, tt.file)
			tt.setup(t, path, o)
			get := Password
			if strings.HasSuffix(tt.file, ".admin-password") {
				get = AdminPassword
			}
			done := make(chan struct{})
			var pw string
			var err error
			go func() { defer close(done); pw, err = get(project, "p", "e") }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("reading the password file blocked")
			}
			if err == nil || !strings.Contains(err.Error(), path+" "+tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, path+" "+tt.want)
			}
			if code := exitcode.Of(err); code != exitcode.Usage {
				t.Errorf("exit code %d, want 2", code)
			}
			if pw != "" || strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("the planted file's content came out: pw %q, err %v", pw, err)
			}
			o.assertUntouched(t)
			if _, err := os.Lstat(o.path("made-by-us")); err == nil {
				t.Error("a dangling link's target was created")
			}
		})
	}
}

// TestStateDirStillWorks: the checks accept what poststack itself creates.
func TestStateDirStillWorks(t *testing.T) {
	project := t.TempDir()
	pw, err := Password(project, "p", "e")
	if err != nil || len(pw) != PasswordLength {
		t.Fatalf("first use: %q, %v", pw, err)
	}
	again, err := Password(project, "p", "e")
	if err != nil || again != pw {
		t.Fatalf("second use: %q, %v (first %q)", again, err, pw)
	}
	st, err := os.Lstat(filepath.Join(project, StateDir))
	if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("state dir: %v, %v", st.Mode(), err)
	}
	st, err = os.Lstat(filepath.Join(project, StateDir, "p-e.password"))
	if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v, %v", st.Mode(), err)
	}
	if _, err := AdminPassword(project, "p", "e"); err != nil {
		t.Errorf("admin password: %v", err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
