// Package httpjson holds the HTTP conventions of durable's server and
// example apps (DESIGN.md §5): JSON bodies, every 4xx with
// {"error": "..."}, 405 for a wrong method, 404 for an unknown route, and
// the one table from durable's errors to status codes.
package httpjson

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

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

// Decode reads r's JSON body (at most limit bytes) into v. It answers 413
// for a larger body and 400 for malformed JSON (or trailing data), and
// reports whether v was filled.
func Decode(w http.ResponseWriter, r *http.Request, limit int64, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON value")
	}
	if err == nil {
		return true
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		Error(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is larger than %d bytes", mbe.Limit))
		return false
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("the body is empty")
	}
	Error(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
	return false
}

// WebSocket answers 405 unless r is a GET, and 400 unless it asks for a
// WebSocket upgrade; it reports whether r may go on to the object.
func WebSocket(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		Error(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed; open a WebSocket with GET")
		return false
	}
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		Error(w, http.StatusBadRequest, "this route is a WebSocket: send a GET with Upgrade: websocket")
		return false
	}
	return true
}

// NotFound answers 404 for an unknown route.
func NotFound(w http.ResponseWriter, r *http.Request) {
	Error(w, http.StatusNotFound, "no route for "+r.URL.Path)
}

// Fail answers for an error of a call into an object with the status of
// [Status] and {"error": ...}. A cancelled request gets nothing (the
// client is gone).
func Fail(w http.ResponseWriter, r *http.Request, err error) {
	status, ok := Status(err)
	if !ok {
		return
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	Error(w, status, err.Error())
}

// Status is the one table from durable's errors to HTTP statuses:
// overloaded, closed or reset → 503 (retryable: send Retry-After); an
// invalid ID → 400; a limit → 413; a deadline → 504; anything else → 500.
// ok is false for a cancelled request, which gets no answer.
func Status(err error) (status int, ok bool) {
	var de *durable.Error
	switch {
	case errors.Is(err, context.Canceled):
		return 0, false
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, true
	case errors.As(err, &de) && de.Overloaded,
		errors.Is(err, durable.ErrClosed),
		errors.Is(err, durable.ErrObjectReset):
		return http.StatusServiceUnavailable, true
	case errors.Is(err, durable.ErrInvalidID):
		return http.StatusBadRequest, true
	case errors.Is(err, durable.ErrLimit):
		return http.StatusRequestEntityTooLarge, true
	default:
		return http.StatusInternalServerError, true
	}
}
