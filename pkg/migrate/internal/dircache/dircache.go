// Package dircache is how pkg/migrate reads a migrations directory fast: Dir lists, stats and
// reads its files with few system calls, and a cache file remembers, per file, what loading it
// computed, keyed by what one stat says about the file, together with the directory's listing,
// keyed by what a stat says about the directory.
//
// With thousands of applied migrations, reading every file on every run costs more than the
// rest of a run with nothing to do. A file whose stat matches its record is not opened; a
// directory whose stat matches the cached listing is not listed (creating, removing or renaming
// an entry changes the directory's modification and change times). The change time cannot be
// set by users, so an edit that puts the modification time back is still seen.
package dircache

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"time"
	"unsafe"
)

// Entry is a directory entry as listed.
type Entry struct {
	Name string
	// Mode holds the entry's type bits only: 0 for a regular file, fs.ModeSymlink for a
	// symbolic link (not followed), fs.ModeDir, fs.ModeNamedPipe, ….
	Mode fs.FileMode
}

// Key is what a stat says about a file or a directory; a change to it changes at least one
// field.
type Key struct {
	Dev, Ino     uint64
	Size         int64
	Mtime, Ctime int64 // nanoseconds since the epoch
}

// RacyWindow is how old a file's timestamps must be, when the run that stat'ed it started, for
// its record to be trusted later: a file written in the same timestamp tick as an edit after
// our read would otherwise keep a key that matches content we never saw. File system
// timestamps are coarse (a kernel tick) and clocks of network file systems drift, so the margin
// is wide.
const RacyWindow = 2 * time.Second

// Racy tells whether the file changed too close to ref for its key to prove anything.
func (k Key) Racy(ref time.Time) bool {
	limit := ref.Add(-RacyWindow).UnixNano()
	return k.Mtime >= limit || k.Ctime >= limit
}

// Record is what loading one regular file without problems computed, and the key of the file
// it was computed from.
type Record struct {
	Key           Key
	Sum           [sha256.Size]byte
	NoTransaction bool
	Desc          string
}

// Cache is what a cache file holds.
type Cache struct {
	// Dir is the directory's key when Entries was listed; the zero Key when the listing is
	// not to be trusted (the directory changed too recently).
	Dir Key
	// Entries are the entries that matter to the caller, sorted by name, and Recs[i] the
	// record of Entries[i] (nil: none).
	Entries []Entry
	Recs    []*Record
}

// Magic and Version start every cache file; a file with others is ignored. Version 2 added
// the directory's key and listing.
const (
	Magic   = "PSMIGC\x00\x00"
	Version = 2
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ReadFile returns the cache of dir kept in the file path; a missing, unreadable, corrupt or
// foreign file gives the zero Cache: the cache only saves time, so its loss is never an error.
func ReadFile(path, dir string) Cache {
	// The names and descriptions point into data (never written after this) rather than
	// being ten thousand small copies: each fresh page costs a fault, and they add up.
	data, err := os.ReadFile(path)
	if err != nil || len(data) < len(Magic)+4+4 {
		return Cache{}
	}
	body, trailer := data[:len(data)-4], data[len(data)-4:]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(trailer) {
		return Cache{}
	}
	d := decoder{b: body}
	if string(d.bytes(len(Magic))) != Magic || d.u32() != Version || d.str() != dir {
		return Cache{}
	}
	var c Cache
	c.Dir = d.key()
	n := int(d.u32())
	if d.bad || n > len(d.b) {
		return Cache{}
	}
	nrec := int(d.u32())
	if d.bad || nrec > n {
		return Cache{}
	}
	c.Entries, c.Recs = make([]Entry, n), make([]*Record, n)
	// One allocation for all records.
	recs := make([]Record, 0, nrec)
	for i := range c.Entries {
		e := &c.Entries[i]
		e.Name = d.str()
		e.Mode = fs.FileMode(d.u32())
		flags := d.u8()
		if flags&flagRecord != 0 {
			if len(recs) == nrec {
				return Cache{}
			}
			recs = append(recs, Record{Key: d.key()})
			r := &recs[len(recs)-1]
			copy(r.Sum[:], d.bytes(sha256.Size))
			r.NoTransaction = flags&flagNoTransaction != 0
			r.Desc = d.str()
			c.Recs[i] = r
		}
		if d.bad || i > 0 && c.Entries[i-1].Name >= e.Name {
			return Cache{}
		}
	}
	if d.bad || len(d.b) != 0 || len(recs) != nrec {
		return Cache{}
	}
	return c
}

const (
	flagRecord = 1 << iota
	flagNoTransaction
)

// WriteFile replaces the cache file path of dir with c, whose entries are sorted by name,
// atomically (a temporary file renamed over it), readable by its owner only: it names the
// user's files.
func WriteFile(path, dir string, c Cache) error {
	if len(c.Recs) != len(c.Entries) {
		return fmt.Errorf("migrations cache: %d records for %d entries", len(c.Recs), len(c.Entries))
	}
	nrec := 0
	for _, r := range c.Recs {
		if r != nil {
			nrec++
		}
	}
	b := make([]byte, 0, 64+len(dir)+len(c.Entries)*32+nrec*96)
	b = append(b, Magic...)
	b = binary.LittleEndian.AppendUint32(b, Version)
	b = appendStr(b, dir)
	b = appendKey(b, c.Dir)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(c.Entries)))
	b = binary.LittleEndian.AppendUint32(b, uint32(nrec))
	for i, e := range c.Entries {
		b = appendStr(b, e.Name)
		b = binary.LittleEndian.AppendUint32(b, uint32(e.Mode))
		r := c.Recs[i]
		if r == nil {
			b = append(b, 0)
			continue
		}
		flags := byte(flagRecord)
		if r.NoTransaction {
			flags |= flagNoTransaction
		}
		b = append(b, flags)
		b = appendKey(b, r.Key)
		b = append(b, r.Sum[:]...)
		b = appendStr(b, r.Desc)
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))

	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("migrations cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("migrations cache: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("migrations cache: %w", err)
	}
	return nil
}

func appendStr(b []byte, s string) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendKey(b []byte, k Key) []byte {
	for _, v := range [...]uint64{k.Dev, k.Ino, uint64(k.Size), uint64(k.Mtime), uint64(k.Ctime)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

// decoder reads the cache format; any overrun sets bad and yields zero values.
type decoder struct {
	b   []byte
	bad bool
}

func (d *decoder) bytes(n int) []byte {
	if d.bad || n < 0 || n > len(d.b) {
		d.bad = true
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

func (d *decoder) u8() byte {
	if b := d.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if b := d.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (d *decoder) u64() uint64 {
	if b := d.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

func (d *decoder) key() Key {
	return Key{Dev: d.u64(), Ino: d.u64(), Size: int64(d.u64()), Mtime: int64(d.u64()), Ctime: int64(d.u64())}
}

// str returns a string sharing the decoder's memory, which must therefore never change.
func (d *decoder) str() string {
	n := d.u32()
	if uint64(n) > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	b := d.bytes(int(n))
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
