// Command library is the README's own app: durable used as a library
// behind a plain net/http server, with a graceful shutdown.
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/durable-go/durable"
)

// Visits counts page views per site: one object per site.
type Visits struct{ st *durable.State }

// Hit counts one view of page and returns the page's count.
func (v *Visits) Hit(ctx context.Context, page string) (int64, error) {
	var n int64
	if _, err := v.st.Storage().Get(page, &n); err != nil {
		return 0, err
	}
	n++
	return n, v.st.Storage().Put(page, n) // durable before the reply leaves
}

func main() {
	rt, err := durable.Open(durable.Config{Dir: "data"})
	if err != nil {
		log.Fatal(err)
	}
	visits := durable.Define(rt, "VISITS", func(st *durable.State) (*Visits, error) { return &Visits{st}, nil })
	http.HandleFunc("POST /visits/{site}/{page}", func(w http.ResponseWriter, r *http.Request) {
		n, err := durable.Call(r.Context(), visits.GetByName(r.PathValue("site")), (*Visits).Hit, r.PathValue("page"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, n)
	})
	srv := &http.Server{Addr: "127.0.0.1:8080"}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
		srv.Shutdown(context.Background()) // stop taking requests, finish the ones in flight
	}()
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rt.Close(ctx) // finish turns, commit, close WebSockets with 1001
}
