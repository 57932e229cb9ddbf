package logging

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/secret"
)

func TestHumanOutput(t *testing.T) {
	tests := []struct {
		name  string
		level slog.Level
		log   func(l *slog.Logger)
		want  string
	}{
		{
			name:  "info line with attrs",
			level: slog.LevelInfo,
			log:   func(l *slog.Logger) { l.Info("started", "port", 5433, "name", "my db") },
			want:  "info: started port=5433 name=\"my db\"\n",
		},
		{
			name:  "debug filtered at info",
			level: slog.LevelInfo,
			log:   func(l *slog.Logger) { l.Debug("noise"); l.Warn("careful") },
			want:  "warn: careful\n",
		},
		{
			name:  "debug shown at debug",
			level: slog.LevelDebug,
			log:   func(l *slog.Logger) { l.Debug("detail") },
			want:  "debug: detail\n",
		},
		{
			name:  "error only",
			level: slog.LevelError,
			log:   func(l *slog.Logger) { l.Warn("w"); l.Info("i"); l.Error("boom", "err", errors.New("x")) },
			want:  "error: boom err=x\n",
		},
		{
			name:  "groups and with",
			level: slog.LevelInfo,
			log: func(l *slog.Logger) {
				l.With("env", "dev").WithGroup("pg").Info("up", "port", 1, slog.Group("x", "y", true))
			},
			want: "info: up env=dev pg.port=1 pg.x.y=true\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l, c, err := New(Options{Level: tt.level, Human: &buf})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tt.log(l)
			if got := buf.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestColor(t *testing.T) {
	var buf bytes.Buffer
	if ColorEnabled(&buf, false) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if ColorEnabled(f, false) {
		t.Error("a regular file is not a terminal")
	}
	l, _, _ := New(Options{Human: &buf, Color: ColorEnabled(&buf, false)})
	l.Error("plain")
	if strings.Contains(buf.String(), "\x1b") {
		t.Errorf("escape codes in non-TTY output: %q", buf.String())
	}
	buf.Reset()
	l, _, _ = New(Options{Human: &buf, Color: true})
	l.Error("red")
	if !strings.HasPrefix(buf.String(), "\x1b[31merror\x1b[0m: red") {
		t.Errorf("colour output = %q", buf.String())
	}
}

func TestMasking(t *testing.T) {
	s := secret.NewMasker("hunter2", "", "postgres://u:hunter2@h/db")
	var human bytes.Buffer
	dir := t.TempDir()
	l, c, err := New(Options{Human: &human, Dir: dir, Mask: s.Mask})
	if err != nil {
		t.Fatal(err)
	}
	l.Info("connect postgres://u:hunter2@h/db", "url", "postgres://u:hunter2@h/db",
		"err", fmt.Errorf("dial: password hunter2 rejected"), slog.Group("g", "pw", "hunter2"))
	l.With("pw", "hunter2").Info("with")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"human": human.String(), "file": string(file)} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("%s output leaks the secret:\n%s", name, out)
		}
		if !strings.Contains(out, secret.Mask) {
			t.Errorf("%s output has no redaction marker:\n%s", name, out)
		}
	}
	if want := "info: connect **** url=**** err=\"dial: password **** rejected\" g.pw=****\n"; !strings.HasPrefix(human.String(), want) {
		t.Errorf("human = %q, want prefix %q", human.String(), want)
	}
}

func TestFileLogJSONAndLevels(t *testing.T) {
	dir := t.TempDir()
	var human bytes.Buffer
	l, c, err := New(Options{Level: slog.LevelWarn, Human: &human, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("dbg")
	l.Info("inf", "n", 1)
	l.Warn("wrn", "s", "a\nb")
	c.Close()
	if human.String() != "warn: wrn s=\"a\\nb\"\n" {
		t.Errorf("human = %q", human.String())
	}
	f, err := os.Open(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("invalid JSON line %q: %v", sc.Text(), err)
		}
		msgs = append(msgs, m["msg"].(string))
	}
	// The file keeps INFO even though the terminal shows only WARN.
	if got := strings.Join(msgs, ","); got != "inf,wrn" {
		t.Errorf("file messages = %s, want inf,wrn", got)
	}
	st, _ := os.Stat(filepath.Join(dir, FileName))
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", st.Mode().Perm())
	}
}

func TestFileLogOnlyWhenDirExistsOrExplicit(t *testing.T) {
	tests := []struct {
		name     string
		explicit bool
		wantFile bool
	}{
		{"missing dir, default", false, false},
		{"missing dir, explicit", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "logs")
			l, c, err := New(Options{Dir: dir, DirExplicit: tt.explicit})
			if err != nil {
				t.Fatal(err)
			}
			l.Info("x")
			c.Close()
			_, err = os.Stat(filepath.Join(dir, FileName))
			if got := err == nil; got != tt.wantFile {
				t.Errorf("file exists = %v, want %v (stat err %v)", got, tt.wantFile, err)
			}
			if !tt.explicit {
				if _, err := os.Stat(dir); err == nil {
					t.Error("log dir was created although not explicit")
				}
			}
		})
	}
	notDir := filepath.Join(t.TempDir(), "f")
	os.WriteFile(notDir, nil, 0o600)
	if _, _, err := New(Options{Dir: notDir}); err == nil {
		t.Error("a file as log dir: want error")
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.log")
	r, err := OpenRotatingFile(path, 10, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n", "ffff\n", "ggggggggggggggg\n", "h\n"} {
		if _, err := r.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"p.log":   "h\n",
		"p.log.1": "ggggggggggggggg\n",
		"p.log.2": "eeee\nffff\n",
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files = %v, want %d files", names, len(want))
	}
	for name, content := range want {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if string(b) != content {
			t.Errorf("%s = %q, want %q", name, b, content)
		}
	}
	if _, err := r.Write([]byte("x")); err == nil {
		t.Error("write after close: want error")
	}
}

func TestRotationAppendsToExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.log")
	os.WriteFile(path, []byte("12345678\n"), 0o600)
	r, err := OpenRotatingFile(path, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Write([]byte("ab\n"))
	r.Close()
	b, _ := os.ReadFile(path)
	if string(b) != "ab\n" {
		t.Errorf("content = %q, want rotation with no backups to start over", b)
	}
	if _, err := os.Stat(path + ".1"); err == nil {
		t.Error("backups=0 kept a backup")
	}
}

type fakeGrouper struct{ buf *bytes.Buffer }

func (g fakeGrouper) Group(t string) { fmt.Fprintf(g.buf, "::group::%s\n", t) }
func (g fakeGrouper) EndGroup()      { g.buf.WriteString("::endgroup::\n") }

func TestProgress(t *testing.T) {
	run := func(p Progress) {
		p.Start("postgres")
		p.Step("waiting")
		p.Start("inner")
		p.Done("inner", nil)
		p.Done("postgres", errors.New("pw=s3cret"))
	}
	s := secret.NewMasker("s3cret")
	tests := []struct {
		name string
		new  func(*bytes.Buffer) Progress
		want string
	}{
		{"plain", func(b *bytes.Buffer) Progress { return NewPlainProgress(b) },
			"postgres ...\n  waiting\ninner ...\ninner: done\npostgres: failed: pw=****\n"},
		{"tty", func(b *bytes.Buffer) Progress { return NewTTYProgress(b) },
			"\r\x1b[K… postgres\r\x1b[K… postgres: waiting\r\x1b[K… inner\r\x1b[K✓ inner\n\r\x1b[K✗ postgres: pw=****\n"},
		{"group", func(b *bytes.Buffer) Progress { return NewGroupProgress(fakeGrouper{b}, b) },
			"::group::postgres\nwaiting\ninner ...\npostgres: failed: pw=****\n::endgroup::\n"},
		{"nop", func(*bytes.Buffer) Progress { return NopProgress{} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			run(MaskProgress(tt.new(&b), s.Mask))
			if b.String() != tt.want {
				t.Errorf("got  %q\nwant %q", b.String(), tt.want)
			}
		})
	}
}
