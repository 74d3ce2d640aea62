package durable

import (
	"context"
	"fmt"
	"github.com/durable-go/durable/internal/metrics"
	"hash/maphash"
	"net/http"
	"reflect"
	"sync/atomic"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/hooks"
	"github.com/durable-go/durable/internal/host"
	"github.com/durable-go/durable/internal/id"
	"github.com/durable-go/durable/internal/route"
)

// Namespace is a class bound under a name: it makes IDs and stubs for the
// class's objects.
type Namespace[T any] struct {
	rt      *Runtime
	name    string
	key     id.Key
	methods map[uintptr]method // code pointer of each exported method of T → the method
	handler bool               // T implements http.Handler
	alarmer bool               // T implements Alarmer
	ws      bool               // T implements WebSocketHandler

	// byName caches the stubs GetByName made (see stubCache).
	byName stubCache[T]
	// metrics are the namespace's counters.
	metrics *metrics.Namespace
}

// stubCacheSize is the number of slots of a namespace's stub cache.
const stubCacheSize = 4096

// stubCache is a direct-mapped cache of stubs by name: deriving an ID from
// a name costs two HMAC-SHA256 computations, which the hot path of a
// front end calling the same objects again and again need not repeat. A
// slot holds the stub last made for a name hashing to it; stubs are
// immutable, so one may be handed to any number of callers. Bounded: a
// namespace's cache never holds more than stubCacheSize stubs.
type stubCache[T any] struct {
	seed  maphash.Seed
	slots [stubCacheSize]atomic.Pointer[namedStub[T]]
}

type namedStub[T any] struct {
	name string
	stub *Stub[T]
}

// Define binds a class to a namespace name on rt. T must be a pointer type
// (e.g. *Counter): each object is one value of it, built by newObject on
// the object's first event. Define panics, as net/http does for a duplicate
// pattern, for a non-pointer T, an invalid name (1–64 of A-Z a-z 0-9 _ -)
// or a name already defined on rt.
func Define[T any](rt *Runtime, name string, newObject func(*State) (T, error)) *Namespace[T] {
	t := reflect.TypeFor[T]()
	if t.Kind() != reflect.Pointer {
		panic(fmt.Sprintf("durable: Define(%q): the class must be a pointer type such as *%s, not %s (each call would get a copy)", name, t.Name(), t))
	}
	if !validNamespace(name) {
		panic(fmt.Sprintf("durable: Define(%q): a namespace name is 1–64 of A-Z a-z 0-9 _ -", name))
	}
	if newObject == nil {
		panic(fmt.Sprintf("durable: Define(%q): nil constructor", name))
	}
	n := &Namespace[T]{rt: rt, name: name, key: id.NamespaceKey(rt.secret, name), methods: map[uintptr]method{},
		byName:  stubCache[T]{seed: maphash.MakeSeed()},
		handler: t.Implements(reflect.TypeFor[http.Handler]()),
		alarmer: t.Implements(reflect.TypeFor[Alarmer]()),
		ws:      t.Implements(reflect.TypeFor[WebSocketHandler]()),
	}
	var names []string
	for i := 0; i < t.NumMethod(); i++ {
		if m := t.Method(i); !handlerMethods[m.Name] {
			names = append(names, m.Name)
		}
	}
	if _, dup := rt.nsMetrics.Load(name); !dup && !rt.noMetrics.Load() {
		n.metrics = rt.newNamespaceMetrics(name, names)
	}
	for i := 0; i < t.NumMethod(); i++ {
		m := t.Method(i)
		n.methods[m.Func.Pointer()] = method{name: m.Name, calls: n.rpcCounter(m.Name)}
	}
	class := &host.Class{
		Name:    name,
		Metrics: n.metrics,
		New: func(ctx context.Context, a *host.Activation) (any, error) {
			st := newState(rt, a, n.key, classInfo{name: t.String(), alarmer: n.alarmer, wsHandler: n.ws})
			a.SetState(st)
			return newObject(st)
		},
	}
	if n.alarmer {
		class.Alarm = func(ctx context.Context, inst any, info host.AlarmInfo) error {
			return any(inst).(Alarmer).Alarm(ctx, AlarmInfo{RetryCount: info.RetryCount, IsRetry: info.IsRetry})
		}
	}
	ok := rt.host.Define(class)
	if !ok {
		panic(fmt.Sprintf("durable: Define(%q): the namespace is already defined on this runtime", name))
	}
	return n
}

// handlerMethods are the methods the runtime calls itself (HTTP, alarms,
// WebSocket events): they are not counted as RPC methods.
var handlerMethods = map[string]bool{"ServeHTTP": true, "Alarm": true,
	"WebSocketMessage": true, "WebSocketClose": true, "WebSocketError": true}

// rpcCounter returns the counter of calls to a method, nil for one that is
// not counted.
func (n *Namespace[T]) rpcCounter(method string) *metrics.Counter {
	if n.metrics == nil {
		return nil
	}
	return n.metrics.RPC[method]
}

func validNamespace(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Name returns the namespace's name.
func (n *Namespace[T]) Name() string { return n.name }

// IDFromName returns the ID of the object called name: the same ID for the
// same name in this namespace, across restarts.
func (n *Namespace[T]) IDFromName(name string) ID {
	return ID{b: n.key.FromName(name), name: name}
}

// NewUniqueID returns a new random, unguessable ID.
func (n *Namespace[T]) NewUniqueID() ID { return ID{b: n.key.Unique()} }

// IDFromString parses an ID's String form (upper- or lower-case hex). It
// fails with ErrInvalidID for a malformed string or an ID that does not
// belong to this namespace.
func (n *Namespace[T]) IDFromString(s string) (ID, error) {
	b, err := n.key.Parse(s)
	if err != nil {
		return ID{}, &Error{Message: "durable: " + err.Error(), Err: ErrInvalidID}
	}
	return ID{b: b}, nil
}

// Get returns a stub for the object. It creates nothing: the object is
// constructed on its first event. An ID of another namespace gives a stub
// whose calls fail with ErrInvalidID.
func (n *Namespace[T]) Get(i ID) *Stub[T] {
	s := &Stub[T]{ns: n, id: i, oid: route.ObjectID{Namespace: n.name, ID: i.String()}}
	if i.isZero() || !n.key.Valid(i.b) {
		s.err = &Error{Message: fmt.Sprintf("durable: ID %s is not valid for namespace %s", i, n.name), Err: ErrInvalidID}
	}
	return s
}

// GetByName is Get(IDFromName(name)).
func (n *Namespace[T]) GetByName(name string) *Stub[T] {
	slot := &n.byName.slots[maphash.String(n.byName.seed, name)%stubCacheSize]
	if e := slot.Load(); e != nil && e.name == name {
		return e.stub
	}
	i := n.IDFromName(name) // valid by construction: no check of its tag
	s := &Stub[T]{ns: n, id: i, oid: route.ObjectID{Namespace: n.name, ID: i.String()}}
	slot.Store(&namedStub[T]{name: name, stub: s})
	return s
}

func (n *Namespace[T]) typeName() string { return reflect.TypeFor[T]().String() }

// method is an exported method of a class: its name and the counter of
// calls to it (nil for the methods the runtime calls itself).
type method struct {
	name  string
	calls *metrics.Counter
}

// methodOf finds the exported method of T a method expression refers to.
func (n *Namespace[T]) methodOf(fn any) (method, error) {
	v := reflect.ValueOf(fn)
	if v.Kind() != reflect.Func || v.IsNil() {
		return method{}, fmt.Errorf("durable: nil method: %w", errs.ErrNotImplemented)
	}
	if m, ok := n.methods[v.Pointer()]; ok {
		return m, nil
	}
	return method{}, fmt.Errorf("durable: %v is not an exported method of %s (pass a method expression such as (%s).Method): %w",
		v.Type(), reflect.TypeFor[T](), reflect.TypeFor[T](), errs.ErrNotImplemented)
}

func init() {
	hooks.ListIDs = func(ns any) ([]string, error) {
		type lister interface{ listIDs() ([]string, error) }
		return ns.(lister).listIDs()
	}
}

func (n *Namespace[T]) listIDs() ([]string, error) {
	return host.ListObjects(n.rt.store.ObjectsDir(), n.name)
}
