package migrate

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"
	"unsafe"

	"github.com/poststack/poststack/pkg/safefile"
	"github.com/poststack/poststack/pkg/xdg"
)

// The load cache remembers, per file of a migrations directory, what loading it computed
// (checksum, directives, description), keyed by what one stat says about the file: device,
// inode, size, modification and change times. A file whose stat matches is not opened: with
// thousands of applied migrations, reading every file on every run costs more than the rest of
// a run with nothing to do. The change time cannot be set by users, so an edit that puts the
// modification time back is still seen. Only files that loaded without a problem are kept.

// racyWindow is how old a file's timestamps must be, when the run that stat'ed it started,
// for its entry to be trusted later: a file written in the same timestamp tick as an edit after
// our read would otherwise keep a key that matches content we never saw. File system
// timestamps are coarse (a kernel tick) and clocks of network file systems drift, so the margin
// is wide.
const racyWindow = 2 * time.Second

// cacheMagic and cacheVersion start every cache file; a file with others is ignored.
const (
	cacheMagic   = "PSMIGC\x00\x00"
	cacheVersion = 1
)

// fileKey is what a stat says about a file; a changed file changes at least one field.
type fileKey struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds since the epoch
}

// racy tells whether the file changed too close to ref for its key to prove anything.
func (k fileKey) racy(ref time.Time) bool {
	limit := ref.Add(-racyWindow).UnixNano()
	return k.mtime >= limit || k.ctime >= limit
}

// cacheEntry is what loading one file without problems computed.
type cacheEntry struct {
	key           fileKey
	sum           [sha256.Size]byte
	noTransaction bool
	desc          string
}

// CachePath returns where LoadDir's cache for the directory dir lives:
// $XDG_CACHE_HOME/poststack/migrate/<hex SHA-256 of the absolute dir>, or ~/.cache/… when
// XDG_CACHE_HOME is unset. dir must be absolute, so that two spellings of it share one cache.
func CachePath(dir string, getenv func(string) string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("migrations cache: %s is not an absolute path", dir)
	}
	sum := sha256.Sum256([]byte(filepath.Clean(dir)))
	p, err := xdg.CacheDir(getenv, "migrate", hex.EncodeToString(sum[:]))
	if err != nil {
		return "", fmt.Errorf("migrations cache: %w", err)
	}
	return p, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// cachedFile is one entry of a cache file as read.
type cachedFile struct {
	name string
	cacheEntry
}

// readCache returns the entries of the cache file for dir sorted by file name; a missing,
// unreadable, corrupt or foreign file gives nil: the cache only saves time, so its loss is
// never an error.
func readCache(path, dir string) []cachedFile {
	// The names and descriptions point into data (never written after this) rather than
	// being ten thousand small copies: each fresh page costs a fault, and they add up.
	data, err := os.ReadFile(path)
	if err != nil || len(data) < len(cacheMagic)+4+4 {
		return nil
	}
	body, trailer := data[:len(data)-4], data[len(data)-4:]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(trailer) {
		return nil
	}
	d := decoder{b: body}
	if string(d.bytes(len(cacheMagic))) != cacheMagic || d.u32() != cacheVersion || d.str() != dir {
		return nil
	}
	n := int(d.u32())
	if d.bad || n > len(d.b) {
		return nil
	}
	out := make([]cachedFile, n)
	for i := range out {
		e := &out[i]
		e.name = d.str()
		e.key = fileKey{dev: d.u64(), ino: d.u64(), size: int64(d.u64()), mtime: int64(d.u64()), ctime: int64(d.u64())}
		copy(e.sum[:], d.bytes(sha256.Size))
		e.noTransaction = d.u8() == 1
		e.desc = d.str()
		if d.bad || i > 0 && out[i-1].name >= e.name {
			return nil
		}
	}
	if d.bad || len(d.b) != 0 {
		return nil
	}
	return out
}

// writeCache replaces the cache file atomically with entries, which are sorted by name (a temporary file renamed over it), readable
// by its owner only: it names the user's files.
func writeCache(path, dir string, entries []cachedFile) error {
	b := make([]byte, 0, 64+len(dir)+len(entries)*128)
	b = append(b, cacheMagic...)
	b = binary.LittleEndian.AppendUint32(b, cacheVersion)
	b = appendStr(b, dir)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = appendStr(b, e.name)
		for _, v := range []uint64{e.key.dev, e.key.ino, uint64(e.key.size), uint64(e.key.mtime), uint64(e.key.ctime)} {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		b = append(b, e.sum[:]...)
		flag := byte(0)
		if e.noTransaction {
			flag = 1
		}
		b = append(b, flag)
		b = appendStr(b, e.desc)
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

// lazyText is where a script loaded from the cache reads its text when it is needed, and the
// checksum the text must have: the one the checks and the drift detection were done with.
type lazyText struct {
	path string
	sum  [sha256.Size]byte
	max  int64 // the size cap of the load
}

// Text returns the script's SQL, reading the file first when Load took what it needed from its
// cache and left SQL empty. The file must still hold what Load checked: when its checksum
// differs, Text returns a *SourceError and the script is not run from it. On success SQL is
// filled in, so Text reads a file at most once.
func (s *Script) Text() (string, error) {
	if s.lazy.path == "" {
		return s.SQL, nil
	}
	// The file was a regular file when it was cached; read it by the same rules as LoadDir.
	data, err := safefile.ReadFile(filepath.Dir(s.lazy.path), s.lazy.path, safefile.WithMaxSize(s.lazy.max))
	if err != nil {
		return "", &SourceError{Problems: []Problem{{File: s.File, Msg: readProblem(err)}}}
	}
	sql, sum := normalize(data)
	if sum != s.lazy.sum {
		return "", &SourceError{Problems: []Problem{{File: s.File, Msg: "changed after it was checked; nothing was run from it, run again"}}}
	}
	s.SQL = sql
	s.lazy = lazyText{}
	return s.SQL, nil
}
