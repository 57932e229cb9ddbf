//go:build !linux

package pgnative

import "syscall"

// dieWithParent does nothing where the kernel has no parent-death signal: a server of a
// process that dies without Stop is left to the sweep of abandoned directories.
func dieWithParent(*syscall.SysProcAttr) {}
