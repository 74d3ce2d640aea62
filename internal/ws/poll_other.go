//go:build !linux

package ws

import "syscall"

// pollerBlocks is true: without epoll each socket's reader waits in a
// blocking read (one goroutine per socket, idle or not).
const pollerBlocks = true

type poller struct{ fire func(uint64) }

func newPoller(fire func(uint64), log func(string, ...any)) (*poller, error) {
	return &poller{fire: fire}, nil
}

func (p *poller) add(rc syscall.RawConn, id uint64) error { go p.fire(id); return nil }

func (p *poller) rearm(rc syscall.RawConn, id uint64) { go p.fire(id) }

func (p *poller) remove(rc syscall.RawConn) {}

func (p *poller) close() {}
