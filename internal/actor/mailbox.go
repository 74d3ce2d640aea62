// Package actor holds the concurrency rules of one live object, free of
// storage and HTTP: its mailbox (a bounded queue of calls, with events that
// never count against the bound) and its turn token (one turn at a time,
// with re-entry only on the call chain of a turn that is waiting on an
// outgoing call). The driver that runs turns lives in internal/host.
package actor

import (
	"errors"
	"sync"
)

// Errors of Mailbox.Push.
var (
	ErrFull   = errors.New("actor: mailbox full")
	ErrClosed = errors.New("actor: mailbox closed")
)

// Mailbox is a FIFO of an object's events. Calls count against the limit;
// system events (alarms, WebSocket events, WaitUntil) never do and are never
// refused while the mailbox is open. It is safe for concurrent use.
type Mailbox[M any] struct {
	mu     sync.Mutex
	q      []entry[M] // guarded by mu; q[head:] are queued
	head   int        // guarded by mu
	calls  int        // guarded by mu; queued calls
	dead   int        // guarded by mu; removed entries still in q
	limit  int
	closed bool // guarded by mu

	signal chan struct{} // one pending wake-up for the consumer
}

type entry[M any] struct {
	m      M
	system bool
	dead   bool // removed before it was popped
}

// NewMailbox returns an open mailbox holding at most limit calls.
func NewMailbox[M any](limit int) *Mailbox[M] {
	return &Mailbox[M]{limit: limit, signal: make(chan struct{}, 1)}
}

// Push queues m. A call (system false) beyond the limit is refused with
// ErrFull; anything pushed after Close is refused with ErrClosed.
func (b *Mailbox[M]) Push(m M, system bool) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	if !system {
		if b.calls >= b.limit {
			b.mu.Unlock()
			return ErrFull
		}
		b.calls++
	}
	b.q = append(b.q, entry[M]{m: m, system: system})
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
	return nil
}

// Pop takes the oldest event, if any.
func (b *Mailbox[M]) Pop() (M, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var zero M
	for b.head < len(b.q) {
		e := b.q[b.head]
		b.q[b.head] = entry[M]{}
		b.head++
		if e.dead {
			b.dead--
			continue
		}
		if !e.system {
			b.calls--
		}
		b.compactLocked()
		return e.m, true
	}
	b.compactLocked()
	return zero, false
}

func (b *Mailbox[M]) compactLocked() {
	if b.head == len(b.q) {
		b.q, b.head = b.q[:0], 0
	} else if b.head > 64 && b.head*2 > len(b.q) {
		n := copy(b.q, b.q[b.head:])
		clear(b.q[n:])
		b.q, b.head = b.q[:n], 0
	}
}

// Remove takes a queued event out (a call whose caller gave up), freeing
// its place; it reports whether it found one. match identifies it.
func (b *Mailbox[M]) Remove(match func(M) bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := b.head; i < len(b.q); i++ {
		e := &b.q[i]
		if !e.dead && match(e.m) {
			e.dead = true
			b.dead++
			if !e.system {
				b.calls--
			}
			var zero M
			e.m = zero
			return true
		}
	}
	return false
}

// Len reports the queued events.
func (b *Mailbox[M]) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.q) - b.head - b.dead
}

// Signal is readable when something was pushed since the last read: the
// consumer waits on it when Pop finds nothing.
func (b *Mailbox[M]) Signal() <-chan struct{} { return b.signal }

// CloseIfEmpty closes the mailbox only if nothing is queued, and reports
// whether it did: an idle object can retire without racing a new event.
func (b *Mailbox[M]) CloseIfEmpty() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.q)-b.head-b.dead != 0 {
		return false
	}
	b.closed = true
	return true
}

// Close closes the mailbox and returns what was still queued, oldest
// first, for the caller to fail.
func (b *Mailbox[M]) Close() []M {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	out := make([]M, 0, len(b.q)-b.head)
	for _, e := range b.q[b.head:] {
		if !e.dead {
			out = append(out, e.m)
		}
	}
	b.q, b.head, b.calls, b.dead = nil, 0, 0, 0
	return out
}
