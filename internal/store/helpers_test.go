package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/durable-go/durable/internal/gate"
)

// mustStore opens a store on a fresh directory (or cfg.Dir) and closes it
// on cleanup.
func mustStore(tb testing.TB, cfg ...Config) *Store {
	tb.Helper()
	var c Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Dir == "" {
		c.Dir = tb.TempDir()
	}
	st, err := Open(c)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := st.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return st
}

// mustObject acquires an object and releases it on cleanup.
func mustObject(tb testing.TB, st *Store, ns, id string) *Object {
	tb.Helper()
	o, err := st.Acquire(ns, id)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(o.Release)
	return o
}

// turn runs fn as one turn and commits its batch; a panic in fn fails the
// turn as the runtime would.
func turn(tb testing.TB, o *Object, fn func() error) (*gate.Promise, error) {
	tb.Helper()
	if err := o.Begin(); err != nil {
		return gate.Resolved(err), err
	}
	var err error
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		err = fn()
	}()
	p, err := o.End(err)
	o.Commit()
	return p, err
}

// mustTurn runs a turn that must succeed and waits until it is durable.
func mustTurn(tb testing.TB, o *Object, fn func() error) {
	tb.Helper()
	p, err := turn(tb, o, fn)
	if err != nil {
		tb.Fatalf("turn failed: %v", err)
	}
	waitDurable(tb, p)
}

func waitDurable(tb testing.TB, p *gate.Promise) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		tb.Fatalf("durability: %v", err)
	}
}
