package secret

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPasswordGeneratedOnce(t *testing.T) {
	dir := t.TempDir()
	pw, err := Password(dir, "myapp", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if len(pw) != PasswordLength || strings.Trim(pw, alphabet) != "" {
		t.Errorf("password %q: want %d letters and digits", pw, PasswordLength)
	}
	again, err := Password(dir, "myapp", "dev")
	if err != nil || again != pw {
		t.Errorf("second call = %q, %v; want %q", again, err, pw)
	}
	other, err := Password(dir, "myapp", "test")
	if err != nil || other == pw {
		t.Errorf("other environment = %q, %v; want a different password", other, err)
	}
	state := filepath.Join(dir, StateDir)
	for path, want := range map[string]os.FileMode{
		state: 0o700 | os.ModeDir,
		filepath.Join(state, "myapp-dev.password"): 0o600,
	} {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode() != want {
			t.Errorf("%s mode %v, want %v", path, info.Mode(), want)
		}
	}
	if data, err := os.ReadFile(filepath.Join(state, ".gitignore")); err != nil || string(data) != "*\n" {
		t.Errorf(".gitignore = %q, %v", data, err)
	}
	entries, _ := os.ReadDir(state)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestPasswordConcurrent(t *testing.T) {
	dir := t.TempDir()
	const n = 16
	got := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = Password(dir, "p", "e")
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] != got[0] {
			t.Errorf("caller %d: %q, %v; caller 0: %q", i, got[i], errs[i], got[0])
		}
	}
}

// TestPasswordConcurrentProcesses runs the test binary several times at
// once against one directory: separate processes must agree too.
func TestPasswordConcurrentProcesses(t *testing.T) {
	if dir := os.Getenv("SECRET_TEST_CHILD_DIR"); dir != "" {
		pw, err := Password(dir, "p", "e")
		if err != nil {
			t.Fatal(err)
		}
		os.Stdout.WriteString("PW=" + pw + "\n")
		return
	}
	dir := t.TempDir()
	const n = 6
	outs := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestPasswordConcurrentProcesses$")
			cmd.Env = append(os.Environ(), "SECRET_TEST_CHILD_DIR="+dir)
			outs[i], errs[i] = cmd.Output()
		}()
	}
	wg.Wait()
	var first string
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("child %d: %v\n%s", i, errs[i], outs[i])
		}
		_, rest, ok := strings.Cut(string(outs[i]), "PW=")
		pw, _, _ := strings.Cut(rest, "\n")
		if !ok || len(pw) != PasswordLength {
			t.Fatalf("child %d output %q", i, outs[i])
		}
		if first == "" {
			first = pw
		} else if pw != first {
			t.Errorf("child %d got %q, child 0 %q", i, pw, first)
		}
	}
}

func TestPasswordRefuses(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string)
		project string
		want    string
	}{
		{"group readable", func(t *testing.T, dir string) {
			writeState(t, dir, "p-e.password", "abc\n", 0o640)
		}, "p", "accessible by group or others (mode 0640); fix it with: chmod 600 "},
		{"world readable", func(t *testing.T, dir string) {
			writeState(t, dir, "p-e.password", "abc\n", 0o604)
		}, "p", "(mode 0604)"},
		{"empty", func(t *testing.T, dir string) {
			writeState(t, dir, "p-e.password", "\n", 0o600)
		}, "p", "is empty"},
		{"path in name", func(*testing.T, string) {}, "../x", "invalid project or environment name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.setup(t, dir)
			_, err := Password(dir, tt.project, "e")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
	// A stored password that is fine is returned as stored.
	dir := t.TempDir()
	writeState(t, dir, "p-e.password", "kept-as-is\n", 0o600)
	if pw, err := Password(dir, "p", "e"); err != nil || pw != "kept-as-is" {
		t.Errorf("stored password = %q, %v", pw, err)
	}
}

func writeState(t *testing.T, dir, name, content string, mode os.FileMode) {
	t.Helper()
	state := filepath.Join(dir, StateDir)
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(state, name)
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestGenerate(t *testing.T) {
	a, err := Generate(32)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Generate(32)
	if a == b || len(a) != 32 {
		t.Errorf("Generate: %q %q", a, b)
	}
}

func TestMask(t *testing.T) {
	m := NewMasker("p@ss:w/rd%", "hunter22", "abc", "", "hunter22x")
	tests := []struct{ in, want string }{
		{"password is p@ss:w/rd% here", "password is **** here"},
		{"postgres://u:p%40ss%3Aw%2Frd%25@h/db", "postgres://u:****@h/db"},
		{"/p@ss:w%2Frd%25/", "/****/"},
		{"?pw=p%40ss%3Aw%2Frd%25&x=1", "?pw=****&x=1"},
		{"p%40ss%3Aw%2Frd%25", "****"},
		{"hunter22 hunter22x", "**** ****"},
		{"abcdef abc", "abcdef abc"},
		{"abc", "****"},
		{"nothing secret", "nothing secret"},
	}
	for _, tt := range tests {
		if got := m.Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	pats := m.Patterns()
	if len(pats) == 0 || pats[0] != "p%40ss%3Aw%2Frd%25" {
		t.Errorf("Patterns() = %q: want the longest form first", pats)
	}
	if got := NewMasker().Mask("x"); got != "x" {
		t.Errorf("empty masker changed text: %q", got)
	}
}

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres://user:secret@localhost:5432/db?sslmode=disable", "postgres://user:****@localhost:5432/db?sslmode=disable"},
		{"postgres://user:p%40ss%3Aw%2Frd%25@h/db", "postgres://user:****@h/db"},
		{"postgres://user:p@ss@h/db", "postgres://user:****@h/db"},
		{"postgres://user:pa/ss@h/db", "postgres://user:****@h/db"},
		{"postgres://user:p@ss/w: rd #%+&=?x@h/db", "postgres://user:****@h/db"},
		{"postgres://user:p@ss/w@h/db?email=a@b", "postgres://user:****@h/db?email=a@b"},
		{"postgres://user@h:5432/db", "postgres://user@h:5432/db"},
		{"postgres://h:5432/db?email=a@b", "postgres://h:5432/db?email=a@b"},
		{"postgres://u:pw@h/db?email=a@b", "postgres://u:****@h/db?email=a@b"},
		{"postgres://[::1]:5432/db", "postgres://[::1]:5432/db"},
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		if got := MaskURL(tt.in); got != tt.want {
			t.Errorf("MaskURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAdminPasswordIsSeparate(t *testing.T) {
	dir := t.TempDir()
	app, err := Password(dir, "myapp", "dev")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := AdminPassword(dir, "myapp", "dev")
	if err != nil || admin == app || len(admin) != PasswordLength {
		t.Fatalf("AdminPassword = %q, %v; want a different %d-character password", admin, err, PasswordLength)
	}
	again, err := AdminPassword(dir, "myapp", "dev")
	if err != nil || again != admin {
		t.Errorf("second call = %q, %v; want %q", again, err, admin)
	}
	info, err := os.Stat(filepath.Join(dir, StateDir, "myapp-dev.admin-password"))
	if err != nil || info.Mode() != 0o600 {
		t.Errorf("admin password file: %v, %v", info, err)
	}
}
