package gate

import "sync"

// Gate holds one object's outputs until the promises they depend on are
// ready, and releases them in the order they were held: an output never
// overtakes one held before it, even if its own promise is ready first.
//
// Each output is released exactly once: with nil when its promise resolved
// with nil, or with an error when the promise failed or Fail was called.
type Gate struct {
	mu      sync.Mutex
	q       []held // guarded by mu; outputs not yet released, oldest first
	pumping bool   // guarded by mu; one goroutine releases at a time
	again   bool   // guarded by mu; a promise resolved while pumping
}

type held struct {
	p       *Promise
	release func(error)
	failed  error // set by Fail
}

// Hold queues release to run once p is ready (and every output held before
// it has been released). release runs on the goroutine that made it
// releasable: the resolver's, or the caller's when p is already ready.
func (g *Gate) Hold(p *Promise, release func(error)) {
	g.mu.Lock()
	g.q = append(g.q, held{p: p, release: release})
	g.mu.Unlock()
	p.OnDone(func(error) { g.pump() })
}

// Len reports how many outputs are held.
func (g *Gate) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.q)
}

// Fail releases every held output now with err, whatever its promise.
// Outputs held later are not affected.
func (g *Gate) Fail(err error) {
	g.mu.Lock()
	for i := range g.q {
		if g.q[i].failed == nil {
			g.q[i].failed = err
		}
	}
	g.mu.Unlock()
	g.pump()
}

// pump releases outputs from the head of the queue while they are ready.
// Only one goroutine pumps at a time, so releases keep their order.
func (g *Gate) pump() {
	g.mu.Lock()
	if g.pumping {
		// The pumping goroutine looks at the queue again before it stops,
		// so a promise that resolved just now is not missed.
		g.again = true
		g.mu.Unlock()
		return
	}
	g.pumping = true
	for {
		g.again = false
		for len(g.q) > 0 {
			h := g.q[0]
			err := h.failed
			if err == nil {
				var done bool
				done, err = h.p.Ready()
				if !done {
					break
				}
			}
			g.q[0] = held{}
			g.q = g.q[1:]
			g.mu.Unlock()
			h.release(err)
			g.mu.Lock()
		}
		if !g.again {
			break
		}
	}
	g.pumping = false
	g.mu.Unlock()
}
