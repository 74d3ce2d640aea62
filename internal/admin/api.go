package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/durable-go/durable/internal/errs"
	"github.com/durable-go/durable/internal/usage"
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
	// AlarmMs is the object's alarm time in Unix milliseconds (0: none). In
	// a listing it comes from the node's alarm index, which may be earlier
	// than the object's record for a moment; an object's detail reads the
	// record.
	AlarmMs int64 `json:"alarm_ms,omitempty"`
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
	// Object returns one object's detail, read in a turn of the object.
	Object(ns, id string) (ObjectDetail, error)
	// Usage returns what one object used, up to now.
	Usage(ns, id string) (usage.Totals, error)
	// TopUsage returns the n objects (of ns, or of all when ns is "") that
	// used the most by one of usage.Orders.
	TopUsage(ns, by string, n int) ([]usage.Totals, error)
	// Query runs one read-only SQL statement as a turn of the object.
	Query(ns, id, sql string) (QueryResult, error)
	// Keys lists up to limit of the object's KV keys after after.
	Keys(ns, id, prefix, after string, limit int) ([]KeyInfo, error)
	// Act carries out an operator action: pause, resume, delete or evict.
	Act(ns, id, action string) (map[string]any, error)
}

// KeyInfo is one KV entry in a listing: its key and the size of its
// encoded value.
type KeyInfo struct {
	Key   string `json:"key"`
	Bytes int    `json:"bytes"`
}

// QueryResult is a read-only query's answer.
type QueryResult struct {
	Columns   []string `json:"columns"`
	Rows      [][]any  `json:"rows"`
	Truncated bool     `json:"truncated"` // more rows than MaxQueryRows
}

// Bounds of an operator's query.
const (
	MaxQueryRows  = 1000
	MaxQueryBytes = 100 << 10
	QueryTimeout  = 5 * time.Second
)

// Errors a Source returns for the admin API to map.
var (
	ErrNotFound = errors.New("admin: not found")       // 404
	ErrBadQuery = errors.New("admin: bad query")       // 400
	ErrTimeout  = errors.New("admin: query timed out") // 504
)

// APIHandler serves the admin REST API under /admin/v1, to requests with
// "Authorization: Bearer <token>" only (401 otherwise).
//
//	GET /admin/v1/namespaces                     → {"namespaces": [{"name", "live"}]}
//	GET /admin/v1/namespaces/{ns}/objects        → {"objects": [...], "cursor": "..."}
//	    ?limit=10..10000 (1000) &cursor=<from the last page>; cursor "" on the last page
//	GET /admin/v1/namespaces/{ns}/objects/{id}  → the object's state, alarm (its record), and schema:
//	                                               its tables (with row counts), views, indexes, triggers
//	GET /admin/v1/namespaces/{ns}/objects/{id}/usage → one object's usage totals
//	GET /admin/v1/usage/top?by=requests|wall|rows_read|rows_written|bytes&n=1..1000 (10)&namespace=
//	                                             → {"by", "objects": [...]}: the top users
//	POST /admin/v1/namespaces/{ns}/objects/{id}/query {"sql": "SELECT ..."}
//	                                             → {"columns", "rows", "truncated"}: one read-only
//	                                               statement, run as a turn of the object (5 s, 1,000 rows)
//	GET  /admin/v1/namespaces/{ns}/objects/{id}/kv?prefix=&cursor=&limit= → {"keys": [{"key", "bytes"}], "cursor"}
//	POST /admin/v1/namespaces/{ns}/objects/{id}/pause|resume|delete|evict → the object's state after the action
func APIHandler(token string, src Objects) http.Handler {
	token = strings.TrimSpace(token) // a header value cannot carry the spaces
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
		if fail(w, r, err) {
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
	mux.HandleFunc("GET /admin/v1/namespaces/{ns}/objects/{id}", func(w http.ResponseWriter, r *http.Request) {
		d, err := src.Object(r.PathValue("ns"), r.PathValue("id"))
		if fail(w, r, err) {
			return
		}
		writeJSON(w, http.StatusOK, d)
	})
	mux.HandleFunc("GET /admin/v1/namespaces/{ns}/objects/{id}/usage", func(w http.ResponseWriter, r *http.Request) {
		t, err := src.Usage(r.PathValue("ns"), r.PathValue("id"))
		if fail(w, r, err) {
			return
		}
		writeJSON(w, http.StatusOK, t)
	})
	mux.HandleFunc("GET /admin/v1/usage/top", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		by := q.Get("by")
		if by == "" {
			by = "requests"
		}
		if _, ok := usage.Orders[by]; !ok {
			writeError(w, http.StatusBadRequest, "by must be one of requests, wall, rows_read, rows_written, bytes")
			return
		}
		n := 10
		if s := q.Get("n"); s != "" {
			v, err := strconv.Atoi(s)
			if err != nil || v < 1 || v > 1000 {
				writeError(w, http.StatusBadRequest, "n must be a whole number from 1 to 1000")
				return
			}
			n = v
		}
		top, err := src.TopUsage(q.Get("namespace"), by, n)
		if fail(w, r, err) {
			return
		}
		if top == nil {
			top = []usage.Totals{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"by": by, "objects": top})
	})
	mux.HandleFunc("POST /admin/v1/namespaces/{ns}/objects/{id}/query", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			SQL string `json:"sql"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxQueryBytes))
		if err := dec.Decode(&body); err != nil || strings.TrimSpace(body.SQL) == "" {
			writeError(w, http.StatusBadRequest, `the body must be JSON {"sql": "SELECT ..."} of at most 100 KiB`)
			return
		}
		res, err := src.Query(r.PathValue("ns"), r.PathValue("id"), body.SQL)
		if fail(w, r, err) {
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("GET /admin/v1/namespaces/{ns}/objects/{id}/kv", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := DefaultPageSize
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < MinPageSize || n > MaxPageSize {
				writeError(w, http.StatusBadRequest, "limit must be a whole number from 10 to 10000")
				return
			}
			limit = n
		}
		keys, err := src.Keys(r.PathValue("ns"), r.PathValue("id"), q.Get("prefix"), q.Get("cursor"), limit)
		if fail(w, r, err) {
			return
		}
		cursor := ""
		if len(keys) == limit {
			cursor = keys[len(keys)-1].Key
		}
		if keys == nil {
			keys = []KeyInfo{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"keys": keys, "cursor": cursor})
	})
	mux.HandleFunc("POST /admin/v1/namespaces/{ns}/objects/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("action") {
		case "pause", "resume", "delete", "evict":
		default:
			writeError(w, http.StatusNotFound, "no action "+strconv.Quote(r.PathValue("action"))+" (pause, resume, delete, evict)")
			return
		}
		res, err := src.Act(r.PathValue("ns"), r.PathValue("id"), r.PathValue("action"))
		if fail(w, r, err) {
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no admin route "+r.Method+" "+r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !validBearer(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="durable admin"`)
			writeError(w, http.StatusUnauthorized, "a valid bearer token is required")
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// validBearer says whether r carries "Authorization: Bearer <token>" (the
// scheme is case-insensitive); an empty token matches nothing.
func validBearer(r *http.Request, token string) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	return ok && strings.EqualFold(scheme, "Bearer") && tokenMatches(got, token)
}

// tokenMatches compares a given token with the admin token as SHA-256
// digests: constant time whatever the lengths. An empty token matches
// nothing.
func tokenMatches(given, token string) bool {
	x, y := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(token))
	return token != "" && subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// errorStatus is the HTTP status of a Source's error: 404 for what is not
// there, 400 for a bad query, 504 for one that timed out, 503 while the
// runtime closes, 500 else.
func errorStatus(err error) int {
	switch {
	case errors.Is(err, usage.ErrClosed), errors.Is(err, errs.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrBadQuery):
		return http.StatusBadRequest
	case errors.Is(err, ErrTimeout):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrUnknownNamespace):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

// fail answers for err, if any, with errorStatus.
func fail(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	if errors.Is(err, ErrUnknownNamespace) {
		ns := r.PathValue("ns")
		if ns == "" {
			ns = r.URL.Query().Get("namespace")
		}
		msg = "no namespace " + strconv.Quote(ns)
	}
	writeError(w, errorStatus(err), msg)
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
