// Package alarm schedules objects' alarms from a node-level index.
//
// Each object keeps its own alarm in its database (the truth). The index,
// a table in Dir/runtime.sqlite, lets the scheduler find every object with
// an alarm without opening every database. It is kept a superset of the
// objects' records, with times no later than theirs:
//
//   - setting an alarm upserts the index entry, and the turn that set it is
//     not acknowledged before that entry is durable;
//   - an entry is removed only after the object's turn that observed (or
//     made) its record gone is durable, and only if no newer upsert replaced
//     it (each upsert carries a sequence number);
//   - when an entry fires, the object's own record decides: no record → the
//     entry is stale and dropped; a later time → the entry moves there.
//
// So an alarm is never lost (an object with a record always has an entry
// due no later than the record) and never fired without a record.
//
// The scheduler holds only a window of the index in memory: a heap of the
// entries up to a cursor, loaded in pages by (time, namespace, id) as time
// advances, with one timer for the earliest. A million scheduled alarms
// cost index rows and a bounded heap, not goroutines or timers.
package alarm

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/durable-go/durable/internal/clock"
	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/gate"
	"github.com/durable-go/durable/internal/store"
)

// Entry is one index entry: an object's alarm time (Unix ms) and the
// sequence number of the upsert that wrote it.
type Entry struct {
	NS, ID string
	AtMs   int64
	Seq    uint64
}

// Kind is what an alarm turn found or did.
type Kind int

const (
	// Stale: the object has no alarm; the entry is dropped.
	Stale Kind = iota
	// Cleared: the alarm ran (or was dropped after its last retry) and the
	// object has no alarm now; the entry is dropped.
	Cleared
	// Reschedule: the object's alarm is at AtMs (not due yet, a retry, or a
	// new alarm set by the handler); the entry moves there.
	Reschedule
	// Retry: the turn failed for the runtime's reasons (a reset, a failed
	// sync, the object could not activate); fire again soon, without
	// counting a retry against the handler.
	Retry
	// Kept: the handler set the object's new alarm itself, and that Set
	// already replaced the entry; nothing to write.
	Kept
)

// Outcome is the result of firing an entry, reported once the alarm turn
// is durable (or failed).
type Outcome struct {
	Entry Entry
	Kind  Kind
	AtMs  int64 // Reschedule's time
}

// ErrUndefined is what Fire returns for a namespace not defined yet: the
// entry waits until Defined.
var ErrUndefined = errors.New("alarm: namespace not defined")

// Config configures a Scheduler.
type Config struct {
	Index *store.Object // the node database (store.AcquireNode)
	Clock clock.Clock
	Log   *slog.Logger
	// Fire starts the alarm turn of an entry; it must not block. The
	// runtime reports the result with Done. ErrUndefined parks the entry.
	Fire func(Entry) error
	// PageSize is how many index entries one load reads (10,000).
	PageSize int
	// Lookahead: the scheduler keeps every entry due within it in memory
	// (1 minute).
	Lookahead time.Duration
	// MaxInFlight bounds the alarm turns running at once (10,000).
	MaxInFlight int
	// RetryDelay is how soon an entry fires again after a Retry (1 s).
	RetryDelay time.Duration
}

// Stats are the scheduler's counters.
type Stats struct {
	Fired, Stale, Cleared, Rescheduled, Retried int64
	InMemory                                    int   // entries in the heap
	Loads                                       int64 // index pages read
}

// Scheduler runs the alarm index. Its methods are safe for concurrent use.
type Scheduler struct {
	cfg Config

	mu       sync.Mutex
	inbox    []request // guarded by mu
	closed   bool      // guarded by mu
	nextSeq  uint64    // guarded by mu
	stats    Stats     // guarded by mu
	wake     chan struct{}
	done     chan struct{}
	stopping chan struct{}

	// Loop-only state.
	h          entryHeap
	latest     map[objKey]uint64 // newest seq per object among entries in memory
	cursor     key               // every index entry at or before it is in memory
	exhausted  bool              // the cursor passed the last entry
	inflight   int
	parked     map[string][]Entry // entries of undefined namespaces
	commitWait <-chan struct{}    // the index batch is open until it closes
	lookups    []*lookup          // operators' reads waiting for this round
}

type objKey struct{ ns, id string }

type key struct {
	at     int64
	ns, id string
}

func (a key) less(b key) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.ns != b.ns {
		return a.ns < b.ns
	}
	return a.id < b.id
}

type reqKind int

const (
	reqSet reqKind = iota
	reqOutcome
	reqDefined
	reqLookup
	reqRemove
)

type request struct {
	kind    reqKind
	entry   Entry
	outcome Outcome
	ns      string
	p       *gate.Promise // reqSet: resolved when the entry is durable
	lookup  *lookup       // reqLookup
}

const schemaSQL = `CREATE TABLE IF NOT EXISTS alarm_index (
	ns TEXT NOT NULL, id TEXT NOT NULL, at_ms INTEGER NOT NULL, seq INTEGER NOT NULL,
	PRIMARY KEY (ns, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alarm_index_at ON alarm_index (at_ms, ns, id);
CREATE TABLE IF NOT EXISTS alarm_meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID`

// seqBlock is how many sequence numbers one scheduler life reserves: each
// Open starts above every number an earlier life could have used, without
// scanning the index.
const seqBlock = 1 << 40

// Open prepares the index and starts the scheduler.
func Open(cfg Config) (*Scheduler, error) {
	if cfg.PageSize <= 0 {
		cfg.PageSize = 10000
	}
	if cfg.Lookahead <= 0 {
		cfg.Lookahead = time.Minute
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 10000
	}
	if cfg.RetryDelay <= 0 {
		cfg.RetryDelay = time.Second
	}
	s := &Scheduler{
		cfg:      cfg,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		stopping: make(chan struct{}),
		latest:   make(map[objKey]uint64),
		parked:   make(map[string][]Entry),
		cursor:   key{at: math.MinInt64},
	}
	var floor int64
	err := s.indexTurn(func(o *store.Object) error {
		if err := o.Exec(schemaSQL).Err(); err != nil {
			return err
		}
		c := o.Exec("SELECT v FROM alarm_meta WHERE k = 'seq_floor'")
		if c.Next() {
			if err := c.Scan(&floor); err != nil {
				return err
			}
		} else if err := c.Err(); err != nil {
			return err
		} else if err := o.Exec("SELECT coalesce(max(seq), 0) FROM alarm_index").Scan(&floor); err != nil {
			return err // an index written before alarm_meta existed: scan once
		}
		return o.Exec("INSERT OR REPLACE INTO alarm_meta VALUES ('seq_floor', ?)", floor+seqBlock).Err()
	})
	if err != nil {
		return nil, fmt.Errorf("alarm: open the index: %w", err)
	}
	s.nextSeq = uint64(floor) + 1
	go s.run()
	return s, nil
}

// indexTurn runs fn as one turn of the index database and commits it; it
// returns fn's error or the turn's, and the batch promise through p.
func (s *Scheduler) indexTurn(fn func(o *store.Object) error) error {
	p, err := s.indexTurnAsync(fn)
	if err != nil {
		return err
	}
	return p.Wait(context.Background())
}

func (s *Scheduler) indexTurnAsync(fn func(o *store.Object) error) (*gate.Promise, error) {
	o := s.cfg.Index
	if err := o.Begin(); err != nil {
		return nil, err
	}
	err := fn(o)
	p, err := o.End(err)
	o.Commit()
	return p, err
}

// indexTurnBatched runs fn as a turn of the index but leaves the batch
// open while a sync round runs (as an object's driver does): a busy
// scheduler then commits many turns' writes at once. It returns the turn's
// promise and, if the batch was left open, the channel to commit on.
func (s *Scheduler) indexTurnBatched(fn func(o *store.Object) error) (*gate.Promise, <-chan struct{}, error) {
	o := s.cfg.Index
	if err := o.Begin(); err != nil {
		return nil, nil, err
	}
	err := fn(o)
	p, err := o.End(err)
	if ch := o.CommitWait(); ch != nil {
		return p, ch, err
	}
	o.Commit()
	return p, nil, err
}

// Set records that object ns/id has an alarm at atMs. The returned promise
// is ready when the index entry is durable: the turn that set the alarm
// must not be acknowledged before.
func (s *Scheduler) Set(ns, id string, atMs int64) *gate.Promise {
	p := gate.New()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		p.Resolve(errors.New("alarm: the scheduler is closed"))
		return p
	}
	e := Entry{NS: ns, ID: id, AtMs: atMs, Seq: s.nextSeq}
	s.nextSeq++
	s.inbox = append(s.inbox, request{kind: reqSet, entry: e, p: p})
	s.mu.Unlock()
	s.poke()
	return p
}

// Seq returns the sequence number of the newest entry written so far.
func (s *Scheduler) Seq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1
}

// Remove drops object ns/id's index entry if its sequence number is at
// most upTo: call it once the object's turn that deleted its alarm (and
// saw none set) is durable, with Seq taken in that turn; an entry a later
// Set wrote has a higher number and stays.
func (s *Scheduler) Remove(ns, id string, upTo uint64) {
	s.push(request{kind: reqRemove, entry: Entry{NS: ns, ID: id, Seq: upTo}})
}

// lookup is a read of the index for an operator: the entries of ns with
// IDs from first to last.
type lookup struct {
	ns, first, last string
	reply           chan lookupReply
}

type lookupReply struct {
	at  map[string]int64
	err error
}

// Lookup returns the index's alarm times (Unix ms) of the objects of ns
// whose IDs lie from first to last (inclusive), read by the scheduler
// between its own writes. An entry is due no later than the object's own
// record (see the package comment): a listing's view, not the truth.
func (s *Scheduler) Lookup(ctx context.Context, ns, first, last string) (map[string]int64, error) {
	l := &lookup{ns: ns, first: first, last: last, reply: make(chan lookupReply, 1)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, fmt.Errorf("alarm: the scheduler is closed: %w", errs.ErrClosed)
	}
	s.inbox = append(s.inbox, request{kind: reqLookup, lookup: l})
	s.mu.Unlock()
	s.poke()
	select {
	case r := <-l.reply:
		return r.at, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ReadIndex reads the alarm times of the objects of ns with IDs from first
// to last from an index database (Lookup's read, for a stopped runtime's
// directory). An index that was never written has no entries.
func ReadIndex(o *store.Object, ns, first, last string) (map[string]int64, error) {
	at := make(map[string]int64)
	var n int64
	if err := o.Exec("SELECT count(*) FROM sqlite_schema WHERE name = 'alarm_index'").Scan(&n); err != nil || n == 0 {
		return at, err
	}
	c := o.Exec("SELECT id, at_ms FROM alarm_index WHERE ns = ? AND id BETWEEN ? AND ?", ns, first, last)
	for c.Next() {
		var id string
		var ms int64
		if err := c.Scan(&id, &ms); err != nil {
			return nil, err
		}
		at[id] = ms
	}
	return at, c.Err()
}

// answer serves the lookups of one loop round.
func (s *Scheduler) answer(ls []*lookup) {
	for _, l := range ls {
		var r lookupReply
		_, r.err = s.indexTurnAsync(func(o *store.Object) (err error) {
			r.at, err = ReadIndex(o, l.ns, l.first, l.last)
			return err
		})
		l.reply <- r
	}
}

// Done reports the outcome of a fired entry.
func (s *Scheduler) Done(o Outcome) {
	s.push(request{kind: reqOutcome, outcome: o})
}

// Defined releases the entries of a namespace that was not defined when
// they came due.
func (s *Scheduler) Defined(ns string) {
	s.push(request{kind: reqDefined, ns: ns})
}

func (s *Scheduler) push(r request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.inbox = append(s.inbox, r)
	s.mu.Unlock()
	s.poke()
}

func (s *Scheduler) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Stats returns the scheduler's counters.
func (s *Scheduler) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// Close stops the scheduler after applying what it was told; the index
// stays on disk.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	s.mu.Unlock()
	close(s.stopping)
	<-s.done
}

func (s *Scheduler) run() {
	defer close(s.done)
	var timer clock.Timer
	for {
		s.mu.Lock()
		reqs := s.inbox
		s.inbox = nil
		s.mu.Unlock()
		writes := s.handle(reqs)
		now := s.cfg.Clock.Now().UnixMilli()
		s.answer(s.lookups)
		s.lookups = nil
		// Fire what is due before writing the index: firing is what is
		// late; the writes' waiters tolerate the extra moment.
		s.fireDue(now)
		s.writeIndex(writes)
		s.load(now)
		s.fireDue(now)
		select {
		case <-s.stopping:
			s.mu.Lock()
			reqs := s.inbox
			s.inbox = nil
			s.mu.Unlock()
			s.writeIndex(s.handle(reqs))
			s.answer(s.lookups)
			s.cfg.Index.Commit() // an open batch commits (and syncs) before Close
			if timer != nil {
				timer.Stop()
			}
			return
		default:
		}
		wait := time.Duration(math.MaxInt64)
		if s.h.Len() > 0 && s.inflight < s.cfg.MaxInFlight {
			wait = time.Duration(s.h[0].AtMs-now) * time.Millisecond
		}
		if !s.exhausted {
			// Load again before the cursor's time comes within lookahead.
			next := time.Duration(s.cursor.at-now)*time.Millisecond - s.cfg.Lookahead
			if next < wait {
				wait = next
			}
		}
		if wait < 0 {
			wait = 0
		}
		var tc <-chan time.Time
		if wait != time.Duration(math.MaxInt64) {
			if timer == nil {
				timer = s.cfg.Clock.NewTimer(wait)
			} else {
				timer.Stop()
				select {
				case <-timer.C():
				default:
				}
				timer.Reset(wait)
			}
			tc = timer.C()
		}
		select {
		case <-s.wake:
		case <-tc:
		case <-s.commitWait:
			s.commitWait = nil
			s.cfg.Index.Commit()
		case <-s.stopping:
		}
	}
}

// write is one pending change of the index.
type write struct {
	upsert bool
	e      Entry
	p      *gate.Promise // resolved when the write is durable (Set), or nil
	// moves, if not 0, makes the upsert an update of the row that still
	// has this sequence number (a fired entry rescheduled): a Set made
	// since then replaced the row and wins.
	moves uint64
	// upTo makes the delete remove the row if its sequence number is at
	// most e.Seq (an alarm deleted by its object), not only equal.
	upTo bool
}

// handle applies the requests in memory and returns the index writes they
// need (applied by writeIndex).
func (s *Scheduler) handle(reqs []request) []write {
	if len(reqs) == 0 {
		return nil
	}
	var writes []write
	now := s.cfg.Clock.Now().UnixMilli()
	var st Stats
	for _, r := range reqs {
		switch r.kind {
		case reqSet:
			writes = append(writes, write{upsert: true, e: r.entry, p: r.p})
			s.remember(r.entry)
		case reqOutcome:
			o := r.outcome
			s.inflight--
			switch o.Kind {
			case Stale, Cleared:
				if o.Kind == Stale {
					st.Stale++
				} else {
					st.Cleared++
				}
				writes = append(writes, write{e: o.Entry})
			case Reschedule:
				st.Rescheduled++
				if seq, ok := s.latest[objKey{o.Entry.NS, o.Entry.ID}]; ok && seq > o.Entry.Seq {
					break // a Set since the firing is in memory, and in the index: it wins
				}
				s.mu.Lock()
				e := Entry{NS: o.Entry.NS, ID: o.Entry.ID, AtMs: o.AtMs, Seq: s.nextSeq}
				s.nextSeq++
				s.mu.Unlock()
				writes = append(writes, write{upsert: true, e: e, moves: o.Entry.Seq})
				s.remember(e)
			case Kept:
				st.Rescheduled++
			case Retry:
				st.Retried++
				e := o.Entry
				e.AtMs = now + s.cfg.RetryDelay.Milliseconds()
				s.pushHeap(e)
			}
		case reqLookup:
			s.lookups = append(s.lookups, r.lookup)
		case reqRemove:
			writes = append(writes, write{e: r.entry, upTo: true})
		case reqDefined:
			for _, e := range s.parked[r.ns] {
				s.pushHeap(e)
			}
			delete(s.parked, r.ns)
		}
	}
	s.mu.Lock()
	s.stats.Stale += st.Stale
	s.stats.Cleared += st.Cleared
	s.stats.Rescheduled += st.Rescheduled
	s.stats.Retried += st.Retried
	s.mu.Unlock()
	return writes
}

// writeIndex applies index writes in one index turn. The batch may stay
// open until the running sync round ends (s.commitWait).
func (s *Scheduler) writeIndex(writes []write) {
	if len(writes) == 0 {
		return
	}
	p, ch, err := s.indexTurnBatched(func(o *store.Object) error {
		for _, w := range writes {
			var c *store.Cursor
			if w.upsert && w.moves != 0 {
				c = o.Exec("UPDATE alarm_index SET at_ms = ?, seq = ? WHERE ns = ? AND id = ? AND seq = ?",
					w.e.AtMs, int64(w.e.Seq), w.e.NS, w.e.ID, int64(w.moves))
			} else if w.upsert {
				c = o.Exec(`INSERT INTO alarm_index (ns, id, at_ms, seq) VALUES (?, ?, ?, ?)
					ON CONFLICT (ns, id) DO UPDATE SET at_ms = excluded.at_ms, seq = excluded.seq`,
					w.e.NS, w.e.ID, w.e.AtMs, int64(w.e.Seq))
			} else if w.upTo {
				c = o.Exec("DELETE FROM alarm_index WHERE ns = ? AND id = ? AND seq <= ?", w.e.NS, w.e.ID, int64(w.e.Seq))
			} else {
				c = o.Exec("DELETE FROM alarm_index WHERE ns = ? AND id = ? AND seq = ?", w.e.NS, w.e.ID, int64(w.e.Seq))
			}
			if err := c.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if ch != nil && s.commitWait == nil {
		s.commitWait = ch
	}
	if err != nil {
		s.cfg.Log.Error("alarm: write the index", "writes", len(writes), "err", err)
		for _, w := range writes {
			if w.p != nil {
				w.p.Resolve(fmt.Errorf("alarm: record the alarm in the index: %w", err))
			}
		}
		return
	}
	for _, w := range writes {
		if w.p != nil {
			w.p.Follow(p)
		}
	}
}

// remember puts a newly written entry in memory if the cursor covers it
// (else a later load will read it: loads read past the cursor).
func (s *Scheduler) remember(e Entry) {
	if !s.exhausted && s.cursor.less(key{e.AtMs, e.NS, e.ID}) {
		return
	}
	s.pushHeap(e)
}

func (s *Scheduler) pushHeap(e Entry) {
	k := objKey{e.NS, e.ID}
	if seq, ok := s.latest[k]; !ok || e.Seq >= seq {
		s.latest[k] = e.Seq
	}
	heap.Push(&s.h, e)
}

// load reads index pages until everything due within the lookahead is in
// memory (or the index is exhausted).
func (s *Scheduler) load(now int64) {
	horizon := now + s.cfg.Lookahead.Milliseconds()
	for pages := 0; !s.exhausted && pages < 4 && (s.cursor.at <= horizon || s.h.Len() < s.cfg.PageSize/2); pages++ {
		var page []Entry
		_, err := s.indexTurnAsync(func(o *store.Object) error {
			c := o.Exec(`SELECT ns, id, at_ms, seq FROM alarm_index
				WHERE (at_ms, ns, id) > (?, ?, ?) ORDER BY at_ms, ns, id LIMIT ?`,
				s.cursor.at, s.cursor.ns, s.cursor.id, s.cfg.PageSize)
			for c.Next() {
				var e Entry
				var seq int64
				if err := c.Scan(&e.NS, &e.ID, &e.AtMs, &seq); err != nil {
					return err
				}
				e.Seq = uint64(seq)
				page = append(page, e)
			}
			return c.Err()
		})
		if err != nil {
			s.cfg.Log.Error("alarm: read the index", "err", err)
			return
		}
		s.mu.Lock()
		s.stats.Loads++
		s.mu.Unlock()
		for _, e := range page {
			s.pushHeap(e)
		}
		if len(page) < s.cfg.PageSize {
			s.exhausted = true
		}
		if len(page) > 0 {
			last := page[len(page)-1]
			s.cursor = key{last.AtMs, last.NS, last.ID}
		}
	}
}

// fireDue starts the turns of the entries that are due.
func (s *Scheduler) fireDue(now int64) {
	var fired int64
	for s.h.Len() > 0 && s.inflight < s.cfg.MaxInFlight && s.h[0].AtMs <= now {
		e := heap.Pop(&s.h).(Entry)
		k := objKey{e.NS, e.ID}
		if s.latest[k] != e.Seq {
			continue // a newer entry for the object is in memory
		}
		delete(s.latest, k)
		s.inflight++
		if err := s.cfg.Fire(e); err != nil {
			s.inflight--
			if errors.Is(err, ErrUndefined) {
				s.parked[e.NS] = append(s.parked[e.NS], e)
				continue
			}
			s.cfg.Log.Warn("alarm: fire", "namespace", e.NS, "id", e.ID, "err", err)
			e.AtMs = now + s.cfg.RetryDelay.Milliseconds()
			s.pushHeap(e)
			continue
		}
		fired++
	}
	s.mu.Lock()
	s.stats.Fired += fired
	s.stats.InMemory = s.h.Len()
	s.mu.Unlock()
}

// entryHeap orders entries by time, then namespace and ID.
type entryHeap []Entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	return key{h[i].AtMs, h[i].NS, h[i].ID}.less(key{h[j].AtMs, h[j].NS, h[j].ID})
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *entryHeap) Push(x any)   { *h = append(*h, x.(Entry)) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
