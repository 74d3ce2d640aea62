// Package hooks lets durabletest reach into a runtime without widening the
// public API: the root package fills these in at init, with arguments typed
// as any to avoid an import cycle.
package hooks

import "context"

var (
	// RunInObject runs fn(instance, *durable.State) as a turn of the
	// object behind stub (a *durable.Stub[T]).
	RunInObject func(ctx context.Context, stub any, fn func(obj, state any)) error
	// ListIDs returns the ID strings of the objects of a namespace (a
	// *durable.Namespace[T]) that have stored data.
	ListIDs func(ns any) ([]string, error)
	// Config returns the durable.Config a *durable.Runtime was opened with
	// (Dir resolved).
	Config func(rt any) any
)

// RunAlarm runs the alarm of the object behind stub (a *durable.Stub[T])
// now and reports whether it had one.
var RunAlarm func(ctx context.Context, stub any) (bool, error)
