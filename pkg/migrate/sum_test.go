package migrate

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/safefile"
)

// sumDir is a migrations directory for the sum file tests: two migrations with rollbacks (one
// with CRLF line endings and a byte order mark) and one without.
func sumDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "migrations")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"0001_users.sql":          "CREATE TABLE users (id int);\n",
		"0001_users.rollback.sql": "DROP TABLE users;\n",
		"0002_index.sql":          "CREATE INDEX users_id ON users (id);\r\n",
		"0010_tags.sql":           "CREATE TABLE tags (id int);\n",
		"0010_tags.rollback.sql":  "\xef\xbb\xbfDROP TABLE tags;\r\n",
		"README.md":               "not a migration\n",
	} {
		writeFile(t, filepath.Join(dir, name), body)
	}
	return dir
}

func loadSumDir(t *testing.T, dir string, opts ...LoadOption) []*Migration {
	t.Helper()
	migs, err := LoadDir(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return migs
}

func hexSum(s string) string { return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(s))) }

// assertSumError checks that err is a *SumError (exit 3) saying exactly want.
func assertSumError(t *testing.T, err error, want string) {
	t.Helper()
	var se *SumError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T), want a *SumError", err, err)
	}
	if exitcode.Of(err) != exitcode.Check {
		t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Check)
	}
	if err.Error() != want {
		t.Errorf("err =\n  %s\nwant\n  %s", err, want)
	}
}

func TestSumWriteThenCheck(t *testing.T) {
	dir := sumDir(t)
	migs := loadSumDir(t, dir)
	if err := CheckSum(dir, migs); err != nil {
		t.Fatalf("no sum file: %v, want nil", err)
	}
	if err := WriteSum(dir, migs); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, SumFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The checksums are the ledger's: CRLF read as LF, nothing else changed (the BOM stays).
	body := "0001_users.sql " + hexSum("CREATE TABLE users (id int);\n") + "\n" +
		"0001_users.rollback.sql " + hexSum("DROP TABLE users;\n") + "\n" +
		"0002_index.sql " + hexSum("CREATE INDEX users_id ON users (id);\n") + "\n" +
		"0010_tags.sql " + hexSum("CREATE TABLE tags (id int);\n") + "\n" +
		"0010_tags.rollback.sql " + hexSum("\xef\xbb\xbfDROP TABLE tags;\n") + "\n"
	want := "sum1 " + hexSum(body) + "\n" + body
	if string(data) != want {
		t.Fatalf("sum file:\n%s\nwant:\n%s", data, want)
	}
	if got := "sha256:" + migs[0].Checksum; !strings.Contains(string(data), "0001_users.sql "+got+"\n") {
		t.Errorf("the entry of 0001_users.sql is not its Migration.Checksum %s", got)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if err := CheckSum(dir, migs); err != nil {
		t.Fatalf("CheckSum after WriteSum: %v", err)
	}
	// The same files give the same bytes, and an unchanged file is not rewritten.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	if err := WriteSum(dir, loadSumDir(t, dir)); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(path)
	st, _ = os.Stat(path)
	if string(again) != want || !st.ModTime().Equal(old) {
		t.Errorf("a second WriteSum changed the file (mtime %v, was %v)", st.ModTime(), old)
	}
	// A sum file with CRLF line endings (a checkout converting them) still matches.
	writeFile(t, path, strings.ReplaceAll(want, "\n", "\r\n"))
	if err := CheckSum(dir, migs); err != nil {
		t.Errorf("CRLF sum file: %v", err)
	}
}

// TestSumFromTheCache: a load that took the files, rollbacks unread, from LoadDir's cache
// gives the same sum file as one that read every file, and a rollback changed after the cache
// was made is still seen.
func TestSumFromTheCache(t *testing.T) {
	dir := sumDir(t)
	lowCacheMin := func(c *loadConfig) error { c.cacheMin = 0; return nil }
	cache := WithCache(filepath.Join(t.TempDir(), "cache"))
	clock := WithLoadClock(func() time.Time { return time.Now().Add(time.Hour) }) // no file is racy
	plain, err := SumText(loadSumDir(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	loadSumDir(t, dir, lowCacheMin, cache, clock) // fills the cache
	cached := loadSumDir(t, dir, lowCacheMin, cache, clock)
	if cached[0].Down.lazy.path == "" {
		t.Fatal("the second load read the rollback: the test does not test the cache")
	}
	got, err := SumText(cached)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(plain) {
		t.Fatalf("sum from the cache:\n%s\nfrom the files:\n%s", got, plain)
	}
	if err := WriteSum(dir, cached); err != nil {
		t.Fatal(err)
	}
	cached = loadSumDir(t, dir, lowCacheMin, cache, clock)
	if err := CheckSum(dir, cached); err != nil {
		t.Fatalf("CheckSum of a cached load: %v", err)
	}
	writeFile(t, filepath.Join(dir, "0001_users.rollback.sql"), "DROP TABLE users CASCADE;\n")
	err = CheckSum(dir, loadSumDir(t, dir, lowCacheMin, cache, clock))
	assertSumError(t, err, filepath.Join(dir, SumFile)+":3: 0001_users.rollback.sql changed since `ps-migrate hash` (checksum "+
		hexSum("DROP TABLE users;\n")[:19]+"… in the sum file, "+hexSum("DROP TABLE users CASCADE;\n")[:19]+"… now): run `ps-migrate hash` if the change is meant")
}

func TestSumCheckFindsTheFirstWrongThing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
		want   string // after "<dir>/poststack.sum"
	}{
		{
			name: "changed migration",
			change: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "0002_index.sql"), "CREATE INDEX CONCURRENTLY users_id ON users (id);\n")
			},
			want: ":4: 0002_index.sql changed since `ps-migrate hash` (checksum " + hexSum("CREATE INDEX users_id ON users (id);\n")[:19] +
				"… in the sum file, " + hexSum("CREATE INDEX CONCURRENTLY users_id ON users (id);\n")[:19] + "… now): run `ps-migrate hash` if the change is meant",
		},
		{
			name:   "added migration",
			change: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "0011_more.sql"), "select 1;\n") },
			want:   ": 0011_more.sql is not in the sum file: run `ps-migrate hash` after adding it",
		},
		{
			name: "added rollback",
			change: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "0002_index.rollback.sql"), "DROP INDEX users_id;\n")
			},
			want: ": 0002_index.rollback.sql is not in the sum file: run `ps-migrate hash` after adding it",
		},
		{
			name: "removed migration",
			change: func(t *testing.T, dir string) {
				for _, f := range []string{"0010_tags.sql", "0010_tags.rollback.sql"} {
					if err := os.Remove(filepath.Join(dir, f)); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: ":5: lists 0010_tags.sql, which is gone: run `ps-migrate hash` if it was removed on purpose",
		},
		{
			name: "hand-edited line",
			change: func(t *testing.T, dir string) {
				editSum(t, dir, func(s string) string {
					return strings.Replace(s, "0002_index.sql "+hexSum("CREATE INDEX users_id ON users (id);\n"),
						"0002_index.sql "+hexSum("anything"), 1)
				})
			},
			want: ":1: the first line does not match the rest: the file was edited by hand or merged badly; run `ps-migrate hash` to write it again from the migration files",
		},
		{
			name: "line dropped by hand",
			change: func(t *testing.T, dir string) {
				editSum(t, dir, func(s string) string { return s[:strings.LastIndex(s[:len(s)-1], "\n")+1] })
			},
			want: ":1: the first line does not match the rest: the file was edited by hand or merged badly; run `ps-migrate hash` to write it again from the migration files",
		},
		{
			name: "git conflict markers",
			change: func(t *testing.T, dir string) {
				editSum(t, dir, func(s string) string {
					first, rest, _ := strings.Cut(s, "\n")
					return "<<<<<<< HEAD\n" + first + "\n=======\nsum1 " + hexSum("other") + "\n>>>>>>> feature\n" + rest
				})
			},
			want: ":1: git conflict marker <<<<<<<: two branches changed the migrations; keep the files of both (each migration with its own version), then run `ps-migrate hash`",
		},
		{
			name: "malformed line",
			change: func(t *testing.T, dir string) {
				body := "0001_users.sql sha256:" + strings.Repeat("0", 64) + "\n0001_users.rollback.sql md5:abc\n"
				writeFile(t, filepath.Join(dir, SumFile), "sum1 "+hexSum(body)+"\n"+body)
			},
			want: `:3: malformed line "0001_users.rollback.sql md5:abc": want ` + "`<migration file> sha256:<hex>`",
		},
		{
			name: "listed twice",
			change: func(t *testing.T, dir string) {
				line := "0001_users.sql sha256:" + strings.Repeat("0", 64) + "\n"
				writeFile(t, filepath.Join(dir, SumFile), "sum1 "+hexSum(line+line)+"\n"+line+line)
			},
			want: ":3: lists 0001_users.sql twice (also line 2)",
		},
		{
			name:   "not a sum file",
			change: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, SumFile), "hello\n") },
			want:   ":1: the first line is not `sum1 sha256:<hex>`: run `ps-migrate hash` to write the file again",
		},
		{
			name: "newer format",
			change: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, SumFile), "sum2 blake3:00\n")
			},
			want: `:1: format "sum2" is not one this ps-migrate reads (sum1): a newer ps-migrate wrote it`,
		},
		{
			name:   "empty",
			change: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, SumFile), "") },
			want:   ":1: is empty: run `ps-migrate hash` to write it",
		},
		{
			name:   "cut short",
			change: func(t *testing.T, dir string) { editSum(t, dir, func(s string) string { return s[:len(s)-3] }) },
			want:   ":6: the last line does not end in a newline: the file was cut or edited by hand; run `ps-migrate hash` to write it again",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := sumDir(t)
			if err := WriteSum(dir, loadSumDir(t, dir)); err != nil {
				t.Fatal(err)
			}
			tc.change(t, dir)
			assertSumError(t, CheckSum(dir, loadSumDir(t, dir)), filepath.Join(dir, SumFile)+tc.want)
			// hash writes it again from the files, and then it matches.
			migs := loadSumDir(t, dir)
			if err := WriteSum(dir, migs); err != nil {
				t.Fatal(err)
			}
			if err := CheckSum(dir, migs); err != nil {
				t.Errorf("after WriteSum: %v", err)
			}
		})
	}
}

func editSum(t *testing.T, dir string, edit func(string) string) {
	t.Helper()
	path := filepath.Join(dir, SumFile)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, edit(string(data)))
}

// assertRefusedSum checks that err is the *safefile.Error (exit 2) for the sum file of dir,
// saying want, and holding nothing of the secret.
func assertRefusedSum(t *testing.T, err error, dir, want string) {
	t.Helper()
	var fe *safefile.Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v (%T), want a *safefile.Error", err, err)
	}
	if exitcode.Of(err) != exitcode.Usage {
		t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
	}
	if fe.Path != filepath.Join(dir, SumFile) || !strings.Contains(fe.Reason, want) {
		t.Errorf("err = %v, want one for %s saying %q", err, filepath.Join(dir, SumFile), want)
	}
	if strings.Contains(err.Error(), "TOPSECRET") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the error holds the secret: %v", err)
	}
}

// TestHostileSumSymlink: a checkout that plants poststack.sum as a symbolic link (to a secret
// outside, or to a sum file that matches) is refused, neither read nor written through.
func TestHostileSumSymlink(t *testing.T) {
	_, dir, secret := hostileProject(t)
	migs := loadSumDir(t, dir)
	link := filepath.Join(dir, SumFile)
	symlink(t, secret, link)
	assertRefusedSum(t, CheckSum(dir, migs), dir, "is a symbolic link, not read")
	assertRefusedSum(t, WriteSum(dir, migs), dir, "is a symbolic link")
	if data, err := os.ReadFile(secret); err != nil || string(data) != secretSQL {
		t.Errorf("the link's target changed: %q, %v", data, err)
	}
	if target, err := os.Readlink(link); err != nil || target != secret {
		t.Errorf("the link changed: %q, %v", target, err)
	}
	// A link to a good sum file inside the directory is refused too.
	os.Remove(link)
	good := filepath.Join(dir, "real.sum")
	text, err := SumText(migs)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, good, string(text))
	symlink(t, "real.sum", link)
	assertRefusedSum(t, CheckSum(dir, migs), dir, "is a symbolic link, not read")
}

func TestHostileSumNotRegular(t *testing.T) {
	_, dir, _ := hostileProject(t)
	migs := loadSumDir(t, dir)
	path := filepath.Join(dir, SumFile)
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan [2]error, 1)
	go func() { done <- [2]error{CheckSum(dir, migs), WriteSum(dir, migs)} }()
	select {
	case errs := <-done:
		assertRefusedSum(t, errs[0], dir, "is a named pipe (FIFO), not a regular file")
		assertRefusedSum(t, errs[1], dir, "is a named pipe (FIFO), not a regular file")
	case <-time.After(time.Second):
		t.Fatal("CheckSum or WriteSum blocked on a FIFO")
	}
	os.Remove(path)
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	assertRefusedSum(t, CheckSum(dir, migs), dir, "is a directory, not a regular file")
	assertRefusedSum(t, WriteSum(dir, migs), dir, "is a directory, not a regular file")
}

func TestHostileSumOversize(t *testing.T) {
	_, dir, _ := hostileProject(t)
	migs := loadSumDir(t, dir)
	path := filepath.Join(dir, SumFile)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: refused by its size before a byte is read.
	if err := f.Truncate(MaxSumSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	assertRefusedSum(t, CheckSum(dir, migs), dir, "is larger than 8 MiB")
	// hash replaces it.
	if err := WriteSum(dir, migs); err != nil {
		t.Fatal(err)
	}
	if err := CheckSum(dir, migs); err != nil {
		t.Fatal(err)
	}
}
