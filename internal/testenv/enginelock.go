package testenv

import (
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// engineLock serialises the test binaries that use a container engine: go test runs packages
// in parallel, and podman 4.3 does not survive several processes creating and removing
// networks, pods and build containers at once ("route ip+net: no such network interface",
// a build container "not known" half-way). The first engine test of a binary takes the lock
// and the binary holds it until it exits; binaries without engine tests never wait. This is
// process state by nature (a file lock belongs to the process), hence the package variable.
var engineLock = sync.OnceValue(func() error {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "poststack-engine-tests.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX) // f stays open: the lock lives as long as the process
})

// lockEngines takes the engine lock for this test binary, logging when it had to wait.
func lockEngines(tb testing.TB) {
	tb.Helper()
	if err := engineLock(); err != nil {
		tb.Logf("testenv: engine lock: %v (running unserialised)", err)
	}
}
