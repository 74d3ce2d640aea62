//go:build linux

package ws

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// pollerBlocks is false: readers are started only when bytes arrived.
const pollerBlocks = false

// poller is one epoll instance watching idle sockets: a socket is armed
// once (EPOLLONESHOT) and re-armed by its reader when it has read what
// arrived, so at most one reader runs per socket.
type poller struct {
	epfd int
	wake int // an eventfd that ends the loop
	fire func(id uint64)
	done chan struct{}
	log  func(msg string, args ...any)
}

// wakeID marks the eventfd's events (socket ids start at 1).
const wakeID = 0

const armEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller(fire func(uint64), log func(string, ...any)) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := epollEvent(unix.EPOLLIN, wakeID)
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	p := &poller{epfd: epfd, wake: wake, fire: fire, done: make(chan struct{}), log: log}
	go p.loop()
	return p, nil
}

func epollEvent(events uint32, id uint64) unix.EpollEvent {
	return unix.EpollEvent{Events: events, Fd: int32(uint32(id)), Pad: int32(uint32(id >> 32))}
}

func (p *poller) loop() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			// Cannot happen on a valid epoll descriptor; if it does,
			// idle sockets are no longer read: say so loudly.
			p.log("ws: epoll_wait failed; idle WebSockets are no longer read", "err", err)
			return
		}
		for i := range events[:n] {
			id := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			if id == wakeID {
				return
			}
			p.fire(id)
		}
	}
}

// ctl runs epoll_ctl on the connection's descriptor while the runtime
// holds it (it cannot be closed and its number reused meanwhile).
func (p *poller) ctl(rc syscall.RawConn, op int, id uint64) error {
	var err error
	ev := epollEvent(armEvents, id)
	cerr := rc.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	})
	if cerr != nil {
		return cerr
	}
	return err
}

// add watches a socket (armed).
func (p *poller) add(rc syscall.RawConn, id uint64) error {
	return p.ctl(rc, unix.EPOLL_CTL_ADD, id)
}

// rearm watches the socket again after its reader is done.
func (p *poller) rearm(rc syscall.RawConn, id uint64) {
	p.ctl(rc, unix.EPOLL_CTL_MOD, id) // fails only for a closed socket
}

// remove stops watching a socket (before it is closed).
func (p *poller) remove(rc syscall.RawConn) {
	rc.Control(func(fd uintptr) {
		unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, int(fd), nil)
	})
}

// close ends the loop and releases the epoll instance.
func (p *poller) close() {
	var one = [8]byte{1}
	unix.Write(p.wake, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wake)
}
