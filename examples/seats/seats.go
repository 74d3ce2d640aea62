// Package seats is the platform's seat-booking tutorial: one object per
// flight holds its seat map in SQLite, books seats in a transaction, and
// pushes each booking to WebSocket subscribers.
//
//	GET  /seats/{flight}      → 200 {"seats": {"1A": "", "1B": "alice", ...}} (120 seats; "" = free)
//	POST /seats/{flight}/book {"seat":"12A","passenger":"alice"}
//	                          → 200 the booking; 409 taken; 400 unknown seat, empty passenger, bad JSON
//	GET  /seats/{flight}/ws   (WebSocket) → each booking, as {"seat":…,"passenger":…}
//
// A flight has rows 1–20 and letters A–F; a passenger may hold several
// seats.
package seats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/httpjson"
)

// Seat layout.
const (
	Rows    = 20
	Letters = "ABCDEF"
)

// maxBody bounds a booking request.
const maxBody = 16 << 10

// Booking is a seat and who holds it.
type Booking struct {
	Seat      string `json:"seat"`
	Passenger string `json:"passenger"`
}

// Flight is one flight's seat map.
type Flight struct {
	st *durable.State
}

// New is the class constructor: it creates the seat map once.
func New(st *durable.State) (*Flight, error) {
	s := st.Storage()
	if err := s.Exec(`CREATE TABLE IF NOT EXISTS seats (
		seat      TEXT PRIMARY KEY,
		passenger TEXT NOT NULL DEFAULT ''
	) WITHOUT ROWID`).Err(); err != nil {
		return nil, err
	}
	row, err := s.Exec("SELECT count(*) AS n FROM seats").One()
	if err != nil {
		return nil, err
	}
	if row["n"] == int64(0) {
		for r := 1; r <= Rows; r++ {
			for _, l := range Letters {
				if err := s.Exec("INSERT INTO seats(seat) VALUES (?)", fmt.Sprintf("%d%c", r, l)).Err(); err != nil {
					return nil, err
				}
			}
		}
	}
	return &Flight{st: st}, nil
}

// Map returns every seat and its passenger ("" = free).
func (f *Flight) Map(ctx context.Context) (map[string]string, error) {
	seats := make(map[string]string, Rows*len(Letters))
	cur := f.st.Storage().Exec("SELECT seat, passenger FROM seats")
	for cur.Next() {
		var seat, passenger string
		if err := cur.Scan(&seat, &passenger); err != nil {
			return nil, err
		}
		seats[seat] = passenger
	}
	return seats, cur.Err()
}

// Book gives the seat to the passenger if it is free, and tells every
// subscriber. It reports false if the seat is taken.
func (f *Flight) Book(ctx context.Context, b Booking) (bool, error) {
	if err := b.Check(); err != nil {
		return false, err
	}
	booked := false
	s := f.st.Storage()
	err := s.Transaction(func() error {
		row, err := s.Exec("SELECT passenger FROM seats WHERE seat = ?", b.Seat).One()
		if err != nil {
			return err
		}
		if row["passenger"] != "" {
			return nil
		}
		booked = true
		return s.Exec("UPDATE seats SET passenger = ? WHERE seat = ?", b.Passenger, b.Seat).Err()
	})
	if err != nil || !booked {
		return false, err
	}
	msg, _ := json.Marshal(b)
	for _, ws := range f.st.WebSockets("") {
		ws.SendText(string(msg))
	}
	return true, nil
}

// ServeHTTP accepts a subscriber's WebSocket.
func (f *Flight) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, err := f.st.AcceptWebSocket(w, r); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, durable.ErrLimit) {
			status = http.StatusTooManyRequests
		}
		httpjson.Error(w, status, err.Error())
	}
}

// WebSocketMessage ignores what subscribers send: they only listen.
func (f *Flight) WebSocketMessage(ctx context.Context, ws *durable.WebSocket, msg durable.Message) error {
	return nil
}

// WebSocketClose is called when a subscriber leaves.
func (f *Flight) WebSocketClose(ctx context.Context, ws *durable.WebSocket, code int, reason string, wasClean bool) error {
	return nil
}

// WebSocketError is called when the runtime closed a subscriber's socket
// because of an error.
func (f *Flight) WebSocketError(ctx context.Context, ws *durable.WebSocket, err error) error {
	return nil
}

// Check reports what is wrong with a booking request.
func (b Booking) Check() error {
	if !ValidSeat(b.Seat) {
		return fmt.Errorf("unknown seat %q: rows are 1–%d, letters %s (e.g. 12A)", b.Seat, Rows, Letters)
	}
	if strings.TrimSpace(b.Passenger) == "" {
		return errors.New("the passenger is empty")
	}
	return nil
}

// ValidSeat reports whether s names a seat: a row 1–20 and a letter A–F.
func ValidSeat(s string) bool {
	if len(s) < 2 || len(s) > 3 || !strings.ContainsRune(Letters, rune(s[len(s)-1])) {
		return false
	}
	row := s[:len(s)-1]
	if row[0] == '0' {
		return false
	}
	n := 0
	for _, c := range row {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n >= 1 && n <= Rows
}

// Define binds the class as namespace SEATS.
func Define(rt *durable.Runtime) *durable.Namespace[*Flight] {
	return durable.Define(rt, "SEATS", New)
}

// Mount registers the seat routes on mux.
func Mount(mux *http.ServeMux, ns *durable.Namespace[*Flight]) {
	mux.HandleFunc("/seats/{flight}", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodGet) {
			return
		}
		seats, err := durable.Call0(r.Context(), ns.GetByName(r.PathValue("flight")), (*Flight).Map)
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		httpjson.Write(w, http.StatusOK, map[string]any{"seats": seats})
	})
	mux.HandleFunc("/seats/{flight}/book", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.Method(w, r, http.MethodPost) {
			return
		}
		var b Booking
		if !httpjson.Decode(w, r, maxBody, &b) {
			return
		}
		if err := b.Check(); err != nil {
			httpjson.Error(w, http.StatusBadRequest, err.Error())
			return
		}
		ok, err := durable.Call(r.Context(), ns.GetByName(r.PathValue("flight")), (*Flight).Book, b)
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		if !ok {
			httpjson.Error(w, http.StatusConflict, "seat "+b.Seat+" is taken")
			return
		}
		httpjson.Write(w, http.StatusOK, b)
	})
	mux.HandleFunc("/seats/{flight}/ws", func(w http.ResponseWriter, r *http.Request) {
		if !httpjson.WebSocket(w, r) {
			return
		}
		ns.GetByName(r.PathValue("flight")).ServeHTTP(w, r)
	})
}
