// Package fsyncrate measures a disk's raw fsync rate, the reference every
// durability benchmark is a ratio of (DESIGN.md §5): in a directory, 200
// times append 4 KiB to a new file and fsync it; rate = 200 / elapsed.
package fsyncrate

import (
	"os"
	"time"
)

// Measure returns the raw fsync rate of dir's disk, per second.
func Measure(dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	const n = 200
	start := time.Now()
	for i := 0; i < n; i++ {
		if _, err := f.Write(buf); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return n / time.Since(start).Seconds(), nil
}
