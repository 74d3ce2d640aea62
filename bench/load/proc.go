package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// rssKiB returns the resident set size of process pid in KiB (VmRSS of
// /proc/PID/status).
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest) // "12345 kB"
		if len(fields) == 0 {
			break
		}
		return strconv.ParseInt(fields[0], 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// fdCount returns the number of open file descriptors of process pid.
func fdCount(pid int) (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, err
	}
	return len(entries), nil
}

// raiseFileLimit raises this process's soft limit on open files to the hard
// limit: thousands of client sockets need as many descriptors.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("getrlimit: %v", err)
		return
	}
	if lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		logf("setrlimit: %v", err)
	}
}

// cpuSeconds returns the user plus system CPU time this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// sampleRSS records the RSS of pid under name; a failure counts as an error
// and returns false.
func sampleRSS(m *metrics, pid int, name string) (int64, bool) {
	kib, err := rssKiB(pid)
	if err != nil {
		logf("rss of pid %d: %v", pid, err)
		m.add("errors", 1)
		return 0, false
	}
	m.set(name, float64(kib))
	return kib, true
}

// sleepCtx sleeps for d or until ctx is done, whichever comes first, and
// reports whether the full time passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// flagExit turns a flag parse error into an exit code: 0 for -h, else 2.
func flagExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(os.Stderr, "load:", err)
	return 2
}

// runRSS is the rss subcommand: metrics rss_kib and fds of one process.
func runRSS(args []string) int {
	lf := newLoadFlags("rss")
	pid := lf.fs.Int("pid", 0, "process to measure (required)")
	if err := lf.parse(args); err != nil {
		return flagExit(err)
	}
	if *pid <= 0 {
		return flagExit(errors.New("rss: -pid is required"))
	}
	return runLoad(lf, 10*time.Second, func(ctx context.Context, m *metrics) {
		sampleRSS(m, *pid, "rss_kib")
		n, err := fdCount(*pid)
		if err != nil {
			logf("fds of pid %d: %v", *pid, err)
			m.add("errors", 1)
			return
		}
		m.set("fds", float64(n))
	})
}
