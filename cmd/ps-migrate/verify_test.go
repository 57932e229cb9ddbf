package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/poststack/poststack/internal/testenv"
)

// TestVerifyListsEveryDrift changes one applied file's content and renames
// another, and asserts that verify names both on stdout, as text and as
// --json, with exit 3; before the drifts were listed, verify returned on
// the DriftError and printed nothing on stdout.
func TestVerifyListsEveryDrift(t *testing.T) {
	db := testenv.Database(t)
	dir := project(t, basic)
	env := []string{"DATABASE_URL=" + db}
	if r := runIn(t, dir, env, "up"); r.code != 0 {
		t.Fatalf("up: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r := runIn(t, dir, env, "verify")
	if r.code != 0 || r.stdout != "every applied migration matches its file\n" {
		t.Fatalf("verify without drift: exit %d %q %s", r.code, r.stdout, r.stderr)
	}
	r = runIn(t, dir, env, "verify", "--json")
	var clean struct {
		Drifts []json.RawMessage `json:"drifts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &clean); r.code != 0 || err != nil || clean.Drifts == nil || len(clean.Drifts) != 0 {
		t.Fatalf("verify --json without drift: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}

	mig := filepath.Join(dir, "migrations")
	write(t, filepath.Join(mig, "0001_users.sql"), "CREATE TABLE users (id bigint PRIMARY KEY, email text);\n")
	for _, ext := range []string{".sql", ".rollback.sql"} {
		if err := os.Rename(filepath.Join(mig, "0002_email_index"+ext), filepath.Join(mig, "0002_idx"+ext)); err != nil {
			t.Fatal(err)
		}
	}

	r = runIn(t, dir, env, "verify")
	want := "migrations/0001_users.sql: version 1: content changed since it was applied\n" +
		"migrations/0002_idx.sql: version 2: applied as \"email_index\"\n"
	if r.code != 3 || r.stdout != want {
		t.Fatalf("verify with drift: exit %d, stdout\n%s\nwant\n%s\nstderr %s", r.code, r.stdout, want, r.stderr)
	}
	if !strings.Contains(r.stderr, "2 applied migrations changed") {
		t.Errorf("verify with drift: stderr %q does not count the drifts", r.stderr)
	}

	r = runIn(t, dir, env, "verify", "--json")
	var got struct {
		Drifts []struct {
			Version         int64  `json:"version"`
			File            string `json:"file"`
			AppliedName     string `json:"applied_name"`
			Name            string `json:"name"`
			AppliedChecksum string `json:"applied_checksum"`
			Checksum        string `json:"checksum"`
		} `json:"drifts"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 3 || err != nil {
		t.Fatalf("verify --json with drift: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if len(got.Drifts) != 2 {
		t.Fatalf("verify --json: %d drifts, want 2\n%s", len(got.Drifts), r.stdout)
	}
	d1, d2 := got.Drifts[0], got.Drifts[1]
	if d1.Version != 1 || d1.File != "migrations/0001_users.sql" || d1.Name != "users" || d1.AppliedName != "users" ||
		d1.Checksum == "" || d1.Checksum == d1.AppliedChecksum {
		t.Errorf("first drift %+v: want version 1, users, changed checksum", d1)
	}
	if d2.Version != 2 || d2.File != "migrations/0002_idx.sql" || d2.Name != "idx" || d2.AppliedName != "email_index" ||
		d2.Checksum != d2.AppliedChecksum {
		t.Errorf("second drift %+v: want version 2 renamed from email_index, same checksum", d2)
	}
}
