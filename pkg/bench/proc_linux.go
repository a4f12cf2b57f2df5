package bench

import "syscall"

// childAttr makes a component die with the benchmark, even when the
// benchmark is killed.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
