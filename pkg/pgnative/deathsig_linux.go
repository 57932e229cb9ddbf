package pgnative

import "syscall"

// dieWithParent makes the kernel send the postmaster SIGQUIT (an immediate shutdown, which
// ends its children too) when this process dies without Stop.
func dieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGQUIT }
