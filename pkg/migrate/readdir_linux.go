package migrate

import (
	"bytes"
	"io/fs"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// osDir is a migrations directory opened once; its files are listed, stat'ed and read relative
// to it (getdents, fstatat, openat) without os.File's stat and poller registration per file.
type osDir struct {
	fd int
}

func openDir(dir string) (*osDir, error) {
	fd, err := openRetry(func() (int, error) {
		return syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &osDir{fd: fd}, nil
}

func (d *osDir) close() { syscall.Close(d.fd) }

// list returns the entries sorted by name. One large getdents buffer lists thousands of
// entries in a couple of system calls, where os.ReadDir makes one per 8 KiB.
func (d *osDir) list() ([]dirEntry, error) {
	buf := make([]byte, 256<<10)
	var out []dirEntry
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
			e := dirEntry{name: name, isDir: typ == syscall.DT_DIR}
			if typ == syscall.DT_UNKNOWN {
				var st unix.Stat_t
				if unix.Fstatat(d.fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
					e.isDir = st.Mode&unix.S_IFMT == unix.S_IFDIR
				}
			}
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

func (d *osDir) canStat() bool { return true }

// stat returns the cache key of the file base (following symbolic links, as reading does).
func (d *osDir) stat(base string) (fileKey, bool) {
	var st unix.Stat_t
	for {
		err := unix.Fstatat(d.fd, base, &st, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			return fileKey{}, false
		}
		return fileKey{
			dev: st.Dev, ino: st.Ino, size: st.Size,
			mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
		}, true
	}
}

// read reads the file base: openat, read until EOF, close. It uses buf when the file fits.
func (d *osDir) read(base string, buf []byte) ([]byte, error) {
	fd, err := openRetry(func() (int, error) {
		return syscall.Openat(d.fd, base, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: base, Err: err}
	}
	defer syscall.Close(fd)
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := syscall.Read(fd, buf[len(buf):cap(buf)])
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
		if short {
			// A regular file reads short only at its end: skip the read that would
			// return 0, a quarter of the system calls per file (they dominate planning
			// thousands of files).
			return buf, nil
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
