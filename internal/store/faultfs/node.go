package faultfs

import (
	"math/rand/v2"
	"slices"
	"sync"
)

// node is one file's data and lock state, shared by its handles.
type node struct {
	durable bool // a named file: its writes are logged and survive cuts

	mu     sync.Mutex
	synced []byte // guarded by mu; the durable image
	cur    []byte // guarded by mu; the current bytes
	log    []op   // guarded by mu; writes and truncates since the last sync, oldest first

	// The file's lock state, as SQLite's POSIX locks would hold it.
	shared   int  // guarded by mu; handles holding SHARED or more
	reserved bool // guarded by mu; a handle holds RESERVED or more
	pending  bool // guarded by mu; a handle holds PENDING or more
}

// op is one logged change: a write of data at off, or (trunc) a change of
// the size to size.
type op struct {
	off   int64
	data  []byte
	trunc bool
	size  int64
}

// writeAt writes b at off in img, growing it with zeros as needed.
func writeAt(img, b []byte, off int64) []byte {
	if end := off + int64(len(b)); end > int64(len(img)) {
		img = resize(img, end)
	}
	copy(img[off:], b)
	return img
}

// resize sets img's length to size: cut short, or grown with zeros.
func resize(img []byte, size int64) []byte {
	if size <= int64(len(img)) {
		return img[:size]
	}
	if size <= int64(cap(img)) {
		old := len(img)
		img = img[:size]
		clear(img[old:])
		return img
	}
	grown := make([]byte, size, max(size, 2*int64(cap(img))))
	copy(grown, img)
	return grown
}

// write applies a write to the current bytes and logs it. n.mu is held.
func (n *node) write(b []byte, off int64) {
	n.cur = writeAt(n.cur, b, off)
	if n.durable {
		n.log = append(n.log, op{off: off, data: slices.Clone(b)})
	}
}

// truncate sets the current size and logs it. n.mu is held.
func (n *node) truncate(size int64) {
	n.cur = resize(n.cur, size)
	if n.durable {
		n.log = append(n.log, op{trunc: true, size: size})
	}
}

// sync makes the current bytes durable. n.mu is held.
func (n *node) sync() {
	for _, o := range n.log {
		if o.trunc {
			n.synced = resize(n.synced, o.size)
		} else {
			n.synced = writeAt(n.synced, o.data, o.off)
		}
	}
	clear(n.log)
	n.log = n.log[:0]
}

// survivor returns the image the file has after a power cut: the durable
// image plus each unsynced truncate and each sector piece of each unsynced
// write, kept or dropped 50/50 in log order. n.mu is held.
func (n *node) survivor(rng *rand.Rand, cs *CutStats) []byte {
	img := slices.Clone(n.synced)
	for _, o := range n.log {
		if o.trunc {
			cs.UnsyncedTruncates++
			if rng.IntN(2) == 0 {
				cs.DroppedTruncates++
				continue
			}
			img = resize(img, o.size)
			continue
		}
		end := o.off + int64(len(o.data))
		for start := o.off; start < end; {
			next := min((start/SectorSize+1)*SectorSize, end)
			cs.UnsyncedSectors++
			if rng.IntN(2) == 0 {
				cs.DroppedSectors++
			} else {
				img = writeAt(img, o.data[start-o.off:next-o.off], start)
			}
			start = next
		}
	}
	return img
}
