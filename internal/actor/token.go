package actor

import "sync"

// Token lets one turn at a time run in an object. The object's driver holds
// it for each turn it runs (level 0). A turn that makes an outgoing call
// Suspends; while it waits, a call on the same call chain — and only on it
// — may Enter and run as a nested turn one level up (A→B→A), which may
// itself suspend and let a deeper one in. A turn Resumes only when no
// turn above it is in progress (running or suspended) and no code of the
// object runs: the turns of a chain form a stack, and only its top runs.
type Token struct {
	mu      sync.Mutex
	cond    sync.Cond
	chain   uint64 // guarded by mu; the chain of the turns in progress (0: none)
	depth   int    // guarded by mu; turns in progress: the driver's and nested ones
	running bool   // guarded by mu; code of the object is executing now
	blocked int    // guarded by mu; BlockConcurrencyWhile depth: no re-entry while > 0
}

func (t *Token) init() {
	if t.cond.L == nil {
		t.cond.L = &t.mu
	}
}

// Begin marks the driver's turn on chain as running (level 0). The driver
// calls it only when no turn is in progress.
func (t *Token) Begin(chain uint64) {
	t.mu.Lock()
	t.init()
	t.chain, t.depth, t.running, t.blocked = chain, 1, true, 0
	t.mu.Unlock()
}

// Finish marks the driver's turn done.
func (t *Token) Finish() {
	t.mu.Lock()
	t.init()
	t.chain, t.depth, t.running, t.blocked = 0, 0, false, 0
	t.cond.Broadcast()
	t.mu.Unlock()
}

// Suspend marks the running turn as waiting on outgoing calls: a call on
// its chain may now enter.
func (t *Token) Suspend() {
	t.mu.Lock()
	t.init()
	t.running = false
	t.cond.Broadcast()
	t.mu.Unlock()
}

// Resume waits until no turn above level is in progress and no code of the
// object runs, then marks the turn at level running again.
func (t *Token) Resume(level int) {
	t.mu.Lock()
	t.init()
	for t.running || t.depth > level+1 {
		t.cond.Wait()
	}
	t.running = true
	t.mu.Unlock()
}

// Enter starts a nested turn for a call on chain, if the object's turns in
// progress are on that chain, all suspended, and none blocks concurrency.
// It returns the nested turn's level and whether the caller may run it now;
// if not, the call goes to the mailbox.
func (t *Token) Enter(chain uint64) (level int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if chain == 0 || t.chain != chain || t.running || t.blocked > 0 {
		return 0, false
	}
	t.depth++
	t.running = true
	return t.depth - 1, true
}

// Exit ends a nested turn started by Enter.
func (t *Token) Exit() {
	t.mu.Lock()
	t.init()
	t.depth--
	t.running = false
	t.cond.Broadcast()
	t.mu.Unlock()
}

// Block refuses re-entry while at least one BlockConcurrencyWhile runs
// (on: one more; off: one fewer).
func (t *Token) Block(on bool) {
	t.mu.Lock()
	if on {
		t.blocked++
	} else if t.blocked > 0 {
		t.blocked--
	}
	t.mu.Unlock()
}

// Busy reports whether a turn is in progress.
func (t *Token) Busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.chain != 0
}
