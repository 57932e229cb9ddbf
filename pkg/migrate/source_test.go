package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/poststack/poststack/pkg/exitcode"
)

func TestLoadGood(t *testing.T) {
	fsys := files(map[string]string{
		"0002_users.sql":          "-- Description: the users\n--   poststack:no-transaction\n\nCREATE INDEX CONCURRENTLY x ON t (a);\r\n",
		"0002_users.rollback.sql": "DROP INDEX x;\n",
		"10_later.sql":            "select 1;\n",
		"1_first.sql":             "\xef\xbb\xbfcreate table t (a int);\n",
		"README.md":               "not a migration",
		".hidden.sql":             "garbage",
	})
	fsys["migrations/sub"] = &fstest.MapFile{Mode: fs.ModeDir}
	migs, err := Load(fsys, "migrations")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var got []string
	for _, m := range migs {
		got = append(got, fmt.Sprintf("%d %s %s down=%v notx=%v desc=%q", m.Version, m.Name, m.Up.File, m.Down != nil, m.Up.NoTransaction, m.Description))
	}
	want := []string{
		`1 first migrations/1_first.sql down=false notx=false desc=""`,
		`2 users migrations/0002_users.sql down=true notx=true desc="the users"`,
		`10 later migrations/10_later.sql down=false notx=false desc=""`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The checksum is of the file with CRLF turned into LF; the SQL also loses the BOM.
	lf := "-- Description: the users\n--   poststack:no-transaction\n\nCREATE INDEX CONCURRENTLY x ON t (a);\n"
	sum := sha256.Sum256([]byte(lf))
	if migs[1].Checksum != hex.EncodeToString(sum[:]) {
		t.Errorf("checksum %s is not the SHA-256 of the LF-normalised file", migs[1].Checksum)
	}
	if migs[1].Up.SQL != lf {
		t.Errorf("SQL not normalised: %q", migs[1].Up.SQL)
	}
	if migs[0].Up.SQL != "create table t (a int);\n" {
		t.Errorf("BOM not stripped: %q", migs[0].Up.SQL)
	}
	if migs[1].Down.SQL != "DROP INDEX x;\n" || migs[1].Down.File != "migrations/0002_users.rollback.sql" {
		t.Errorf("rollback = %+v", migs[1].Down)
	}
}

func TestLoadProblems(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{"duplicate version", map[string]string{"0001_a.sql": "", "1_b.sql": ""},
			[]string{"migrations/1_b.sql: duplicate version 1 (also migrations/0001_a.sql)"}},
		{"rollback without migration", map[string]string{"0003_x.rollback.sql": ""},
			[]string{"migrations/0003_x.rollback.sql: rollback without migration (no 3_x.sql)"}},
		{"rollback name mismatch", map[string]string{"0003_x.sql": "", "0003_y.rollback.sql": ""},
			[]string{"migrations/0003_y.rollback.sql: rollback without migration (no 3_y.sql; version 3 is migrations/0003_x.sql)"}},
		{"duplicate rollback", map[string]string{"0003_x.sql": "", "0003_x.rollback.sql": "", "3_x.rollback.sql": ""},
			[]string{"migrations/3_x.rollback.sql: duplicate rollback for version 3 (also migrations/0003_x.rollback.sql)"}},
		{"no version", map[string]string{"init.sql": ""},
			[]string{"migrations/init.sql: bad migration file name: name must start with a version number (<version>_<name>.sql)"}},
		{"no underscore", map[string]string{"0001-init.sql": ""},
			[]string{`migrations/0001-init.sql: bad migration file name: version must be followed by "_<name>" (<version>_<name>.sql)`}},
		{"only version", map[string]string{"0001.sql": ""},
			[]string{`migrations/0001.sql: bad migration file name: version must be followed by "_<name>" (<version>_<name>.sql)`}},
		{"empty name", map[string]string{"0001_.sql": ""},
			[]string{`migrations/0001_.sql: bad migration file name: name after "<version>_" is empty`}},
		{"empty rollback name", map[string]string{"0001_.rollback.sql": ""},
			[]string{`migrations/0001_.rollback.sql: bad migration file name: name after "<version>_" is empty`}},
		{"bad character", map[string]string{"0001_add users.sql": ""},
			[]string{`migrations/0001_add users.sql: bad migration file name: name "add users" has ' '; use letters, digits, '_', '-' and '.'`}},
		{"version zero", map[string]string{"0000_init.sql": ""},
			[]string{"migrations/0000_init.sql: bad migration file name: version must be 1 or more"}},
		{"version too large", map[string]string{"99999999999999999999_x.sql": ""},
			[]string{"migrations/99999999999999999999_x.sql: bad migration file name: version 99999999999999999999 is larger than 9223372036854775807"}},
		{"upper-case extension", map[string]string{"0001_x.SQL": ""},
			[]string{`migrations/0001_x.SQL: bad migration file name: name must end in ".sql"`}},
		{"non-UTF-8", map[string]string{"0001_x.sql": "select 1;\nselect '\xff';\n"},
			[]string{"migrations/0001_x.sql:2: not valid UTF-8"}},
		{"NUL byte", map[string]string{"0001_x.sql": "select 1;\n\nselect '\x00';\n"},
			[]string{"migrations/0001_x.sql:3: contains a NUL byte"}},
		{"unknown directive", map[string]string{"0001_x.sql": "-- hello\n-- poststack:no-transacton\nselect 1;\n"},
			[]string{`migrations/0001_x.sql:2: unknown directive "poststack:no-transacton" (known: "poststack:no-transaction")`}},
		{"commit in transactional file", map[string]string{"0001_x.sql": "create table a ();\nCOMMIT;\ncreate table b ();\n"},
			[]string{`migrations/0001_x.sql:2: "COMMIT" would end the transaction the migration runs in; remove it, or add "-- poststack:no-transaction" to run the file outside a transaction`}},
		{"begin in transactional rollback", map[string]string{"0001_x.sql": "", "0001_x.rollback.sql": "\n\nbegin;\ndrop table a;\n"},
			[]string{`migrations/0001_x.rollback.sql:3: "begin" would end the transaction the migration runs in; remove it, or add "-- poststack:no-transaction" to run the file outside a transaction`}},
		{"every problem at once", map[string]string{
			"0001_a.sql": "", "0001_b.sql": "", "x.sql": "", "0002_c.sql": "\xc3", "0009_z.rollback.sql": "",
		}, []string{
			"migrations/0001_b.sql: duplicate version 1 (also migrations/0001_a.sql)",
			"migrations/0002_c.sql:1: not valid UTF-8",
			"migrations/0009_z.rollback.sql: rollback without migration (no 9_z.sql)",
			"migrations/x.sql: bad migration file name: name must start with a version number (<version>_<name>.sql)",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(files(tc.files), "migrations")
			var se *SourceError
			if !errors.As(err, &se) {
				t.Fatalf("Load error = %v, want *SourceError", err)
			}
			var got []string
			for _, p := range se.Problems {
				got = append(got, p.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("problems\n got %q\nwant %q", got, tc.want)
			}
			if exitcode.Of(err) != exitcode.Usage {
				t.Errorf("exit code %d, want %d", exitcode.Of(err), exitcode.Usage)
			}
		})
	}
}

func TestLoadAllowsTransactionControlWithoutTransaction(t *testing.T) {
	migs := load(t, map[string]string{"1_x.sql": "-- poststack:no-transaction\nbegin;\nselect 1;\ncommit;\n"})
	if !migs[0].Up.NoTransaction {
		t.Fatal("directive not seen")
	}
}

func TestLoadSourceErrorMessage(t *testing.T) {
	_, err := Load(files(map[string]string{"x.sql": "", "y.sql": ""}), "migrations")
	want := "invalid migration files (2 problems):\n" +
		"  migrations/x.sql: bad migration file name: name must start with a version number (<version>_<name>.sql)\n" +
		"  migrations/y.sql: bad migration file name: name must start with a version number (<version>_<name>.sql)"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n%v\nwant\n%s", err, want)
	}
}

func TestLoadUnreadable(t *testing.T) {
	// Tests run as root, which reads mode-000 files; a symbolic link is refused through an fs.FS,
	// where it cannot be checked to stay inside the project.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1_ok.sql"), []byte("select 1;"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "2_gone.sql")); err != nil {
		t.Fatal(err)
	}
	_, err := Load(os.DirFS(dir), ".")
	want := "invalid migration files: 2_gone.sql: is a symbolic link; migrations read from an fs.FS must be regular files"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
	_, err = Load(os.DirFS(dir), "missing")
	want = "invalid migration files: missing: cannot read directory: no such file or directory"
	if err == nil || err.Error() != want || exitcode.Of(err) != exitcode.Usage {
		t.Fatalf("error = %v, want %s (exit 2)", err, want)
	}
}

func TestLoadDirMatchesLoad(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("select 'x';\r\n", 20000) // larger than the read buffer
	for name, body := range map[string]string{
		"1_a.sql": "create table a ();\n", "1_a.rollback.sql": "drop table a;\n",
		"2_big.sql": big, "notes.txt": "x", "3_c.sql": "-- poststack:no-transaction\nselect 1;",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	viaFS, err := Load(os.DirFS(dir), ".")
	if err != nil {
		t.Fatal(err)
	}
	viaDir, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(viaDir) != 3 || len(viaFS) != 3 {
		t.Fatalf("loaded %d and %d migrations", len(viaDir), len(viaFS))
	}
	for i := range viaFS {
		a, b := *viaFS[i], *viaDir[i]
		if b.Up.File != filepath.Join(dir, a.Up.File) {
			t.Errorf("LoadDir names %s, want %s", b.Up.File, filepath.Join(dir, a.Up.File))
		}
		a.Up.File, b.Up.File, a.Down, b.Down = "", "", nil, nil
		if !reflect.DeepEqual(a, b) {
			t.Errorf("migration %d differs:\n%+v\n%+v", i, a, b)
		}
	}
	if viaDir[1].Up.SQL != strings.ReplaceAll(big, "\r\n", "\n") {
		t.Error("big file not read completely")
	}
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "4_gone.sql")); err != nil {
		t.Fatal(err)
	}
	_, err = LoadDir(dir)
	if want := "invalid migration files: " + filepath.Join(dir, "4_gone.sql") + ": is a symbolic link to " + fmt.Sprintf("%q", filepath.Join(dir, "nowhere")) + ", which does not exist"; err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %s", err, want)
	}
}

func TestParseDirectives(t *testing.T) {
	tests := []struct {
		text    string
		want    Directives
		wantErr string
	}{
		{"", Directives{}, ""},
		{"-- poststack:no-transaction\nselect 1;", Directives{NoTransaction: true}, ""},
		{"--POSTSTACK: No-Transaction\n", Directives{NoTransaction: true}, ""},
		{"select 1;\n-- poststack:no-transaction\n", Directives{}, ""},
		{"\n  -- Description:  adds users \n-- description: and roles\nselect 1", Directives{Description: "adds users and roles"}, ""},
		{"/* c */\n-- poststack:no-transaction\n", Directives{}, ""},
		{"-- poststack:nope\n-- poststack:\n", Directives{}, `line 1: unknown directive "poststack:nope" (known: "poststack:no-transaction"); line 2: unknown directive "poststack:" (known: "poststack:no-transaction")`},
	}
	for _, tc := range tests {
		got, err := ParseDirectives(tc.text)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		if got != tc.want || gotErr != tc.wantErr {
			t.Errorf("ParseDirectives(%q) = %+v, %q; want %+v, %q", tc.text, got, gotErr, tc.want, tc.wantErr)
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		base     string
		version  int64
		name     string
		rollback bool
		ok       bool
	}{
		{"0001_init.sql", 1, "init", false, true},
		{"20240101120000_add-users.v2.sql", 20240101120000, "add-users.v2", false, true},
		{"7_x.rollback.sql", 7, "x", true, true},
		{"7_x.rollback.rollback.sql", 7, "x.rollback", true, true},
		{"7_.rollback.sql", 0, "", false, false},
		{"7_x.sql.bak", 0, "", false, false},
		{"_x.sql", 0, "", false, false},
		{"7_é.sql", 0, "", false, false},
	}
	for _, tc := range tests {
		v, n, rb, err := ParseName(tc.base)
		if (err == nil) != tc.ok || tc.ok && (v != tc.version || n != tc.name || rb != tc.rollback) {
			t.Errorf("ParseName(%q) = %d, %q, %v, %v", tc.base, v, n, rb, err)
		}
	}
}

func FuzzParseName(f *testing.F) {
	for _, s := range []string{"0001_init.sql", "1_x.rollback.sql", "x.sql", "0_a.sql", "1_.sql", "1_a b.sql", "99999999999999999999_x.sql"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, base string) {
		v, name, rb, err := ParseName(base)
		if err != nil {
			return
		}
		if v < 1 || name == "" {
			t.Fatalf("ParseName(%q) accepted version %d name %q", base, v, name)
		}
		ext := sqlExt
		if rb {
			ext = rollbackExt
		}
		// A parsed name must be rebuildable from its parts (modulo leading zeros).
		if !strings.HasSuffix(base, "_"+name+ext) || strings.TrimLeft(strings.TrimSuffix(base, "_"+name+ext), "0") != fmt.Sprint(v) {
			t.Fatalf("ParseName(%q) = %d %q %v does not rebuild the name", base, v, name, rb)
		}
		for _, r := range name {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.", r)) {
				t.Fatalf("ParseName(%q) accepted %q", base, r)
			}
		}
	})
}

func FuzzDirectives(f *testing.F) {
	for _, s := range []string{"", "-- poststack:no-transaction\n", "-- Description: x\nselect 1", "-- poststack:bogus", "select 1\n-- poststack:no-transaction", "--\n--\r\n-- poststack:NO-TRANSACTION"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		d, err := ParseDirectives(text)
		// Whatever precedes it, appending a non-comment line never changes the directives.
		d2, err2 := ParseDirectives(text + "\nselect 1;\n-- poststack:garbage\n")
		if d != d2 || (err == nil) != (err2 == nil) {
			t.Fatalf("trailing statement changed directives: %+v/%v vs %+v/%v", d, err, d2, err2)
		}
		if strings.Contains(d.Description, "\n") {
			t.Fatalf("description spans lines: %q", d.Description)
		}
		if d.NoTransaction && !strings.Contains(strings.ToLower(text), "no-transaction") {
			t.Fatalf("no-transaction without the directive in %q", text)
		}
	})
}
