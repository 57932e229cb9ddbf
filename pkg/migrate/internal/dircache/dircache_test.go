package dircache

import (
	"encoding/binary"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"
	"time"
)

func TestCacheFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "cache")
	want := Cache{
		Dir:     Key{Dev: 1, Ino: 2, Size: 3, Mtime: 4, Ctime: 5},
		Entries: []Entry{{"1_a.rollback.sql", 0}, {"1_a.sql", 0}, {"2_b.sql", fs.ModeSymlink}, {"3_c.sql", 0}},
		Recs: []*Record{
			{Key: Key{Ino: 7}, Sum: [32]byte{1}},
			{Key: Key{Dev: 9, Ino: 8, Size: 12, Mtime: -1, Ctime: 1 << 62}, Sum: [32]byte{31: 2}, NoTransaction: true, Desc: "the a"},
			nil, nil,
		},
	}
	if err := WriteFile(path, "/srv/migrations", want); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, %v; want mode 0600", info, err)
	}
	if got := ReadFile(path, "/srv/migrations"); !reflect.DeepEqual(got, want) {
		t.Fatalf("read back\n%+v\nwant\n%+v", got, want)
	}
	if got := ReadFile(path, "/srv/other"); !reflect.DeepEqual(got, Cache{}) {
		t.Fatalf("read for another directory: %+v, want nothing", got)
	}
	data, _ := os.ReadFile(path)
	// Version 1, with a checksum that matches: still not read.
	v1 := append(append([]byte(Magic), 1, 0, 0, 0), data[len(Magic)+4:len(data)-4]...)
	v1 = binary.LittleEndian.AppendUint32(v1, crc32.Checksum(v1, crcTable))
	for name, bad := range map[string][]byte{
		"truncated":     data[:len(data)-5],
		"other version": v1,
		"bit flipped":   append(append([]byte{}, data[:20]...), append([]byte{data[20] ^ 1}, data[21:]...)...),
		"empty":         nil,
	} {
		os.WriteFile(path, bad, 0o600)
		if got := ReadFile(path, "/srv/migrations"); !reflect.DeepEqual(got, Cache{}) {
			t.Errorf("%s: %+v, want nothing", name, got)
		}
	}
	if err := WriteFile(path, "/srv/migrations", Cache{Entries: want.Entries}); err == nil {
		t.Error("entries without their records were written")
	}
}

func TestKeyRacy(t *testing.T) {
	now := time.Unix(1000, 0)
	old := now.Add(-RacyWindow - time.Nanosecond).UnixNano()
	if (Key{Mtime: old, Ctime: old}).Racy(now) {
		t.Error("a key older than the window is racy")
	}
	for _, k := range []Key{{Mtime: old, Ctime: now.UnixNano()}, {Mtime: now.Add(-time.Second).UnixNano(), Ctime: old}} {
		if !k.Racy(now) {
			t.Errorf("%+v is not racy at %v", k, now)
		}
	}
}

func TestDirStat(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs fstatat")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.sql"), []byte("select 1;\n"), 0o644)
	os.Symlink("a.sql", filepath.Join(dir, "l.sql"))
	d, err := Open(dir, dir, 100)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	k, ok := d.Stat("a.sql")
	if !ok || k.Size != 10 {
		t.Fatalf("Stat(a.sql) = %+v, %v", k, ok)
	}
	if pk, ok := StatPath(filepath.Join(dir, "a.sql"), 100); !ok || pk != k {
		t.Fatalf("StatPath = %+v, %v; want %+v", pk, ok, k)
	}
	for _, name := range []string{"l.sql", "missing.sql"} {
		if _, ok := d.Stat(name); ok {
			t.Errorf("Stat(%s) succeeded: only regular files have keys", name)
		}
	}
	if _, ok := StatPath(filepath.Join(dir, "a.sql"), 5); ok {
		t.Error("StatPath of a file over the size cap succeeded")
	}
	before, ok := d.Key()
	if !ok {
		t.Fatal("no key for the directory")
	}
	time.Sleep(20 * time.Millisecond)
	os.WriteFile(filepath.Join(dir, "b.sql"), nil, 0o644)
	if after, _ := d.Key(); after == before {
		t.Error("the directory's key did not change when an entry was added")
	}
}
