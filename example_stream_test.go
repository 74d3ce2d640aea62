package durable_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"

	"github.com/durable-go/durable"
)

// Report is long-running work that streams its results: each step is
// stored, then flushed to the client. A flush is a durability point, so
// what the client has seen is on disk, and a client that reconnects can
// resume from the last step stored.
type Report struct{ st *durable.State }

func (rep *Report) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := rep.st.Storage()
	if err := s.Exec("CREATE TABLE IF NOT EXISTS steps (n INTEGER PRIMARY KEY, result TEXT)").Err(); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	for n := 1; n <= 3; n++ {
		result := "part " + strconv.Itoa(n) // the work of one step
		if err := s.Exec("INSERT OR REPLACE INTO steps VALUES (?, ?)", n, result).Err(); err != nil {
			return
		}
		fmt.Fprintln(w, result)
		// The step's row is durable, then the line leaves. Subscribers on
		// WebSockets could be told the same way: ws.SendText(result).
		if err := http.NewResponseController(w).Flush(); err != nil {
			return // the client is gone; the steps stored so far stay
		}
	}
}

// A streaming response: each Flush makes the turn's writes so far durable,
// then sends what was written.
func Example_streaming() {
	rt, err := durable.Open(durable.Config{})
	if err != nil {
		panic(err)
	}
	defer rt.Close(context.Background())
	reports := durable.Define(rt, "REPORT", func(st *durable.State) (*Report, error) { return &Report{st: st}, nil })
	srv := httptest.NewServer(reports.GetByName("q3"))
	defer srv.Close()

	res, err := http.Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer res.Body.Close()
	lines := bufio.NewScanner(res.Body)
	for lines.Scan() { // each line arrives as soon as its step is durable
		fmt.Println(lines.Text())
	}
	// Output:
	// part 1
	// part 2
	// part 3
}
