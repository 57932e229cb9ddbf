package pgnative

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/poststack/poststack/pkg/progress"
)

func TestScramVerifierMatchesIndependentComputation(t *testing.T) {
	// Expected value computed with Python's hashlib/hmac for RFC 7677's example password and salt.
	salt, err := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	if err != nil {
		t.Fatal(err)
	}
	got, err := scramVerifierWithSalt("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
	if got != want {
		t.Errorf("verifier\n got %s\nwant %s", got, want)
	}
	a, _ := scramVerifier("pencil")
	b, _ := scramVerifier("pencil")
	if a == b {
		t.Error("two verifiers share a salt")
	}
}

func touchExecutable(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestNewestDebianBinDir(t *testing.T) {
	tests := []struct {
		name     string
		versions []string // with initdb
		bare     []string // without initdb
		want     string
	}{
		{"numeric, not lexical", []string{"9.6", "10", "15"}, nil, "15"},
		{"skips a version without initdb", []string{"14"}, []string{"16"}, "14"},
		{"ignores other names", []string{"13"}, []string{"common"}, "13"},
		{"none", nil, []string{"16"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, v := range tc.versions {
				touchExecutable(t, filepath.Join(root, v, "bin", "initdb"))
			}
			for _, v := range tc.bare {
				if err := os.MkdirAll(filepath.Join(root, v, "bin"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := newestDebianBinDir(root)
			want := ""
			if tc.want != "" {
				want = filepath.Join(root, tc.want, "bin")
			}
			if got != want || ok != (want != "") {
				t.Errorf("got %q, %v; want %q", got, ok, want)
			}
		})
	}
}

func TestBinariesInNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	touchExecutable(t, filepath.Join(dir, "initdb"))
	_, err := binariesIn(dir)
	if err == nil || !strings.Contains(err.Error(), "postgres") || strings.Contains(err.Error(), "initdb:") {
		t.Errorf("error %v should name postgres only", err)
	}
}

func TestResolveDirsFromEnvironment(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		opts      []Option
		wantCache string
		wantTemp  string // "" means: /dev/shm or /tmp, decided by the machine
	}{
		{"xdg", map[string]string{"XDG_CACHE_HOME": "/x", "HOME": "/h", "TMPDIR": "/t"}, nil, "/x/poststack/pgnative", "/t"},
		{"home", map[string]string{"HOME": "/h"}, nil, "/h/.cache/poststack/pgnative", ""},
		{"relative values are ignored", map[string]string{"XDG_CACHE_HOME": "x", "HOME": "h", "TMPDIR": "t"}, nil, "", ""},
		{"explicit", map[string]string{"HOME": "/h"}, []Option{WithCacheDir("/c"), WithTempDir("/tt")}, "/c", "/tt"},
		{"opt-out", map[string]string{"HOME": "/h"}, []Option{WithCacheDir("/c"), WithoutCache()}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			c, err := newConfig(append([]Option{WithGetenv(func(k string) string { return env[k] })}, tc.opts...))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.resolveCacheDir(); got != tc.wantCache {
				t.Errorf("cache dir %q, want %q", got, tc.wantCache)
			}
			got := c.resolveTempDir()
			if tc.wantTemp != "" && got != tc.wantTemp || tc.wantTemp == "" && got != "/dev/shm" && got != "/tmp" {
				t.Errorf("temp dir %q, want %q", got, tc.wantTemp)
			}
		})
	}
}

func TestLogTail(t *testing.T) {
	var forwarded strings.Builder
	tail := newLogTail(&forwarded)
	for i := range 3000 {
		tail.Write([]byte("line " + strings.Repeat("x", 10) + " " + string(rune('a'+i%26)) + "\n"))
	}
	tail.Write([]byte("FATAL:  the end\n"))
	got := tail.lines(2)
	if !strings.HasSuffix(got, "FATAL:  the end") || strings.Count(got, "\n") != 1 {
		t.Errorf("lines(2) = %q", got)
	}
	if len(tail.buf) > 2*tail.limit {
		t.Errorf("tail holds %d bytes, limit %d", len(tail.buf), tail.limit)
	}
	if !strings.HasSuffix(forwarded.String(), "FATAL:  the end\n") || strings.Count(forwarded.String(), "\n") != 3001 {
		t.Error("not every line was forwarded")
	}
}

func TestSweepRemovesOnlyAbandonedDirectories(t *testing.T) {
	parent := t.TempDir()
	mk := func(name, owner string) string {
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	self, _ := processStart(os.Getpid())
	live := mk(dirPrefix+"live", strings.Join([]string{strconv.Itoa(os.Getpid()), self}, " "))
	reused := mk(dirPrefix+"reused", strconv.Itoa(os.Getpid())+" 1") // same pid, other start time: dead
	dead := mk(dirPrefix+"dead", "2147483000 5")
	fresh := mk(dirPrefix+"fresh", "") // owner not written yet
	other := mk("unrelated", "2147483000 5")
	sweep(parent, progress.Reporter{})
	for dir, wantKept := range map[string]bool{live: true, reused: false, dead: false, fresh: true, other: true} {
		_, err := os.Stat(dir)
		if kept := err == nil; kept != wantKept {
			t.Errorf("%s kept=%v, want %v", filepath.Base(dir), kept, wantKept)
		}
	}
}

func TestStaleStagingIsRemoved(t *testing.T) {
	root := t.TempDir()
	old := filepath.Join(root, stagingPrefix+"old")
	recent := filepath.Join(root, stagingPrefix+"recent")
	for _, d := range []string{old, recent} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	removeStaleStaging(root)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("old staging directory kept")
	}
	if _, err := os.Stat(recent); err != nil {
		t.Error("recent staging directory removed (another process may be writing it)")
	}
}

func TestEvictSeededKeepsTheMostRecentlyUsed(t *testing.T) {
	root := t.TempDir()
	base := cacheEntry{dir: filepath.Join(root, "pg-base")}
	other := cacheEntry{dir: filepath.Join(root, "pg-other")}
	now := time.Now()
	var entries []cacheEntry
	for i := range 11 {
		e := seededEntry(base, strconv.Itoa(i))
		if err := os.MkdirAll(e.dataDir(), 0o700); err != nil {
			t.Fatal(err)
		}
		// Entry i was used i minutes ago.
		old := now.Add(-time.Duration(i) * time.Minute)
		if err := os.Chtimes(e.dir, old, old); err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	foreign := seededEntry(other, "x")
	if err := os.MkdirAll(foreign.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := now.Add(-time.Hour)
	_ = os.Chtimes(foreign.dir, old, old)

	evictSeeded(entries[0], 8, progress.NewReporter("pgnative", progress.Lines(t.Logf)))
	for i, e := range entries {
		_, err := os.Stat(e.dir)
		if kept := err == nil; kept != (i < 8) {
			t.Errorf("entry used %d minutes ago: kept = %v, want %v", i, kept, i < 8)
		}
	}
	if _, err := os.Stat(foreign.dir); err != nil {
		t.Errorf("another base's entry was evicted: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(root, stagingPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("eviction left %v", left)
	}
}
