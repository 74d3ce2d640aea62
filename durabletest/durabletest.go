// Package durabletest helps test durable objects: a Runtime on a temporary
// directory closed at the end of the test, a fake clock, running code
// inside an object, listing a namespace's objects, and restarting a
// runtime on its data.
package durabletest

import (
	"context"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/hooks"
)

// New opens a Runtime for the test: on a fresh temporary directory unless
// cfg sets Dir, closed when the test ends.
func New(t testing.TB, cfg ...durable.Config) *durable.Runtime {
	t.Helper()
	var c durable.Config
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	rt, err := durable.Open(c)
	if err != nil {
		t.Fatalf("durabletest: open runtime: %v", err)
	}
	t.Cleanup(func() { closeRuntime(t, rt) })
	return rt
}

func closeRuntime(t testing.TB, rt *durable.Runtime) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Errorf("durabletest: close runtime: %v", err)
	}
}

// RunInObject runs fn inside the object as one of its turns, with the
// object's instance and State (constructing it if needed). Writes fn makes
// commit with the turn. It fails the test if the turn fails.
func RunInObject[T any](t testing.TB, stub *durable.Stub[T], fn func(obj T, st *durable.State)) {
	t.Helper()
	err := hooks.RunInObject(context.Background(), stub, func(obj, state any) {
		fn(obj.(T), state.(*durable.State))
	})
	if err != nil {
		t.Fatalf("durabletest: RunInObject: %v", err)
	}
}

// ListIDs returns the IDs of the namespace's objects that have stored data.
func ListIDs[T any](t testing.TB, ns *durable.Namespace[T]) []durable.ID {
	t.Helper()
	strs, err := hooks.ListIDs(ns)
	if err != nil {
		t.Fatalf("durabletest: ListIDs: %v", err)
	}
	ids := make([]durable.ID, 0, len(strs))
	for _, s := range strs {
		id, err := ns.IDFromString(s)
		if err != nil {
			continue // a file that is not an object of this namespace
		}
		ids = append(ids, id)
	}
	return ids
}

// Restart closes rt and opens a new Runtime on the same directory with the
// same configuration; classes must be defined again. The new runtime is
// closed when the test ends.
func Restart(t testing.TB, rt *durable.Runtime) *durable.Runtime {
	t.Helper()
	cfg := hooks.Config(rt).(durable.Config)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rt.Close(ctx); err != nil {
		t.Fatalf("durabletest: Restart: close: %v", err)
	}
	nrt, err := durable.Open(cfg)
	if err != nil {
		t.Fatalf("durabletest: Restart: open: %v", err)
	}
	t.Cleanup(func() { closeRuntime(t, nrt) })
	return nrt
}

// Live reports how many objects of rt have a live instance (hibernated
// ones not counted).
func Live(rt *durable.Runtime) int {
	live, _ := hooks.Stats(rt)
	return int(live)
}

// RunAlarm runs the object's alarm now, even if it is not due yet, and
// removes it as a successful alarm turn would (a failing handler schedules
// its retry). It reports whether the object had an alarm.
func RunAlarm[T any](t testing.TB, stub *durable.Stub[T]) bool {
	t.Helper()
	ran, err := hooks.RunAlarm(context.Background(), stub)
	if err != nil {
		t.Fatalf("durabletest: RunAlarm: %v", err)
	}
	return ran
}
