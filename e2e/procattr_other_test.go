//go:build !linux

package e2e

import "os/exec"

// dieWithTest is a no-op where the kernel offers no parent-death signal;
// t.Cleanup still kills the server whenever a test ends normally.
func dieWithTest(cmd *exec.Cmd) {}
