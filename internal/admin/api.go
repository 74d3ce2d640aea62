package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Page sizes of object listings (the platform's: LIM-43).
const (
	MinPageSize     = 10
	MaxPageSize     = 10000
	DefaultPageSize = 1000
)

// ErrUnknownNamespace is returned by a Source for a namespace that is not
// defined.
var ErrUnknownNamespace = errors.New("admin: unknown namespace")

// ObjectInfo is one object in a listing.
type ObjectInfo struct {
	ID      string `json:"id"`
	Name    string `json:"name,omitempty"` // when the live instance knows it
	Bytes   int64  `json:"bytes"`          // its database and WAL on disk
	State   string `json:"state"`          // live, hibernated (evicted, WebSockets open) or stored
	Mailbox int64  `json:"mailbox"`        // events queued for it
}

// NamespaceInfo is one namespace in a listing.
type NamespaceInfo struct {
	Name string `json:"name"`
	Live int64  `json:"live"`
}

// Objects is what the admin API reads from the runtime.
type Objects interface {
	Namespaces() []NamespaceInfo
	// ListObjects returns up to limit objects after the ID after, in ID
	// order, and whether more follow.
	ListObjects(ns, after string, limit int) ([]ObjectInfo, bool, error)
}

// APIHandler serves the admin REST API under /admin/v1, to requests with
// "Authorization: Bearer <token>" only (401 otherwise).
//
//	GET /admin/v1/namespaces                     → {"namespaces": [{"name", "live"}]}
//	GET /admin/v1/namespaces/{ns}/objects        → {"objects": [...], "cursor": "..."}
//	    ?limit=10..10000 (1000) &cursor=<from the last page>; cursor "" on the last page
func APIHandler(token string, src Objects) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/v1/namespaces", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"namespaces": src.Namespaces()})
	})
	mux.HandleFunc("GET /admin/v1/namespaces/{ns}/objects", func(w http.ResponseWriter, r *http.Request) {
		limit := DefaultPageSize
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < MinPageSize || n > MaxPageSize {
				writeError(w, http.StatusBadRequest, "limit must be a whole number from 10 to 10000")
				return
			}
			limit = n
		}
		objs, more, err := src.ListObjects(r.PathValue("ns"), r.URL.Query().Get("cursor"), limit)
		switch {
		case errors.Is(err, ErrUnknownNamespace):
			writeError(w, http.StatusNotFound, "no namespace "+strconv.Quote(r.PathValue("ns")))
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		cursor := ""
		if more && len(objs) > 0 {
			cursor = objs[len(objs)-1].ID
		}
		if objs == nil {
			objs = []ObjectInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"objects": objs, "cursor": cursor})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no admin route "+r.Method+" "+r.URL.Path)
	})
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		// Compare digests: constant time whatever the lengths.
		sum := sha256.Sum256([]byte(got))
		if !ok || token == "" || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="durable admin"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
