package convert

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/poststack/poststack/pkg/exitcode"
	"github.com/poststack/poststack/pkg/migrate"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readAll(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

func TestConvertGoose(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "goose")
	writeFiles(t, src, map[string]string{
		"00001_users.sql": "-- +goose Up\nCREATE TABLE users (id int);\n-- +goose Down\nDROP TABLE users;\n",
		"00002_index.sql": "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n\n-- +goose Down\nDROP INDEX CONCURRENTLY users_id;\n",
		"20240101120000_func.sql": "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n-- +goose StatementEnd\n" +
			"-- +goose Down\n-- irreversible\n",
		"README.md": "not a migration\n",
		"main.go":   "package main\n",
	})
	res, err := Read(Goose, src)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(root, "migrations")
	paths, err := Write(res, dest, WithRoot(root))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"00001_users.sql":          "CREATE TABLE users (id int);\n",
		"00001_users.rollback.sql": "DROP TABLE users;\n",
		"00002_index.sql":          "-- poststack:no-transaction\nCREATE INDEX CONCURRENTLY users_id ON users (id);\n",
		"00002_index.rollback.sql": "-- poststack:no-transaction\nDROP INDEX CONCURRENTLY users_id;\n",
		"20240101120000_func.sql":  "CREATE FUNCTION one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;\n",
	}
	got := readAll(t, dest)
	if len(got) != len(want) || len(paths) != len(want) {
		t.Fatalf("wrote %v (%q), want %d files", paths, got, len(want))
	}
	for name, text := range want {
		if got[name] != text {
			t.Errorf("%s = %q, want %q", name, got[name], text)
		}
	}
	// What convert writes, ps-migrate loads.
	migs, err := migrate.LoadDir(dest)
	if err != nil {
		t.Fatal(err)
	}
	if len(migs) != 3 || migs[2].Version != 20240101120000 || migs[2].Down != nil || !migs[1].Up.NoTransaction {
		t.Fatalf("loaded %d migrations: %+v", len(migs), migs)
	}

	// A second run would overwrite: refused, naming the file, nothing written.
	res, _ = Read(Goose, src)
	_, err = Write(res, dest, WithRoot(root))
	if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), filepath.Join(dest, "00001_users.sql")+" exists already") {
		t.Fatalf("second write: %v (exit %d)", err, exitcode.Of(err))
	}
}

func TestConvertGooseUnconvertible(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "goose")
	writeFiles(t, src, map[string]string{
		"00001_users.sql":     "-- +goose Up\nCREATE TABLE users (id int);\n",
		"00002_seed.go":       "package migrations\n",
		"00003_role.sql":      "-- +goose Up\n-- +goose ENVSUB ON\nCREATE ROLE ${APP_ROLE};\n",
		"00004_plain.sql":     "-- +goose Up\nSELECT 1;\n",
		"00004_plain_test.go": "package migrations\n",
	})
	res, err := Read(Goose, src)
	if err != nil {
		t.Fatal(err)
	}
	err = res.Err()
	if exitcode.Of(err) != exitcode.Check {
		t.Fatalf("got %v (exit %d), want exit 3", err, exitcode.Of(err))
	}
	for _, want := range []string{filepath.Join(src, "00002_seed.go") + ": a Go migration", filepath.Join(src, "00003_role.sql") + ":2: \"-- +goose ENVSUB ON\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	dest := filepath.Join(root, "migrations")
	if _, err := Write(res, dest); exitcode.Of(err) != exitcode.Check {
		t.Fatalf("write: %v", err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s was created: %v", dest, err)
	}
}

func TestConvertInvalid(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "goose")
	writeFiles(t, src, map[string]string{
		"00001_users.sql": "CREATE TABLE users (id int);\n",
		"1_dup.sql":       "-- +goose Up\nSELECT 1;\n",
		"01_dup.sql":      "-- +goose Up\nSELECT 2;\n",
		"abc.sql":         "-- +goose Up\nSELECT 3;\n",
		"00005_tx.sql":    "-- +goose Up\nCOMMIT;\n",
	})
	if err := os.WriteFile(filepath.Join(root, "secret.sql"), []byte("-- +goose Up\nSELECT 'secret';\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "secret.sql"), filepath.Join(src, "00006_link.sql")); err != nil {
		t.Fatal(err)
	}
	res, err := Read(Goose, src)
	if err != nil {
		t.Fatal(err)
	}
	err = res.Err()
	if exitcode.Of(err) != exitcode.Usage {
		t.Fatalf("got %v (exit %d), want exit 2", err, exitcode.Of(err))
	}
	for _, want := range []string{
		"00001_users.sql:1: SQL before",
		"abc.sql: name must start with a version number",
		"00006_link.sql: is a symbolic link to",
		"00005_tx.sql: converted to 00005_tx.sql:1:",
		"duplicate",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "secret'") {
		t.Errorf("error quotes the linked file: %v", err)
	}
}

func TestConvertGolangMigrate(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "gm")
	writeFiles(t, src, map[string]string{
		"1_users.up.sql":    "BEGIN;\nCREATE TABLE users (id int);\nCOMMIT;\n",
		"1_users.down.sql":  "DROP TABLE users;\n",
		"2_index.up.sql":    "CREATE INDEX CONCURRENTLY users_id ON users (id);\n",
		"2_index.down.sql":  "\n-- nothing\n",
		"3_odd name.up.sql": "SELECT 1;\n",
		"notes.txt":         "x\n",
		"4_orphan.down.sql": "SELECT 1;\n",
		"5_twice.up.sql":    "SELECT 1;\n",
		"05_twice.up.sql":   "SELECT 2;\n",
	})
	res, err := Read(GolangMigrate, src)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, p := range res.Invalid {
		msgs = append(msgs, p.String())
	}
	slices.Sort(msgs)
	wantInvalid := []string{
		filepath.Join(src, "4_orphan.down.sql") + ": a down file without its .up.sql",
		filepath.Join(src, "5_twice.up.sql") + ": version 5 has a second up file beside 05_twice.up.sql",
	}
	if !slices.Equal(msgs, wantInvalid) {
		t.Fatalf("invalid %q, want %q", msgs, wantInvalid)
	}
	if len(res.Migrations) != 4 { // 5 once, from the first of its up files
		t.Fatalf("got %d migrations", len(res.Migrations))
	}
	m1, m2, m3 := res.Migrations[0], res.Migrations[1], res.Migrations[2]
	if m1.Up.Text != "CREATE TABLE users (id int);\n" || m1.Down == nil || m1.Down.Name != "1_users.rollback.sql" {
		t.Errorf("1: %+v", m1)
	}
	if !m2.NoTransaction || m2.Down != nil || !strings.HasPrefix(m2.Up.Text, "-- poststack:no-transaction\n") {
		t.Errorf("2: %+v", m2)
	}
	if m3.Up.Name != "3_odd_name.sql" || len(m3.Notes) != 1 {
		t.Errorf("3: %+v", m3)
	}
}

func TestWriteRefusesUnsafeDestinations(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "gm")
	writeFiles(t, src, map[string]string{"1_a.up.sql": "SELECT 1;\n"})
	res, err := Read(GolangMigrate, src)
	if err != nil || res.Err() != nil {
		t.Fatal(err, res.Err())
	}
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "linked")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "parent")); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, filepath.Join(root, "taken"), map[string]string{"0001_other.sql": "SELECT 2;\n"})
	for _, tt := range []struct{ dest, msg string }{
		{filepath.Join(root, "linked"), "is a symbolic link"},
		{filepath.Join(root, "parent", "migrations"), "leads outside the project directory"},
		{src, "is the directory converted"},
		{filepath.Join(root, "taken"), "version 1 is " + filepath.Join(root, "taken", "0001_other.sql") + " already"},
	} {
		_, err := Write(res, tt.dest, WithRoot(root))
		if exitcode.Of(err) != exitcode.Usage || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want exit 2 with %q", tt.dest, err, tt.msg)
		}
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("wrote outside the project: %v", entries)
	}
	// A dry run checks and writes nothing.
	dest := filepath.Join(root, "migrations")
	paths, err := Write(res, dest, WithRoot(root), WithDryRun(true))
	if err != nil || len(paths) != 1 {
		t.Fatalf("dry run: %v %v", paths, err)
	}
	if _, err := os.Stat(dest); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("dry run created %s", dest)
	}
}
