package dircache

import (
	"bytes"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/poststack/poststack/pkg/safefile"
)

// Dir is a migrations directory opened once; its files are listed, stat'ed and read relative
// to it (getdents, fstatat, openat) without os.File's stat and poller registration per file.
// The type getdents reports decides how an entry is read: a regular file through openat without
// following links, a symbolic link through safefile (resolved, and checked to stay inside
// root), anything else not at all.
type Dir struct {
	fd   int
	dir  string // as given, to name and to resolve symbolic links
	root string // where symbolic links may lead
	max  int64  // the largest file read
	// lim is max+1 as an int: a read never asks for more, which tells a file at the cap from
	// a larger one.
	lim int
}

// Open opens the directory dir, whose symbolic links may lead to files inside root, for
// files of at most max bytes.
func Open(dir, root string, max int64) (*Dir, error) {
	fd, err := openRetry(func() (int, error) {
		return syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &Dir{fd: fd, dir: dir, root: root, max: max, lim: int(min(max, math.MaxInt-1)) + 1}, nil
}

// Close closes the directory.
func (d *Dir) Close() { syscall.Close(d.fd) }

// List returns the entries sorted by name. One large getdents buffer lists thousands of
// entries in a couple of system calls, where os.ReadDir makes one per 8 KiB.
func (d *Dir) List() ([]Entry, error) {
	buf := make([]byte, 256<<10)
	var out []Entry
	// The names are substrings of one string per getdents call rather than one allocation
	// each: thousands of small allocations show in a run that has little else to do.
	for {
		n, err := syscall.Getdents(d.fd, buf)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "getdents", Path: ".", Err: err}
		}
		if n <= 0 {
			break
		}
		chunk := string(buf[:n])
		for off := 0; off < n; {
			b := buf[off:n]
			// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
			reclen := int(*(*uint16)(unsafe.Pointer(&b[16])))
			if reclen < 20 || reclen > len(b) {
				return nil, &fs.PathError{Op: "getdents", Path: ".", Err: syscall.EIO}
			}
			typ := b[18]
			nameLen := bytes.IndexByte(b[19:reclen], 0)
			if nameLen < 0 {
				nameLen = reclen - 19
			}
			name := chunk[off+19 : off+19+nameLen]
			off += reclen
			if name == "" || name == "." || name == ".." {
				continue
			}
			e := Entry{Name: name, Mode: direntMode(typ)}
			if typ == syscall.DT_UNKNOWN {
				var st unix.Stat_t
				if unix.Fstatat(d.fd, e.Name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
					e.Mode = statMode(st.Mode)
				}
			}
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// direntMode is the fs.FileMode type bits of a getdents d_type; DT_UNKNOWN (some file systems
// report no types) reads as regular until fstatat says otherwise.
func direntMode(typ uint8) fs.FileMode {
	switch typ {
	case syscall.DT_REG, syscall.DT_UNKNOWN:
		return 0
	case syscall.DT_DIR:
		return fs.ModeDir
	case syscall.DT_LNK:
		return fs.ModeSymlink
	case syscall.DT_FIFO:
		return fs.ModeNamedPipe
	case syscall.DT_SOCK:
		return fs.ModeSocket
	case syscall.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case syscall.DT_BLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// statMode is the fs.FileMode type bits of a stat's st_mode.
func statMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// CanStat tells whether Stat, Key and StatPath work here (they need fstatat).
func (d *Dir) CanStat() bool { return true }

// Key returns the key of the directory itself.
func (d *Dir) Key() (Key, bool) {
	var st unix.Stat_t
	if err := fstat(d.fd, &st); err != nil {
		return Key{}, false
	}
	return key(&st), true
}

// Stat returns the key of the regular file base, not following a symbolic link: only regular
// files no larger than the cap are cached.
func (d *Dir) Stat(base string) (Key, bool) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.EINTR {
			continue
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > d.max {
			return Key{}, false
		}
		return key(&st), true
	}
}

// StatPath is Stat for the file path, which names a regular file of at most max bytes.
func StatPath(path string, max int64) (Key, bool) {
	var st unix.Stat_t
	for {
		err := unix.Lstat(path, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > max {
			return Key{}, false
		}
		return key(&st), true
	}
}

func key(st *unix.Stat_t) Key {
	return Key{Dev: st.Dev, Ino: st.Ino, Size: st.Size, Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano()}
}

// Read reads the file base, listed with type mode: openat without following a symbolic link
// and without waiting on a FIFO, read until EOF or past the cap, close. It uses buf when the
// file fits.
//
// getdents said the entry is a regular file, so a file that fits buf (nearly every migration)
// gets no fstat: it would add a fifth of the system calls of a load (measured: 8-10% slower on
// 10000 files). A larger file is fstat'ed before buf grows. What the listing says can change
// only if something rewrites the directory while it is read, and then the flags and the cap
// keep it harmless: a symbolic link fails the open (and is then checked as a link), a FIFO
// reads as empty at once, a directory fails the read, a device fails the fstat's check.
func (d *Dir) Read(base string, mode fs.FileMode, buf []byte) ([]byte, error) {
	switch {
	case mode&fs.ModeSymlink != 0:
		return d.readLink(base)
	case mode != 0:
		return nil, safefile.CheckMode(d.join(base), mode)
	}
	fd, err := openRetry(func() (int, error) {
		return syscall.Openat(d.fd, base, syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	})
	if err == syscall.ELOOP {
		// Replaced by a symbolic link since it was listed.
		return d.readLink(base)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: base, Err: err}
	}
	defer syscall.Close(fd)
	buf = buf[:0]
	statted := false
	for {
		if len(buf) == cap(buf) {
			// Larger than buf: now an fstat is cheap beside the reads, and it refuses a
			// file over the cap (or a device) before memory is spent on it.
			grow := 2 * cap(buf)
			if !statted {
				statted = true
				var st unix.Stat_t
				if err := fstat(fd, &st); err != nil {
					return nil, &fs.PathError{Op: "fstat", Path: base, Err: err}
				}
				if m := statMode(st.Mode); m != 0 {
					return nil, safefile.CheckMode(d.join(base), m)
				}
				if st.Size > d.max {
					return nil, safefile.TooLarge(d.join(base), d.max)
				}
				grow = max(grow, int(st.Size)+1)
			}
			grow = max(min(grow, d.lim), len(buf)+1)
			buf = append(make([]byte, 0, grow), buf...)
		}
		// Never more than one byte past the cap, whatever the stat said: a file can grow.
		n, err := syscall.Read(fd, buf[len(buf):min(cap(buf), d.lim)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: base, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		short := len(buf)+n < cap(buf)
		buf = buf[:len(buf)+n]
		if len(buf) >= d.lim {
			return nil, safefile.TooLarge(d.join(base), d.max)
		}
		if short {
			// A regular file reads short only at its end: skip the read that would
			// return 0, a quarter of the system calls per file (they dominate planning
			// thousands of files).
			return buf, nil
		}
	}
}

// readLink reads the symbolic link base: only a regular file inside root, no larger than the cap.
func (d *Dir) readLink(base string) ([]byte, error) {
	return safefile.ReadFile(d.root, d.join(base), safefile.WithMaxSize(d.max))
}

func (d *Dir) join(base string) string { return filepath.Join(d.dir, base) }

func fstat(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != unix.EINTR {
			return err
		}
	}
}

func openRetry(open func() (int, error)) (int, error) {
	for {
		fd, err := open()
		if err != syscall.EINTR {
			return fd, err
		}
	}
}
