//go:build unix

package safefile

import (
	"errors"
	"os"
	"syscall"
)

// openFile opens name for reading. O_NONBLOCK makes opening a FIFO return at
// once instead of waiting for a writer (the fstat that follows refuses it);
// on a regular file it changes nothing. nofollow refuses a final symbolic
// link, for a name whose links were already resolved and checked.
func openFile(name string, nofollow bool) (*os.File, error) {
	flag := os.O_RDONLY | syscall.O_NONBLOCK
	if nofollow {
		flag |= syscall.O_NOFOLLOW
	}
	return os.OpenFile(name, flag, 0)
}

func isLoop(err error) bool { return errors.Is(err, syscall.ELOOP) }
