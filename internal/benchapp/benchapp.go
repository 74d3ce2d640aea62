// Package benchapp mirrors the peer benchmark's worker
// (peers/workerd/worker.js in the shared reference folder) so that one load
// client drives durable and workerd unchanged. `durable serve --app bench`
// serves it (DESIGN.md §5). Its answers are the worker's: text bodies, its
// status codes, 404 "not found" for anything else; not the JSON rules of
// the example apps.
//
//	POST /counter/<name>/inc        → the new value (SQL upsert, through RPC)
//	GET  /counter/<name>            → the value
//	POST /kv/<name>/inc             → the new value (Get then Put of key "n")
//	PUT  /kv/<name>/<key>           → "stored"
//	GET  /kv/<name>/<key>           → the value, or 404 "not found"
//	GET  /room/<name>/ws?mode=echo|broadcast → WebSocket (hibernatable)
//	GET  /room/<name>/count         → the number of sockets in the room
//	POST /alarm/<name>/set?ms=N     → {"setAt": ms, "scheduledFor": ms}
//	GET  /alarm/<name>              → JSON with the probe's times, lateByMs
//	GET  /health                    → "ok"
//
// Times are milliseconds since the Unix epoch, as the worker's Date.now().
package benchapp

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/internal/httpjson"
)

// MaxBody bounds a PUT /kv body.
const MaxBody = 1 << 20

// Namespaces are the app's four classes, bound under the worker's binding
// names.
type Namespaces struct {
	Counter *durable.Namespace[*Counter]
	KV      *durable.Namespace[*KVCounter]
	Room    *durable.Namespace[*Room]
	Alarm   *durable.Namespace[*AlarmProbe]
}

// Define binds the classes as COUNTER, KV, ROOM and ALARM.
func Define(rt *durable.Runtime) Namespaces {
	return Namespaces{
		Counter: durable.Define(rt, "COUNTER", NewCounter),
		KV:      durable.Define(rt, "KV", NewKVCounter),
		Room:    durable.Define(rt, "ROOM", NewRoom),
		Alarm:   durable.Define(rt, "ALARM", NewAlarmProbe),
	}
}

// Handler answers every route of the worker.
func Handler(ns Namespaces) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		parts := strings.FieldsFunc(r.URL.Path, func(c rune) bool { return c == '/' })
		part := func(i int) string {
			if i < len(parts) {
				return parts[i]
			}
			return ""
		}
		kind, name, op := part(0), part(1), part(2)
		if kind == "health" {
			text(w, http.StatusOK, "ok")
			return
		}
		if name == "" {
			notFound(w)
			return
		}
		switch kind {
		case "counter":
			serveCounter(w, r, ns.Counter.GetByName(name), op)
		case "kv":
			serveKV(w, r, ns.KV.GetByName(name), op)
		case "room":
			ns.Room.GetByName(name).ServeHTTP(w, r)
		case "alarm":
			serveAlarm(w, r, ns.Alarm.GetByName(name), op)
		default:
			notFound(w)
		}
	})
}

func serveCounter(w http.ResponseWriter, r *http.Request, stub *durable.Stub[*Counter], op string) {
	var (
		n   int64
		err error
	)
	switch {
	case r.Method == http.MethodPost && op == "inc":
		n, err = durable.Call0(r.Context(), stub, (*Counter).Increment)
	case r.Method == http.MethodGet && op == "":
		n, err = durable.Call0(r.Context(), stub, (*Counter).Current)
	default:
		notFound(w)
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	text(w, http.StatusOK, strconv.FormatInt(n, 10))
}

func serveKV(w http.ResponseWriter, r *http.Request, stub *durable.Stub[*KVCounter], op string) {
	switch {
	case r.Method == http.MethodPost && op == "inc":
		n, err := durable.Call0(r.Context(), stub, (*KVCounter).Increment)
		if err != nil {
			fail(w, err)
			return
		}
		text(w, http.StatusOK, strconv.FormatInt(n, 10))
	case op == "":
		notFound(w)
	case r.Method == http.MethodPut:
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			text(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		if _, err := durable.Call(r.Context(), stub, (*KVCounter).PutValue, [2]string{op, string(body)}); err != nil {
			fail(w, err)
			return
		}
		text(w, http.StatusOK, "stored")
	case r.Method == http.MethodGet:
		v, err := durable.Call(r.Context(), stub, (*KVCounter).GetValue, op)
		if err != nil {
			fail(w, err)
			return
		}
		if v == nil {
			notFound(w)
			return
		}
		text(w, http.StatusOK, *v)
	default:
		notFound(w)
	}
}

func serveAlarm(w http.ResponseWriter, r *http.Request, stub *durable.Stub[*AlarmProbe], op string) {
	switch {
	case r.Method == http.MethodPost && op == "set":
		ms := int64(5)
		if s := r.URL.Query().Get("ms"); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || v < 0 || v > 365*24*3600*1000 {
				text(w, http.StatusBadRequest, "ms must be a number of milliseconds from 0 to one year")
				return
			}
			ms = int64(v)
		}
		armed, err := durable.Call(r.Context(), stub, (*AlarmProbe).Arm, ms)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, armed)
	case r.Method == http.MethodGet && op == "":
		rep, err := durable.Call0(r.Context(), stub, (*AlarmProbe).Report)
		if err != nil {
			fail(w, err)
			return
		}
		writeJSON(w, rep)
	default:
		notFound(w)
	}
}

func text(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func notFound(w http.ResponseWriter) { text(w, http.StatusNotFound, "not found") }

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// fail answers a failed call with the status of httpjson.Status and the
// error's text.
func fail(w http.ResponseWriter, err error) {
	status, ok := httpjson.Status(err)
	if !ok {
		return
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	text(w, status, err.Error())
}

// Counter is the worker's Counter: one row incremented by an SQL upsert.
type Counter struct{ st *durable.State }

// NewCounter creates the counters table once.
func NewCounter(st *durable.State) (*Counter, error) {
	err := st.Storage().Exec("CREATE TABLE IF NOT EXISTS counters (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)").Err()
	return &Counter{st: st}, err
}

// Increment adds one and returns the new value.
func (c *Counter) Increment(ctx context.Context) (int64, error) {
	var n int64
	err := c.st.Storage().Exec("INSERT INTO counters (id, n) VALUES (1, 1) ON CONFLICT(id) DO UPDATE SET n = n + 1 RETURNING n").Scan(&n)
	return n, err
}

// Current returns the value (0 before the first increment).
func (c *Counter) Current(ctx context.Context) (int64, error) {
	cur := c.st.Storage().Exec("SELECT n FROM counters WHERE id = 1")
	var n int64
	if cur.Next() {
		if err := cur.Scan(&n); err != nil {
			return 0, err
		}
	}
	return n, cur.Err()
}

// KVCounter is the worker's KvCounter: the key-value API.
type KVCounter struct{ st *durable.State }

// NewKVCounter is the class constructor.
func NewKVCounter(st *durable.State) (*KVCounter, error) { return &KVCounter{st: st}, nil }

// Increment reads key "n", adds one and writes it back.
func (k *KVCounter) Increment(ctx context.Context) (int64, error) {
	var n int64
	if _, err := k.st.Storage().Get("n", &n); err != nil {
		return 0, err
	}
	n++
	return n, k.st.Storage().Put("n", n)
}

// PutValue stores kv[1] under key kv[0].
func (k *KVCounter) PutValue(ctx context.Context, kv [2]string) (bool, error) {
	return true, k.st.Storage().Put(kv[0], kv[1])
}

// GetValue returns the value under key as text, or nil if there is none.
func (k *KVCounter) GetValue(ctx context.Context, key string) (*string, error) {
	var v any
	found, err := k.st.Storage().Get(key, &v)
	if err != nil || !found {
		return nil, err
	}
	var s string
	switch v := v.(type) {
	case string:
		s = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		s = string(b)
	}
	return &s, nil
}

// Room is the worker's Room: hibernatable WebSockets tagged with their
// mode; "echo" sockets get their messages back, a message on a
// "broadcast" socket goes to every broadcast socket, the sender included.
type Room struct{ st *durable.State }

// NewRoom is the class constructor.
func NewRoom(st *durable.State) (*Room, error) { return &Room{st: st}, nil }

// ServeHTTP answers /room/<name>/count and accepts /room/<name>/ws.
func (rm *Room) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/count") {
		text(w, http.StatusOK, strconv.Itoa(len(rm.st.WebSockets(""))))
		return
	}
	if r.Header.Get("Upgrade") != "websocket" {
		text(w, http.StatusUpgradeRequired, "expected websocket")
		return
	}
	mode := "echo"
	if r.URL.Query().Get("mode") == "broadcast" {
		mode = "broadcast"
	}
	if _, err := rm.st.AcceptWebSocket(w, r, mode); err != nil {
		text(w, http.StatusBadRequest, err.Error())
	}
}

// WebSocketMessage echoes or fans the message out, by the socket's tag.
func (rm *Room) WebSocketMessage(ctx context.Context, ws *durable.WebSocket, msg durable.Message) error {
	targets := []*durable.WebSocket{ws}
	for _, tag := range rm.st.Tags(ws) {
		if tag == "broadcast" {
			targets = rm.st.WebSockets("broadcast")
		}
	}
	for _, peer := range targets {
		if msg.Binary {
			peer.SendBinary(msg.Data) // a closing peer is skipped
		} else {
			peer.SendText(msg.Text())
		}
	}
	return nil
}

// WebSocketClose needs nothing: the runtime completes the close.
func (rm *Room) WebSocketClose(ctx context.Context, ws *durable.WebSocket, code int, reason string, clean bool) error {
	return nil
}

// WebSocketError needs nothing: the socket is already gone.
func (rm *Room) WebSocketError(ctx context.Context, ws *durable.WebSocket, err error) error {
	return nil
}

// AlarmProbe is the worker's AlarmProbe: it records when its alarm was set,
// for when, and when it fired, in SQLite.
type AlarmProbe struct{ st *durable.State }

// NewAlarmProbe creates the probe table once.
func NewAlarmProbe(st *durable.State) (*AlarmProbe, error) {
	err := st.Storage().Exec(`CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY,
		set_at REAL, scheduled_for REAL, fired_at REAL, fires INTEGER NOT NULL DEFAULT 0)`).Err()
	return &AlarmProbe{st: st}, err
}

// Armed is the answer to Arm.
type Armed struct {
	SetAt        int64 `json:"setAt"`
	ScheduledFor int64 `json:"scheduledFor"`
}

// Arm sets the alarm ms milliseconds from now and records the times.
func (p *AlarmProbe) Arm(ctx context.Context, ms int64) (Armed, error) {
	now := time.Now().UnixMilli()
	a := Armed{SetAt: now, ScheduledFor: now + ms}
	err := p.st.Storage().Exec(`INSERT INTO probe (id, set_at, scheduled_for, fired_at, fires) VALUES (1, ?, ?, NULL, 0)
		ON CONFLICT(id) DO UPDATE SET set_at = excluded.set_at, scheduled_for = excluded.scheduled_for, fired_at = NULL, fires = 0`,
		a.SetAt, a.ScheduledFor).Err()
	if err != nil {
		return Armed{}, err
	}
	return a, p.st.Storage().SetAlarm(time.UnixMilli(a.ScheduledFor))
}

// Alarm records the firing, in milliseconds with microsecond precision.
func (p *AlarmProbe) Alarm(ctx context.Context, info durable.AlarmInfo) error {
	now := float64(time.Now().UnixMicro()) / 1000
	return p.st.Storage().Exec("UPDATE probe SET fired_at = ?, fires = fires + 1 WHERE id = 1", now).Err()
}

// ProbeReport is the answer to Report; the worker's JSON field names.
type ProbeReport struct {
	Armed        bool     `json:"armed"`
	SetAt        *float64 `json:"setAt,omitempty"`
	ScheduledFor *float64 `json:"scheduledFor,omitempty"`
	FiredAt      *float64 `json:"firedAt"`
	Fires        int64    `json:"fires"`
	LateByMs     *float64 `json:"lateByMs"`
	PendingAlarm *int64   `json:"pendingAlarm"`
}

// Report returns the recorded times and the pending alarm, if any.
func (p *AlarmProbe) Report(ctx context.Context) (ProbeReport, error) {
	var rep ProbeReport
	at, ok, err := p.st.Storage().GetAlarm()
	if err != nil {
		return rep, err
	}
	if ok {
		ms := at.UnixMilli()
		rep.PendingAlarm = &ms
	}
	rows, err := p.st.Storage().Exec("SELECT set_at, scheduled_for, fired_at, fires FROM probe WHERE id = 1").Raw()
	if err != nil || len(rows) == 0 {
		return rep, err
	}
	row := rows[0]
	rep.Armed = true
	rep.SetAt, rep.ScheduledFor, rep.FiredAt = number(row[0]), number(row[1]), number(row[2])
	rep.Fires, _ = row[3].(int64)
	if rep.FiredAt != nil && rep.ScheduledFor != nil {
		late := *rep.FiredAt - *rep.ScheduledFor
		rep.LateByMs = &late
	}
	return rep, nil
}

// number is a REAL or INTEGER column's value, nil for NULL.
func number(v any) *float64 {
	var f float64
	switch v := v.(type) {
	case float64:
		f = v
	case int64:
		f = float64(v)
	default:
		return nil
	}
	return &f
}
