package subst

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Spool holds output back until the caller knows it is good: in memory up
// to a limit, then in a private (0600) temporary file, which Close removes.
// Rendered files may hold secrets, hence the private file and the cleanup.
// A Spool is not safe for concurrent use.
type Spool struct {
	dir   string
	limit int
	mem   []byte
	f     *os.File
	size  int64
	err   error
}

// NewSpool returns a Spool that keeps up to limit bytes in memory and spills
// to a temporary file in dir (os.TempDir() if dir is "").
func NewSpool(dir string, limit int) *Spool {
	return &Spool{dir: dir, limit: limit}
}

// Write appends p. Once the data outgrows the limit, all of it moves to the
// file.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && len(s.mem)+len(p) <= s.limit {
		s.mem = append(s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	if s.f == nil {
		// os.CreateTemp makes the file 0600.
		f, err := os.CreateTemp(s.dir, "poststack-spool-*")
		if err != nil {
			s.err = fmt.Errorf("spool: %w", err)
			return 0, s.err
		}
		s.f = f
		if _, err := f.WriteAt(s.mem, 0); err != nil {
			s.err = fmt.Errorf("spool: writing %s: %w", f.Name(), err)
			return 0, s.err
		}
		s.mem = nil
	}
	n, err := s.f.WriteAt(p, s.size)
	s.size += int64(n)
	if err != nil {
		s.err = fmt.Errorf("spool: writing %s: %w", s.f.Name(), err)
		return n, s.err
	}
	return n, nil
}

// Len is the number of bytes held.
func (s *Spool) Len() int64 { return s.size }

// WriteTo writes everything held to w; it may be called more than once.
func (s *Spool) WriteTo(w io.Writer) (int64, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil {
		n, err := w.Write(s.mem)
		return int64(n), err
	}
	// io.Copy's 32 KiB buffer would make two system calls per 32 KiB.
	return io.CopyBuffer(w, io.NewSectionReader(s.f, 0, s.size), make([]byte, copySize))
}

// copySize is WriteTo's buffer for a spilled Spool.
const copySize = 1 << 20

// Close drops the data and removes the temporary file, if any.
func (s *Spool) Close() error {
	s.mem = nil
	if s.err == nil {
		s.err = errors.New("spool: closed")
	}
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	err := errors.Join(s.f.Close(), os.Remove(name))
	s.f = nil
	if err != nil {
		return fmt.Errorf("spool: removing %s: %w", name, err)
	}
	return nil
}
