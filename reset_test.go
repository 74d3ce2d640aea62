package durable_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// Resettable counts its constructions and can fail in many ways.
type Resettable struct {
	st    *durable.State
	built int64
}

func (r *Resettable) Built(ctx context.Context) (int64, error) { return r.built, nil }

func (r *Resettable) Err(ctx context.Context) (int64, error) { return 0, errors.New("plain error") }

func (r *Resettable) Panic(ctx context.Context) (int64, error) { panic("kaboom") }

func (r *Resettable) Abort(ctx context.Context) (int64, error) {
	r.st.Abort("stop here")
	return 0, nil
}

func (r *Resettable) AbortLater(ctx context.Context) (int64, error) {
	r.st.WaitUntil(func(ctx context.Context) { r.st.Abort("from WaitUntil") })
	return 0, nil
}

func TestReset_OnPanicAndAbortOnly(t *testing.T) {
	rt := durabletest.New(t)
	var builds atomic.Int64
	ns := durable.Define(rt, "RESET", func(st *durable.State) (*Resettable, error) {
		return &Resettable{st: st, built: builds.Add(1)}, nil
	})
	stub := ns.GetByName("r")
	ctx := context.Background()
	built := func() int64 {
		t.Helper()
		n, err := durable.Call0(ctx, stub, (*Resettable).Built)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	first := built()
	durable.Call0(ctx, stub, (*Resettable).Err)
	if built() != first {
		t.Fatal("a method's error reset the instance")
	}
	durable.Call0(ctx, stub, (*Resettable).Panic)
	second := built()
	if second == first {
		t.Fatal("a panic did not reset the instance")
	}
	durable.Call0(ctx, stub, (*Resettable).Abort)
	third := built()
	if third == second {
		t.Fatal("Abort did not reset the instance")
	}
	durable.Call0(ctx, stub, (*Resettable).AbortLater)
	waitFor(t, "Abort in WaitUntil to reset the instance", func() bool { return built() != third })
}

func TestConstructor_Failures(t *testing.T) {
	rt := durabletest.New(t)
	var mode atomic.Value
	mode.Store("error")
	ns := durable.Define(rt, "CTOR", func(st *durable.State) (*Resettable, error) {
		switch mode.Load() {
		case "error":
			return nil, errors.New("cannot build")
		case "panic":
			panic("ctor panic")
		case "abort":
			st.Abort("ctor abort")
		}
		return &Resettable{st: st}, nil
	})
	stub := ns.GetByName("c")
	ctx := context.Background()
	_, err := durable.Call0(ctx, stub, (*Resettable).Built)
	var de *durable.Error
	if !errors.As(err, &de) || !de.Remote || !strings.Contains(de.Message, "cannot build") {
		t.Fatalf("constructor error = %#v", err)
	}
	mode.Store("panic")
	if _, err := durable.Call0(ctx, stub, (*Resettable).Built); !errors.Is(err, durable.ErrObjectReset) || !strings.Contains(err.Error(), "ctor panic") {
		t.Fatalf("constructor panic = %v", err)
	}
	mode.Store("abort")
	if _, err := durable.Call0(ctx, stub, (*Resettable).Built); !errors.Is(err, durable.ErrObjectReset) || !strings.Contains(err.Error(), "ctor abort") {
		t.Fatalf("constructor Abort = %v", err)
	}
	mode.Store("ok")
	// The stub never broke.
	if _, err := durable.Call0(ctx, stub, (*Resettable).Built); err != nil {
		t.Fatalf("after failed constructions: %v", err)
	}
}

func TestCall_ContextCarriesDeadline(t *testing.T) {
	rt := durabletest.New(t)
	release := make(chan struct{})
	defer close(release)
	var runs atomic.Int64
	ns := durable.Define(rt, "GATE", func(*durable.State) (*Gate, error) { return &Gate{release: release, runs: &runs}, nil })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if _, err := durable.Call0(ctx, ns.GetByName("g"), (*Gate).Block); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call past its deadline = %v", err)
	}
}
