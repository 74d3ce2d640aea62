package durable

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/durable-go/durable/internal/store"
	"github.com/durable-go/durable/internal/usage"
	"net/http"

	"github.com/durable-go/durable/internal/admin"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/route"
)

// AdminHandler returns a handler serving the admin REST API under
// /admin/v1 (JSON): the defined namespaces, and a namespace's stored
// objects in ID order with cursor pagination (10 to 10,000 a page, 1,000 by
// default), each with its size on disk, its state (live, hibernated or
// stored) and its queued events; what each object used (requests, wall
// time, rows read and written, stored bytes) and the top users by each.
// Every API request needs the header
// "Authorization: Bearer <token>"; the token is compared in constant time
// and an empty token refuses everything.
//
// It also serves the storage browser, HTML pages under /admin: pick a
// namespace, page through its objects, open one (its state, alarm, usage,
// tables and their rows, KV keys) and run read-only queries. A browser
// signs in once with the token and then carries a session cookie
// (HttpOnly, SameSite=Strict, 12 hours, valid only for this token);
// docs/OPERATIONS.md has the details. Serve it on its own address, never
// beside the app: `durable serve --admin-addr` does.
func (rt *Runtime) AdminHandler(token string) http.Handler {
	return admin.Handler(token, adminObjects{rt}, rt.cfg.Logger)
}

// adminObjects is the admin API's view of the runtime.
type adminObjects struct{ rt *Runtime }

func (a adminObjects) Namespaces() []admin.NamespaceInfo {
	load := a.rt.host.Load()
	var out []admin.NamespaceInfo
	for _, m := range a.rt.namespaceMetrics() {
		out = append(out, admin.NamespaceInfo{Name: m.Name, Live: load[m.Name].Live})
	}
	return out
}

func (a adminObjects) ListObjects(ns, after string, limit int) ([]admin.ObjectInfo, bool, error) {
	if a.rt.namespaceMetricsOf(ns) == nil {
		return nil, false, admin.ErrUnknownNamespace
	}
	ids, more, err := host.ListObjectsAfter(a.rt.store.ObjectsDir(), ns, after, limit)
	if err != nil {
		return nil, false, err
	}
	out := make([]admin.ObjectInfo, 0, len(ids))
	for _, id := range ids {
		oid := route.ObjectID{Namespace: ns, ID: id}
		l := a.rt.host.Object(oid)
		info := admin.ObjectInfo{ID: id, Name: l.Name, Mailbox: l.Mailbox, State: a.state(oid, l.Live)}
		info.Bytes, _ = a.rt.store.DatabaseBytes(ns, id)
		out = append(out, info)
	}
	if len(out) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		at, err := a.rt.host.AlarmTimes(ctx, ns, out[0].ID, out[len(out)-1].ID)
		if ctx.Err() != nil {
			return nil, false, fmt.Errorf("%w: reading the alarm index took over %v", admin.ErrTimeout, queryTimeout)
		}
		if err != nil {
			return nil, false, err
		}
		for i := range out {
			out[i].AlarmMs = at[out[i].ID]
		}
	}
	return out, more, nil
}

// state is an object's state in a listing: live, hibernated (evicted with
// WebSockets open) or stored.
func (a adminObjects) state(oid route.ObjectID, live bool) string {
	if live {
		return "live"
	}
	if g := a.rt.hub.Lookup(oid); g != nil && g.Len() > 0 {
		return "hibernated"
	}
	return "stored"
}

// Object reads one object's detail as a turn of the object, without
// building its instance.
func (a adminObjects) Object(ns, id string) (admin.ObjectDetail, error) {
	oid, err := a.checkObject(ns, id)
	if err != nil {
		return admin.ObjectDetail{}, err
	}
	l := a.rt.host.Object(oid)
	d := admin.ObjectDetail{ObjectInfo: admin.ObjectInfo{ID: id, Name: l.Name, Mailbox: l.Mailbox, State: a.state(oid, l.Live)},
		Paused: a.rt.host.Paused(oid)}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	err = a.rt.host.Inspect(ctx, oid, func(o *store.Object) error { return admin.ReadObject(ctx, o, &d) })
	d.Bytes, _ = a.rt.store.DatabaseBytes(ns, id)
	return d, a.inspectError(ctx, ns, id, err, false)
}

// Usage flushes what objects used so far and returns one object's totals.
func (a adminObjects) Usage(ns, id string) (usage.Totals, error) {
	if a.rt.namespaceMetricsOf(ns) == nil {
		return usage.Totals{}, admin.ErrUnknownNamespace
	}
	a.rt.flushUsage()
	return a.rt.usage.Get(ns, id)
}

// TopUsage flushes what objects used so far and returns the top n.
func (a adminObjects) TopUsage(ns, by string, n int) ([]usage.Totals, error) {
	if ns != "" && a.rt.namespaceMetricsOf(ns) == nil {
		return nil, admin.ErrUnknownNamespace
	}
	a.rt.flushUsage()
	return a.rt.usage.Top(ns, by, n)
}

// queryTimeout bounds an operator's query.
const queryTimeout = admin.QueryTimeout

var hexID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Query runs one read-only statement as a turn of the object, without
// building its instance.
func (a adminObjects) Query(ns, id, sql string) (admin.QueryResult, error) {
	oid, err := a.checkObject(ns, id)
	if err != nil {
		return admin.QueryResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	var res admin.QueryResult
	err = a.rt.host.Inspect(ctx, oid, func(o *store.Object) (err error) {
		res.Columns, res.Rows, res.Truncated, err = o.QueryReadOnly(ctx, sql, admin.MaxQueryRows)
		return err
	})
	return res, a.inspectError(ctx, ns, id, err, true)
}

// inspectError maps the error of an operator's read for the admin API;
// userSQL says the operator wrote the SQL (its other errors are theirs).
func (a adminObjects) inspectError(ctx context.Context, ns, id string, err error, userSQL bool) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNoData):
		return fmt.Errorf("%w: object %s of %s has no stored data", admin.ErrNotFound, id, ns)
	case ctx.Err() != nil:
		return fmt.Errorf("%w after %v", admin.ErrTimeout, queryTimeout)
	case errors.Is(err, ErrClosed), errors.Is(err, ErrObjectReset), !userSQL:
		return err
	default:
		return fmt.Errorf("%w: %v", admin.ErrBadQuery, err)
	}
}

// checkObject validates an admin request's namespace and object ID.
func (a adminObjects) checkObject(ns, id string) (route.ObjectID, error) {
	if a.rt.namespaceMetricsOf(ns) == nil {
		return route.ObjectID{}, admin.ErrUnknownNamespace
	}
	if !hexID.MatchString(id) {
		return route.ObjectID{}, fmt.Errorf("%w: %q is not an object ID (64 lowercase hex digits)", admin.ErrBadQuery, id)
	}
	return route.ObjectID{Namespace: ns, ID: id}, nil
}

// Keys lists an object's KV keys as a turn of the object.
func (a adminObjects) Keys(ns, id, prefix, after string, limit int) ([]admin.KeyInfo, error) {
	oid, err := a.checkObject(ns, id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	defer cancel()
	var out []admin.KeyInfo
	err = a.rt.host.Inspect(ctx, oid, func(o *store.Object) error {
		entries, err := o.List(store.ListOptions{Prefix: prefix, StartAfter: after, Limit: limit})
		for _, e := range entries {
			out = append(out, admin.KeyInfo{Key: e.Key, Bytes: len(e.Value)})
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrClosed) {
		err = fmt.Errorf("%w: %v", admin.ErrBadQuery, err)
	}
	return out, err
}

// Act pauses, resumes, evicts an object or deletes its storage.
func (a adminObjects) Act(ns, id, action string) (map[string]any, error) {
	oid, err := a.checkObject(ns, id)
	if err != nil {
		return nil, err
	}
	switch action {
	case "pause":
		a.rt.host.Pause(oid)
	case "resume":
		a.rt.host.Resume(oid)
	case "delete":
		ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
		defer cancel()
		if err := a.rt.host.Wipe(ctx, oid); err != nil {
			return nil, err
		}
	case "evict":
		return map[string]any{"id": id, "namespace": ns, "paused": a.rt.host.Paused(oid), "action": action,
			"was_live": a.rt.host.Evict(oid)}, nil
	}
	return map[string]any{"id": id, "namespace": ns, "paused": a.rt.host.Paused(oid), "action": action}, nil
}
