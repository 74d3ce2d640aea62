// Package ratelimiter is a token bucket per key: each key is an object
// holding 10 tokens that refill continuously at one per second.
//
//	POST /ratelimit/{key} → 200 {"remaining": N} (tokens left after this request)
//	                      → 429 with Retry-After (whole seconds until the next token)
//
// The bucket lives in the object's memory, as in the platform's example: an
// evicted or restarted limiter starts full again, which loses nothing once
// it has been idle 10 s (it would be full anyway) and is otherwise the
// documented cost of not writing to disk on every request.
package ratelimiter

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/httpjson"
)

// Bucket parameters.
const (
	Capacity = 10  // tokens a bucket holds
	Rate     = 1.0 // tokens added per second
)

// Limiter is one key's bucket.
type Limiter struct {
	now    func() time.Time
	tokens float64
	last   time.Time
}

// Result is the outcome of one request.
type Result struct {
	Allowed    bool
	Remaining  int           // whole tokens left after the request
	RetryAfter time.Duration // when refused: until the next token
}

// Take spends a token if one is left.
func (l *Limiter) Take(ctx context.Context) (Result, error) {
	now := l.now()
	if l.last.IsZero() {
		l.tokens = Capacity
	} else if d := now.Sub(l.last).Seconds(); d > 0 {
		l.tokens = math.Min(Capacity, l.tokens+d*Rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return Result{Allowed: true, Remaining: int(math.Floor(l.tokens))}, nil
	}
	wait := time.Duration((1 - l.tokens) / Rate * float64(time.Second))
	return Result{RetryAfter: wait}, nil
}

// Define binds the class as namespace RATELIMIT; now is its clock (nil:
// time.Now).
func Define(rt *durable.Runtime, now func() time.Time) *durable.Namespace[*Limiter] {
	if now == nil {
		now = time.Now
	}
	return durable.Define(rt, "RATELIMIT", func(st *durable.State) (*Limiter, error) {
		return &Limiter{now: now}, nil
	})
}

// Mount registers the rate limiter's route on mux.
func Mount(mux *http.ServeMux, ns *durable.Namespace[*Limiter]) {
	mux.HandleFunc("/ratelimit/{key}", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodPost) {
			return
		}
		res, err := durable.Call0(r.Context(), ns.GetByName(r.PathValue("key")), (*Limiter).Take)
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		if !res.Allowed {
			secs := max(1, int(math.Ceil(res.RetryAfter.Seconds())))
			w.Header().Set("Retry-After", strconv.Itoa(secs))
			httpjson.Error(w, http.StatusTooManyRequests, "rate limit exceeded; retry in "+strconv.Itoa(secs)+" s")
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]int{"remaining": res.Remaining})
	})
}
