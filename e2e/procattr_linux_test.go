package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the server if the test process dies
// first (a test timeout's panic, an interrupt), when t.Cleanup cannot run.
// No goroutine of the tests locks its OS thread, so the thread that starts
// the server does not exit while the test runs.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
