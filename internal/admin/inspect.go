package admin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/durable-go/durable/internal/alarm"
	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/store"
	"github.com/durable-go/durable/internal/usage"
)

// Inspector reads the data directory of a stopped runtime: the same
// listings and read-only queries as the admin API, without a server. It
// holds the directory's lock, so it refuses a directory a running server
// holds and no server starts on it meanwhile.
type Inspector struct {
	dir  string
	lock *os.File
	st   *store.Store
}

// OpenInspector opens dir for inspection.
func OpenInspector(dir string) (*Inspector, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(abs, "objects")); err != nil {
		return nil, fmt.Errorf("%s is not a durable data directory (no objects/ in it): %w", abs, err)
	}
	lock, err := host.LockDir(abs)
	if errors.Is(err, errs.ErrLocked) {
		return nil, fmt.Errorf("%s is held by a running server (or another process): stop it first, or use its admin API (--admin-addr)", abs)
	}
	if err != nil {
		return nil, err
	}
	st, err := store.Open(store.Config{Dir: abs})
	if err != nil {
		lock.Close()
		return nil, err
	}
	return &Inspector{dir: abs, lock: lock, st: st}, nil
}

// Close releases the directory.
func (in *Inspector) Close() error {
	err := in.st.Close()
	in.lock.Close()
	return err
}

// Namespaces lists the namespaces that have stored objects.
func (in *Inspector) Namespaces() ([]string, error) {
	entries, err := os.ReadDir(in.st.ObjectsDir())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

// Objects lists a namespace's stored objects in ID order, as the admin API.
func (in *Inspector) Objects(ns, after string, limit int) ([]ObjectInfo, bool, error) {
	if err := in.checkNamespace(ns); err != nil {
		return nil, false, err
	}
	ids, more, err := host.ListObjectsAfter(in.st.ObjectsDir(), ns, after, limit)
	if err != nil {
		return nil, false, err
	}
	out := make([]ObjectInfo, 0, len(ids))
	for _, id := range ids {
		info := ObjectInfo{ID: id, State: "stored"}
		info.Bytes, _ = in.st.DatabaseBytes(ns, id)
		out = append(out, info)
	}
	if len(out) == 0 {
		return out, more, nil
	}
	idx, err := in.st.AcquireNode("runtime")
	if err != nil {
		return nil, false, err
	}
	defer idx.Release()
	var at map[string]int64
	err = in.turnOf(idx, func(o *store.Object) (err error) {
		at, err = alarm.ReadIndex(o, ns, out[0].ID, out[len(out)-1].ID)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("read the alarm index: %w", err)
	}
	for i := range out {
		out[i].AlarmMs = at[out[i].ID]
	}
	return out, more, nil
}

// Object reads one object's alarm record and schema, as the admin API.
func (in *Inspector) Object(ns, id string) (ObjectDetail, error) {
	d := ObjectDetail{ObjectInfo: ObjectInfo{ID: id, State: "stored"}}
	d.Bytes, _ = in.st.DatabaseBytes(ns, id)
	err := in.turn(ns, id, func(o *store.Object) error { return ReadObject(context.Background(), o, &d) })
	return d, err
}

// checkNamespace refuses a namespace with no stored objects.
func (in *Inspector) checkNamespace(ns string) error {
	if fi, err := os.Stat(filepath.Join(in.st.ObjectsDir(), ns)); err != nil || !fi.IsDir() || ns == "" || ns != filepath.Base(ns) {
		return fmt.Errorf("%w: no namespace %q has stored objects in %s", ErrUnknownNamespace, ns, in.dir)
	}
	return nil
}

// turn runs fn as a turn of one object's storage.
func (in *Inspector) turn(ns, id string, fn func(o *store.Object) error) error {
	if err := in.checkNamespace(ns); err != nil {
		return err
	}
	o, err := in.st.Acquire(ns, id)
	if err != nil {
		return err
	}
	defer o.Release()
	return in.turnOf(o, fn)
}

// turnOf runs fn as a turn of o and waits for it to be durable.
func (in *Inspector) turnOf(o *store.Object, fn func(o *store.Object) error) error {
	if err := o.Begin(); err != nil {
		return err
	}
	ferr := fn(o)
	p, err := o.End(ferr)
	o.Commit()
	if err != nil {
		return err
	}
	if werr := p.Wait(context.Background()); werr != nil {
		return werr
	}
	return ferr
}

// Query runs one read-only statement on an object, as the admin API.
func (in *Inspector) Query(ns, id, sql string) (QueryResult, error) {
	var res QueryResult
	ctx, cancel := context.WithTimeout(context.Background(), QueryTimeout)
	defer cancel()
	err := in.turn(ns, id, func(o *store.Object) (err error) {
		res.Columns, res.Rows, res.Truncated, err = o.QueryReadOnly(ctx, sql, MaxQueryRows)
		return err
	})
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w after %v", ErrTimeout, QueryTimeout)
	}
	return res, err
}

// Keys lists an object's KV keys, as the admin API.
func (in *Inspector) Keys(ns, id, prefix, after string, limit int) ([]KeyInfo, error) {
	var out []KeyInfo
	err := in.turn(ns, id, func(o *store.Object) error {
		entries, err := o.List(store.ListOptions{Prefix: prefix, StartAfter: after, Limit: limit})
		for _, e := range entries {
			out = append(out, KeyInfo{Key: e.Key, Bytes: len(e.Value)})
		}
		return err
	})
	return out, err
}

// book opens the usage database the server kept, if it kept one (opening
// it never creates it: inspecting writes nothing).
func (in *Inspector) book() (*usage.Book, error) {
	if _, err := os.Stat(filepath.Join(in.dir, "usage.sqlite")); err != nil {
		return nil, fmt.Errorf("%w: no usage recorded in %s (usage.sqlite is missing)", ErrNotFound, in.dir)
	}
	return usage.Open(in.st)
}

// Usage returns what one object used, as the admin API.
func (in *Inspector) Usage(ns, id string) (usage.Totals, error) {
	b, err := in.book()
	if err != nil {
		return usage.Totals{}, err
	}
	defer b.Close()
	return b.Get(ns, id)
}

// TopUsage returns the n objects (of ns, or all when ns is "") that used
// the most by one of usage.Orders, as the admin API.
func (in *Inspector) TopUsage(ns, by string, n int) ([]usage.Totals, error) {
	if _, ok := usage.Orders[by]; !ok {
		return nil, fmt.Errorf("%w: by must be one of requests, wall, rows_read, rows_written, bytes", ErrBadQuery)
	}
	b, err := in.book()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Top(ns, by, n)
}
