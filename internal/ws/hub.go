// Package ws holds the WebSocket connections the runtime owns for its
// objects (DESIGN.md §4 "WebSockets"). An object holds only handles: the
// connections, their tags and attachments, and each object's auto-response
// live here, so an object can be evicted (hibernate) while its sockets stay
// open, and the next message wakes it.
//
// An idle socket costs no goroutine and no buffer: on Linux one epoll loop
// per Hub watches every idle socket; a readable socket gets a short-lived
// goroutine that reads the frames that arrived (with a pooled buffer) and
// hands complete messages to the Sink, then goes back to the loop. Output
// is a queue per socket, each frame released when the promise it depends on
// (the output gate) is ready, written by a goroutine that exists only while
// the queue is not empty.
//
// Invariants:
//   - A frame an object sends leaves only after its promise is ready
//     (the writes made before the send are durable), and frames of one
//     socket leave in the order they were sent. A frame whose promise
//     failed is dropped (the turn that sent it failed), never sent.
//   - Messages of one socket reach the Sink in the order they arrived.
//   - Every socket that ends gets at most one final event (Closed or
//     Error), and none when the object itself closed it or the hub shut
//     down.
//   - A socket leaves its group (State.WebSockets) as soon as it starts
//     closing, before its final event is delivered.
package ws

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/route"
)

// Limits of the platform (do-spec LIM-20, LIM-21, LIM-22).
const (
	MaxTags               = 10
	MaxTagChars           = 256
	MaxAttachment         = 16 << 10
	MaxAutoResponseChars  = 2048
	DefaultWriteTimeout   = 30 * time.Second
	DefaultCloseTimeout   = 5 * time.Second
	DefaultMaxQueued      = 64 << 20
	DefaultMaxInflight    = 16
	DefaultFrameTimeout   = 60 * time.Second
	DefaultHandshakeLimit = 10 * time.Second
)

// Sink receives the events of every socket of a Hub. Its methods must not
// block: they queue the event for the socket's object.
type Sink interface {
	// Message delivers one complete data message. done must be called
	// once the object has handled it: a socket stops being read while
	// too many of its messages are outstanding (back-pressure reaches the
	// client through TCP).
	Message(c *Conn, binary bool, data []byte, done func())
	// Closed reports the client closed the socket (clean) or the
	// connection dropped without a close frame (code 1006, not clean).
	Closed(c *Conn, code int, reason string, clean bool)
	// Error reports the runtime closed the socket because of an error
	// (a protocol violation, an oversize message, a failed write).
	Error(c *Conn, err error)
}

// Config configures a Hub. Zero durations and counts take the defaults.
type Config struct {
	Sink        Sink
	Logger      *slog.Logger
	MaxMessage  int64 // incoming message limit; beyond it the socket closes with 1009
	MaxPerGroup int   // sockets per object, hibernated ones included
	// WriteTimeout bounds one write to a client; a client that does not
	// read for this long is disconnected.
	WriteTimeout time.Duration
	// CloseTimeout bounds the wait for the client's close frame after
	// the runtime sent one.
	CloseTimeout time.Duration
	// MaxQueued bounds the bytes waiting to be written to one socket;
	// beyond it the socket closes with 1008 (the client reads too slowly).
	MaxQueued int64
	// MaxInflight is how many messages of one socket may wait for their
	// object before the socket is no longer read.
	MaxInflight int
	// FrameTimeout bounds how long a frame whose first bytes arrived may
	// take to arrive whole.
	FrameTimeout time.Duration
	// Now stamps auto-responses (nil: time.Now).
	Now func() time.Time
	// Live reports whether an object has a live instance (nil: never);
	// the group of a live object is kept when its last socket goes.
	Live func(route.ObjectID) bool
}

// ErrClosed is the error of a send on a socket that is closing or closed.
var ErrClosed = errs.ErrWebSocketClosed

// Hub owns the sockets of one runtime.
type Hub struct {
	cfg  Config
	log  *slog.Logger
	poll *poller

	mu      sync.Mutex
	groups  map[route.ObjectID]*Group // guarded by mu
	conns   map[uint64]*Conn          // guarded by mu; sockets with a connection, by id
	nextID  uint64                    // guarded by mu
	closing bool                      // guarded by mu; Shutdown began: no new sockets
	shut    bool                      // guarded by mu; the poller is gone: no connection may attach

	open    atomic.Int64 // sockets in groups (pending, open)
	tcpOpen atomic.Int64 // connections not yet closed
}

// New starts a Hub.
func New(cfg Config) (*Hub, error) {
	if cfg.Sink == nil {
		return nil, errors.New("ws: Config.Sink is nil")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	def(&cfg.CloseTimeout, DefaultCloseTimeout)
	def(&cfg.FrameTimeout, DefaultFrameTimeout)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Live == nil {
		cfg.Live = func(route.ObjectID) bool { return false }
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 32 << 20
	}
	if cfg.MaxPerGroup <= 0 {
		cfg.MaxPerGroup = 32768
	}
	h := &Hub{
		cfg:    cfg,
		log:    cfg.Logger,
		groups: make(map[route.ObjectID]*Group),
		conns:  make(map[uint64]*Conn),
	}
	p, err := newPoller(h.ready, h.log.Error)
	if err != nil {
		return nil, fmt.Errorf("ws: %w", err)
	}
	h.poll = p
	return h, nil
}

// ready is the poller's callback: the socket id has data (or hung up).
func (h *Hub) ready(id uint64) {
	h.mu.Lock()
	c := h.conns[id]
	h.mu.Unlock()
	if c != nil {
		c.startRead()
	}
}

// Group returns the sockets of object key, creating the group.
func (h *Hub) Group(key route.ObjectID) *Group {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.groups[key]
	if g == nil {
		g = &Group{key: key, hub: h}
		h.groups[key] = g
	}
	return g
}

// Lookup returns the group of key if it exists.
func (h *Hub) Lookup(key route.ObjectID) *Group {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.groups[key]
}

// Retired tells the hub that key's instance is gone: its group is dropped
// if no socket is left in it (with its auto-response: a new instance sets
// it again).
func (h *Hub) Retired(key route.ObjectID) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if g := h.groups[key]; g != nil && g.empty() {
		delete(h.groups, key)
	}
}

// dropIfEmpty drops g once its last socket left, unless its object is
// live (the instance's retirement drops it later).
func (h *Hub) dropIfEmpty(g *Group) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.groups[g.key] == g && g.empty() && !h.cfg.Live(g.key) {
		delete(h.groups, g.key)
	}
}

// Counts reports the open sockets and how many of them belong to objects
// for which live reports false (hibernated).
func (h *Hub) Counts(live func(route.ObjectID) bool) (open, hibernated int64) {
	h.mu.Lock()
	groups := slices.Collect(maps.Values(h.groups))
	h.mu.Unlock()
	for _, g := range groups {
		n := int64(g.Len())
		if n > 0 && !live(g.key) {
			hibernated += n
		}
	}
	return h.open.Load(), hibernated
}

// Connections reports the TCP connections the hub holds (closing ones
// included).
func (h *Hub) Connections() int64 { return h.tcpOpen.Load() }

// StopReading stops delivering messages: nothing more is read from any
// socket (the first step of a shutdown).
func (h *Hub) StopReading() {
	h.mu.Lock()
	h.closing = true
	conns := slices.Collect(maps.Values(h.conns))
	h.mu.Unlock()
	for _, c := range conns {
		c.stopReading()
	}
}

// Shutdown closes every socket with 1001 (after the frames already queued
// for it) and waits, until ctx ends, for the close frames to be written;
// then it drops every connection and stops the poller.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.StopReading()
	h.mu.Lock()
	var all []*Conn
	for _, g := range h.groups {
		all = append(all, g.list("")...)
	}
	h.mu.Unlock()
	for _, c := range all {
		c.closeWith(nil, CloseGoingAway, "the server is shutting down", nil)
	}
	done := make(chan struct{})
	go func() {
		for h.tcpOpen.Load() > 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	<-done
	h.mu.Lock()
	rest := slices.Collect(maps.Values(h.conns))
	h.mu.Unlock()
	for _, c := range rest {
		c.closeTCP()
	}
	h.mu.Lock()
	h.shut = true
	h.mu.Unlock()
	h.poll.close()
	return err
}

// Group is the sockets of one object, and its auto-response.
type Group struct {
	key  route.ObjectID
	hub  *Hub
	auto atomic.Pointer[AutoResponse]

	mu    sync.Mutex
	conns []*Conn // guarded by mu; in accept order
}

// AutoResponse answers a text message equal to Request with Response
// without waking the object.
type AutoResponse struct {
	Request, Response string
	frame             []byte // Response compiled
}

// Key returns the group's object.
func (g *Group) Key() route.ObjectID { return g.key }

func (g *Group) empty() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns) == 0
}

// Len reports the group's sockets.
func (g *Group) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns)
}

// List returns the sockets with tag ("" = all), in accept order.
func (g *Group) List(tag string) []*Conn { return g.list(tag) }

func (g *Group) list(tag string) []*Conn {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]*Conn, 0, len(g.conns))
	for _, c := range g.conns {
		if tag == "" || c.hasTag(tag) {
			out = append(out, c)
		}
	}
	return out
}

// SetAutoResponse sets (or with "", "" removes) the auto-response.
func (g *Group) SetAutoResponse(request, response string) error {
	if request == "" && response == "" {
		g.auto.Store(nil)
		return nil
	}
	if request == "" {
		return fmt.Errorf("the auto-response request is empty (\"\", \"\" removes the auto-response): %w", errs.ErrLimit)
	}
	if n := charCount(request); n > MaxAutoResponseChars {
		return fmt.Errorf("the auto-response request has %d characters; the limit is %d: %w", n, MaxAutoResponseChars, errs.ErrLimit)
	}
	if n := charCount(response); n > MaxAutoResponseChars {
		return fmt.Errorf("the auto-response response has %d characters; the limit is %d: %w", n, MaxAutoResponseChars, errs.ErrLimit)
	}
	g.auto.Store(&AutoResponse{Request: request, Response: response, frame: compile(opText, []byte(response))})
	return nil
}

// AutoResponse returns the group's auto-response, or nil.
func (g *Group) AutoResponse() *AutoResponse { return g.auto.Load() }

// Accept adds a socket in the pending state (its handshake is done after
// the turn that accepted it: Attach, or Discard if that turn failed).
// user is kept in Conn.User.
func (g *Group) Accept(tags []string, user func(*Conn) any) (*Conn, error) {
	if err := checkTags(tags); err != nil {
		return nil, err
	}
	h := g.hub
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil, fmt.Errorf("the runtime is shutting down: %w", errs.ErrClosed)
	}
	if h.groups[g.key] != g {
		h.groups[g.key] = g // dropped meanwhile: it is the object's again
	}
	h.nextID++
	c := &Conn{hub: h, group: g, id: h.nextID, tags: append([]string(nil), tags...)}
	if user != nil {
		c.User = user(c) // before anyone can list the socket
	}
	g.mu.Lock()
	if len(g.conns) >= h.cfg.MaxPerGroup {
		g.mu.Unlock()
		h.mu.Unlock()
		return nil, fmt.Errorf("the object already has %d WebSockets (MaxWebSocketsPerObject, hibernated ones included): %w", h.cfg.MaxPerGroup, errs.ErrLimit)
	}
	g.conns = append(g.conns, c)
	g.mu.Unlock()
	h.mu.Unlock()
	h.open.Add(1)
	return c, nil
}

// remove takes c out of the group; it reports whether c was in it.
func (g *Group) remove(c *Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, x := range g.conns {
		if x == c {
			copy(g.conns[i:], g.conns[i+1:])
			g.conns[len(g.conns)-1] = nil
			g.conns = g.conns[:len(g.conns)-1]
			return true
		}
	}
	return false
}

func checkTags(tags []string) error {
	if len(tags) > MaxTags {
		return fmt.Errorf("%d tags; a WebSocket has at most %d: %w", len(tags), MaxTags, errs.ErrLimit)
	}
	for _, t := range tags {
		if t == "" {
			return fmt.Errorf("an empty tag (WebSockets(\"\") lists every socket, so a tag must not be empty): %w", errs.ErrLimit)
		}
		if n := charCount(t); n > MaxTagChars {
			return fmt.Errorf("a tag of %d characters; the limit is %d: %w", n, MaxTagChars, errs.ErrLimit)
		}
	}
	return nil
}

// charCount counts characters as the platform does (UTF-16 code units
// would differ only outside the BMP; runes are what Go users count).
func charCount(s string) int {
	n := 0
	for range s {
		n++
	}
	return n
}

// NamespaceSockets counts one namespace's open sockets and objects.
type NamespaceSockets struct {
	Open       int64 // open sockets
	Hibernated int64 // open sockets of objects that are not live
	Objects    int64 // objects with open sockets that are not live (hibernated instances)
}

// CountsByNamespace is Counts per namespace, with the hibernated objects.
func (h *Hub) CountsByNamespace(live func(route.ObjectID) bool) map[string]NamespaceSockets {
	h.mu.Lock()
	groups := slices.Collect(maps.Values(h.groups))
	h.mu.Unlock()
	out := make(map[string]NamespaceSockets)
	for _, g := range groups {
		n := int64(g.Len())
		if n == 0 {
			continue
		}
		c := out[g.key.Namespace]
		c.Open += n
		if !live(g.key) {
			c.Hibernated += n
			c.Objects++
		}
		out[g.key.Namespace] = c
	}
	return out
}
