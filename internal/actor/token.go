package actor

import "sync"

// Token lets one turn at a time run in an object. The object's driver holds
// it for each turn it runs. A turn that makes an outgoing call Suspends
// (writes made durable by the caller first); while it waits, a call on the
// same call chain (A→B→A) may Enter, run as a nested turn and Exit; when
// the outgoing call returns, Resume waits until no nested turn runs. Calls
// on other chains wait in the mailbox: turns are strictly serial.
type Token struct {
	mu      sync.Mutex
	cond    sync.Cond
	chain   uint64 // guarded by mu; the chain of the turn in progress (0: none)
	running bool   // guarded by mu; code of the object is executing now
	blocked bool   // guarded by mu; BlockConcurrencyWhile: no re-entry
}

// Begin marks the driver's turn on chain as running. The driver calls it
// only when no turn is in progress.
func (t *Token) Begin(chain uint64) {
	t.mu.Lock()
	t.chain, t.running = chain, true
	t.mu.Unlock()
}

// Finish marks the driver's turn done.
func (t *Token) Finish() {
	t.mu.Lock()
	t.chain, t.running, t.blocked = 0, false, false
	t.mu.Unlock()
}

// Suspend marks the running turn as waiting on an outgoing call: a call on
// its chain may now enter.
func (t *Token) Suspend() {
	t.mu.Lock()
	t.running = false
	t.mu.Unlock()
}

// Resume waits until no nested turn runs, then marks the suspended turn
// running again.
func (t *Token) Resume() {
	t.mu.Lock()
	if t.cond.L == nil {
		t.cond.L = &t.mu
	}
	for t.running {
		t.cond.Wait()
	}
	t.running = true
	t.mu.Unlock()
}

// Enter starts a nested turn for a call on chain, if the object's turn in
// progress is on that chain and suspended (and not blocking concurrency).
// It reports whether the caller may run the turn now; if not, the call
// goes to the mailbox.
func (t *Token) Enter(chain uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if chain == 0 || t.chain != chain || t.running || t.blocked {
		return false
	}
	t.running = true
	return true
}

// Exit ends a nested turn started by Enter.
func (t *Token) Exit() {
	t.mu.Lock()
	if t.cond.L == nil {
		t.cond.L = &t.mu
	}
	t.running = false
	t.cond.Broadcast()
	t.mu.Unlock()
}

// Block refuses re-entry until Unblock (BlockConcurrencyWhile).
func (t *Token) Block(on bool) {
	t.mu.Lock()
	t.blocked = on
	t.mu.Unlock()
}

// Busy reports whether a turn is in progress.
func (t *Token) Busy() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.chain != 0
}
