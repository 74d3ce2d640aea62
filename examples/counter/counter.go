// Package counter is the smallest durable object: a named counter that
// survives restarts, with HTTP routes for it.
//
//	POST /counter/{name}/increment → 200 {"value": N} (the new value)
//	GET  /counter/{name}           → 200 {"value": N} (0 if never incremented)
package counter

import (
	"context"
	"net/http"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/httpjson"
)

// Counter is one counter object.
type Counter struct {
	st *durable.State
}

// New is the class constructor.
func New(st *durable.State) (*Counter, error) { return &Counter{st: st}, nil }

// Increment adds by to the counter and returns the new value.
func (c *Counter) Increment(ctx context.Context, by int64) (int64, error) {
	var v int64
	if _, err := c.st.Storage().Get("value", &v); err != nil {
		return 0, err
	}
	v += by
	return v, c.st.Storage().Put("value", v)
}

// Get returns the counter's value (0 if never incremented).
func (c *Counter) Get(ctx context.Context) (int64, error) {
	var v int64
	_, err := c.st.Storage().Get("value", &v)
	return v, err
}

// Define binds the class as namespace COUNTER.
func Define(rt *durable.Runtime) *durable.Namespace[*Counter] {
	return durable.Define(rt, "COUNTER", New)
}

type value struct {
	Value int64 `json:"value"`
}

// Mount registers the counter's routes on mux.
func Mount(mux *http.ServeMux, ns *durable.Namespace[*Counter]) {
	mux.HandleFunc("/counter/{name}/increment", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodPost) {
			return
		}
		v, err := durable.Call(r.Context(), ns.GetByName(r.PathValue("name")), (*Counter).Increment, int64(1))
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		httpjson.Write(w, http.StatusOK, value{v})
	})
	mux.HandleFunc("/counter/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodGet) {
			return
		}
		v, err := durable.Call0(r.Context(), ns.GetByName(r.PathValue("name")), (*Counter).Get)
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		httpjson.Write(w, http.StatusOK, value{v})
	})
}
