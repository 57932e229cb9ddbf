package pgschema

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestDumpSchemaIsDeterministic(t *testing.T) {
	dbURL, _ := setup(t)
	ctx := context.Background()
	var a, b bytes.Buffer
	if err := DumpSchema(ctx, dbURL, &a); err != nil {
		t.Fatalf("DumpSchema: %v", err)
	}
	if err := DumpSchema(ctx, dbURL, &b); err != nil {
		t.Fatalf("DumpSchema again: %v", err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Errorf("two dumps differ:\n%s\n----\n%s", a.String(), b.String())
	}
	out := a.String()
	for _, want := range []string{"CREATE TABLE app.users (", "CREATE TYPE app.mood AS ENUM", "CREATE MATERIALIZED VIEW app.post_counts"} {
		if !strings.Contains(out, want) {
			t.Errorf("dump lacks %q", want)
		}
	}
	for _, banned := range []string{"\\restrict", "\\unrestrict", "Dumped by pg_dump", "Dumped from database", "OWNER TO", "GRANT "} {
		if strings.Contains(out, banned) {
			t.Errorf("dump contains %q", banned)
		}
	}
}

func TestDumpSchemaFailureWritesNothing(t *testing.T) {
	dbURL, _ := freshDB(t)
	var out bytes.Buffer
	err := DumpSchema(context.Background(), strings.Replace(dbURL, "pgschema_", "nosuchdb_", 1), &out)
	if err == nil || !strings.Contains(err.Error(), "nosuchdb_") {
		t.Errorf("DumpSchema of a missing database: err = %v, want one naming it", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes on failure", out.Len())
	}
	if strings.Contains(err.Error(), ":postgres@") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestBackupRestoresToSameSchema(t *testing.T) {
	dbURL, conn := setup(t)
	ctx := context.Background()
	if _, err := conn.Exec(ctx, "INSERT INTO app.users (email, name) VALUES ('a@b', 'ann')"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "db.dump")
	if err := Backup(ctx, dbURL, path); err != nil {
		t.Fatalf("Backup: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the backup (no temp files)", len(entries))
	}

	restoreURL, restored := freshDB(t)
	server, err := serverMajor(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dump, err := findPgDump(ctx, server, os.Getenv("PATH"))
	if err != nil {
		t.Fatal(err)
	}
	connStr, password, err := splitPassword(restoreURL)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, filepath.Join(filepath.Dir(dump.path), "pg_restore"),
		"--no-owner", "--exit-on-error", "--dbname="+connStr, path)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	before := snapshot(t, conn, fixtureOpts)
	after := snapshot(t, restored, fixtureOpts)
	if d := Diff(before, after); len(d) != 0 {
		t.Errorf("restored schema differs: %q", d)
	}
	if !reflect.DeepEqual(before, after) {
		t.Errorf("restored snapshot is not identical")
	}
	var name string
	if err := restored.QueryRow(ctx, "SELECT name FROM app.users").Scan(&name); err != nil || name != "ann" {
		t.Errorf("restored data: %q, %v", name, err)
	}
}

func TestBackupFailureLeavesNoFile(t *testing.T) {
	dbURL, _ := freshDB(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "db.dump")
	if err := os.WriteFile(path, []byte("previous backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A missing database makes the dump fail before anything is written.
	bad := strings.Replace(dbURL, "pgschema_", "nosuchdb_", 1)
	if err := Backup(context.Background(), bad, path); err == nil {
		t.Fatal("Backup of a missing database succeeded")
	}
	if b, _ := os.ReadFile(path); string(b) != "previous backup" {
		t.Errorf("previous backup was overwritten: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want the previous backup only", len(entries))
	}
}

func TestChoosePgDump(t *testing.T) {
	tests := []struct {
		name    string
		server  int
		tools   []tool
		want    string
		wantErr string
	}{
		{"path new enough", 15, []tool{{"/usr/bin/pg_dump", 15}, {"/usr/lib/postgresql/17/bin/pg_dump", 17}}, "/usr/bin/pg_dump", ""},
		{"path too old, newest used", 16, []tool{{"/usr/bin/pg_dump", 15}, {"/a/17", 17}, {"/a/16", 16}}, "/a/17", ""},
		{"all too old", 17, []tool{{"/usr/bin/pg_dump", 15}, {"/a/16", 16}}, "", "server runs PostgreSQL 17 but the newest pg_dump is 16"},
		{"none", 15, nil, "", "install the PostgreSQL 15 client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := choosePgDump(tc.server, tc.tools)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, errNoPgDump) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.path != tc.want {
				t.Errorf("got %v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestSplitPassword(t *testing.T) {
	tests := []struct {
		in, conn, password string
	}{
		{"postgres://u:s3cret@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?sslmode=disable", "s3cret"},
		{"postgresql://u@h/db", "postgresql://u@h/db", ""},
		{"postgres://u@h/db?password=p%26q&sslmode=require", "postgres://u@h/db?sslmode=require", "p&q"},
		{"host=h user=u password=s3cret dbname=db", "host=h user=u dbname=db", "s3cret"},
		{"host=h password='it\\'s a secret' dbname='my db'", "host=h dbname='my db'", "it's a secret"},
		{"dbname = db  password = x", "dbname=db", "x"},
	}
	for _, tc := range tests {
		conn, pw, err := splitPassword(tc.in)
		if err != nil || conn != tc.conn || pw != tc.password {
			t.Errorf("splitPassword(%q) = %q, %q, %v; want %q, %q", tc.in, conn, pw, err, tc.conn, tc.password)
		}
	}
	for _, bad := range []string{"host", "password='secretvalue", "postgres://u:secretvalue@h:bad port/db"} {
		_, _, err := splitPassword(bad)
		if err == nil {
			t.Errorf("splitPassword(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "secretvalue") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestFilterDump(t *testing.T) {
	in := "--\n-- PostgreSQL database dump\n--\n\n\\restrict abcDEF123\n\n" +
		"-- Dumped from database version 15.18 (Debian)\n-- Dumped by pg_dump version 17.6\n\n" +
		"SET statement_timeout = 0;\nSET transaction_timeout = 0;\r\n" +
		"CREATE TABLE t (a text DEFAULT '\\restrict');\n\\unrestrict abcDEF123\n-- no newline"
	want := "--\n-- PostgreSQL database dump\n--\n\n\n\n" +
		"SET statement_timeout = 0;\n" +
		"CREATE TABLE t (a text DEFAULT '\\restrict');\n-- no newline"
	if got := string(filterDump([]byte(in))); got != want {
		t.Errorf("filterDump:\n got %q\nwant %q", got, want)
	}
	if got := filterDump(nil); len(got) != 0 {
		t.Errorf("filterDump(nil) = %q", got)
	}
}

// TestDumpSchemaRunsInTheGivenEnvironment: pg_dump gets the environment of WithEnviron, not the
// process's. A PGSERVICE naming no service makes libpq refuse to connect, which only the given
// environment holds; the process environment dumps fine.
func TestDumpSchemaRunsInTheGivenEnvironment(t *testing.T) {
	dbURL, _ := freshDB(t)
	ctx := context.Background()
	var out bytes.Buffer
	if err := DumpSchema(ctx, dbURL, &out); err != nil {
		t.Fatalf("DumpSchema with the default environment: %v", err)
	}
	out.Reset()
	env := append(os.Environ(), "PGSERVICE=poststack_no_such_service")
	err := DumpSchema(ctx, dbURL, &out, WithEnviron(env))
	if err == nil || !strings.Contains(err.Error(), "poststack_no_such_service") {
		t.Errorf("DumpSchema with PGSERVICE in WithEnviron: err = %v, want pg_dump's refusal naming the service", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes on failure", out.Len())
	}
}
