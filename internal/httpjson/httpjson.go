// Package httpjson holds the HTTP conventions of durable's server and
// example apps (DESIGN.md §5): JSON bodies, every 4xx with
// {"error": "..."}, 405 for a wrong method, 404 for an unknown route, and
// the one table from durable's errors to status codes.
package httpjson

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/durable-go/durable"
)

// Write sends v as JSON with the status.
func Write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Error sends {"error": msg} with the status.
func Error(w http.ResponseWriter, status int, msg string) {
	Write(w, status, map[string]string{"error": msg})
}

// Method answers 405 (with Allow) unless r uses method (HEAD counts as
// GET), and reports whether it does.
func Method(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Method == method || method == http.MethodGet && r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", method)
	Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; use "+method)
	return false
}

// NotFound answers 404 for an unknown route.
func NotFound(w http.ResponseWriter, r *http.Request) {
	Error(w, http.StatusNotFound, "no route for "+r.URL.Path)
}

// Fail answers for an error of a call into an object. This is the one
// table from durable's errors to HTTP statuses: overloaded, closed or reset
// → 503 with Retry-After; an invalid ID → 400; a limit → 413; a deadline →
// 504; anything else → 500. A cancelled request gets nothing (the client
// is gone).
func Fail(w http.ResponseWriter, r *http.Request, err error) {
	var de *durable.Error
	switch {
	case errors.Is(err, context.Canceled):
	case errors.Is(err, context.DeadlineExceeded):
		Error(w, http.StatusGatewayTimeout, err.Error())
	case errors.As(err, &de) && de.Overloaded,
		errors.Is(err, durable.ErrClosed),
		errors.Is(err, durable.ErrObjectReset):
		w.Header().Set("Retry-After", "1")
		Error(w, http.StatusServiceUnavailable, err.Error())
	case errors.Is(err, durable.ErrInvalidID):
		Error(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, durable.ErrLimit):
		Error(w, http.StatusRequestEntityTooLarge, err.Error())
	default:
		Error(w, http.StatusInternalServerError, err.Error())
	}
}
