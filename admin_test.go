package durable_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

const adminToken = "s3cret-token-0123456789"

func adminGet(t *testing.T, srv *httptest.Server, path, token string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(body) {
		t.Fatalf("GET %s: %d, body not JSON: %q", path, resp.StatusCode, body)
	}
	return resp.StatusCode, body
}

func TestAdmin_Auth(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	durable.Define(rt, "COUNTER", NewCounter)
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	wrong := strings.Repeat("x", len(adminToken)) // same length, wrong
	for _, c := range []struct {
		token string
		want  int
	}{{"", 401}, {wrong, 401}, {adminToken + "x", 401}, {adminToken, 200}} {
		if got, body := adminGet(t, srv, "/admin/v1/namespaces", c.token); got != c.want {
			t.Errorf("token %q: %d %s, want %d", c.token, got, body, c.want)
		}
	}
	// An empty configured token refuses everything, even an empty bearer.
	open := httptest.NewServer(rt.AdminHandler(""))
	defer open.Close()
	req, _ := http.NewRequest("GET", open.URL+"/admin/v1/namespaces", nil)
	req.Header.Set("Authorization", "Bearer ")
	resp, err := open.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("an empty configured token let a request through: %d", resp.StatusCode)
	}
}

// Paging through 2,500 objects returns each exactly once, in ID order,
// whatever the page size.
func TestAdmin_ListObjectsPages(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	const n = 2500
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				if _, err := durable.Call(context.Background(), ns.GetByName(fmt.Sprint("obj-", i)), (*Counter).Increment, 1); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	want := map[string]bool{}
	for i := range n {
		want[ns.IDFromName(fmt.Sprint("obj-", i)).String()] = true
	}
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()

	for _, limit := range []int{10, 997, 10000} {
		seen := map[string]bool{}
		last, cursor, pages := "", "", 0
		for {
			q := url.Values{"limit": {fmt.Sprint(limit)}, "cursor": {cursor}}
			code, body := adminGet(t, srv, "/admin/v1/namespaces/COUNTER/objects?"+q.Encode(), adminToken)
			if code != 200 {
				t.Fatalf("limit %d page %d: %d %s", limit, pages, code, body)
			}
			var page struct {
				Objects []struct {
					ID    string `json:"id"`
					Bytes int64  `json:"bytes"`
					State string `json:"state"`
				} `json:"objects"`
				Cursor string `json:"cursor"`
			}
			if err := json.Unmarshal(body, &page); err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page.Objects) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(page.Objects))
			}
			for _, o := range page.Objects {
				if seen[o.ID] {
					t.Fatalf("limit %d: %s listed twice", limit, o.ID)
				}
				if o.ID <= last {
					t.Fatalf("limit %d: %s after %s: not in ID order", limit, o.ID, last)
				}
				if !want[o.ID] || o.Bytes <= 0 || (o.State != "live" && o.State != "stored") {
					t.Fatalf("limit %d: unexpected object %+v", limit, o)
				}
				seen[o.ID], last = true, o.ID
			}
			if page.Cursor == "" {
				break
			}
			cursor = page.Cursor
		}
		if len(seen) != n {
			t.Fatalf("limit %d: %d objects listed in %d pages, want %d", limit, len(seen), pages, n)
		}
	}
}

func TestAdmin_BadRequests(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	durable.Define(rt, "COUNTER", NewCounter)
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	for path, want := range map[string]int{
		"/admin/v1/namespaces/NOPE/objects":                404,
		"/admin/v1/namespaces/COUNTER/objects?limit=9":     400,
		"/admin/v1/namespaces/COUNTER/objects?limit=10001": 400,
		"/admin/v1/namespaces/COUNTER/objects?limit=ten":   400,
		"/admin/v1/nothing":                                404,
		"/admin/v1/namespaces/COUNTER/objects":             200,
	} {
		if got, body := adminGet(t, srv, path, adminToken); got != want {
			t.Errorf("GET %s: %d %s, want %d", path, got, body, want)
		}
	}
	code, body := adminGet(t, srv, "/admin/v1/namespaces", adminToken)
	if code != 200 || !strings.Contains(string(body), `"name":"COUNTER"`) {
		t.Errorf("namespaces: %d %s", code, body)
	}
}

// What each object used is counted per request, kept across a restart,
// and the top users come first.
func TestAdmin_Usage(t *testing.T) {
	dir := t.TempDir()
	rt := durabletest.New(t, durable.Config{Dir: dir})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	ctx := context.Background()
	for range 7 {
		durable.Call(ctx, ns.GetByName("a"), (*Counter).Increment, 1)
	}
	for range 3 {
		durable.Call(ctx, ns.GetByName("b"), (*Counter).Increment, 1)
	}
	a := ns.IDFromName("a").String()
	check := func(rt *durable.Runtime, when string) {
		t.Helper()
		srv := httptest.NewServer(rt.AdminHandler(adminToken))
		defer srv.Close()
		// An operator's reads are not the object's usage.
		if code, body := adminGet(t, srv, "/admin/v1/namespaces/COUNTER/objects/"+a, adminToken); code != 200 {
			t.Fatalf("%s: detail: %d %s", when, code, body)
		}
		if code, body := adminPost(t, srv, "/admin/v1/namespaces/COUNTER/objects/"+a+"/query", `{"sql": "SELECT 1"}`); code != 200 {
			t.Fatalf("%s: query: %d %s", when, code, body)
		}
		code, body := adminGet(t, srv, "/admin/v1/namespaces/COUNTER/objects/"+a+"/usage", adminToken)
		var u struct {
			Requests    int64 `json:"requests"`
			WallNs      int64 `json:"wall_ns"`
			RowsRead    int64 `json:"rows_read"`
			RowsWritten int64 `json:"rows_written"`
			Bytes       int64 `json:"bytes"`
		}
		if err := json.Unmarshal(body, &u); code != 200 || err != nil {
			t.Fatalf("%s: usage: %d %s", when, code, body)
		}
		// 7 increments: a get and a put each, but the first get found no
		// database and read nothing.
		if u.Requests != 7 || u.RowsWritten != 7 || u.RowsRead != 6 || u.WallNs <= 0 || u.Bytes <= 0 {
			t.Errorf("%s: usage of a = %+v, want 7 requests, 6 rows read, 7 written, some wall time and bytes", when, u)
		}
		code, body = adminGet(t, srv, "/admin/v1/usage/top?by=requests&n=2&namespace=COUNTER", adminToken)
		var top struct {
			Objects []struct {
				ID       string `json:"id"`
				Requests int64  `json:"requests"`
			} `json:"objects"`
		}
		if err := json.Unmarshal(body, &top); code != 200 || err != nil || len(top.Objects) != 2 {
			t.Fatalf("%s: top: %d %s", when, code, body)
		}
		if top.Objects[0].ID != a || top.Objects[0].Requests != 7 || top.Objects[1].Requests != 3 {
			t.Errorf("%s: top by requests = %s", when, body)
		}
		for path, want := range map[string]int{
			"/admin/v1/usage/top?by=nonsense":                   400,
			"/admin/v1/usage/top?n=0":                           400,
			"/admin/v1/usage/top?namespace=NOPE":                404,
			"/admin/v1/namespaces/NOPE/objects/" + a + "/usage": 404,
			"/admin/v1/usage/top?by=bytes&n=1000":               200,
		} {
			if got, body := adminGet(t, srv, path, adminToken); got != want {
				t.Errorf("%s: GET %s: %d %s, want %d", when, path, got, body, want)
			}
		}
	}
	check(rt, "live")
	rt = durabletest.Restart(t, rt)
	durable.Define(rt, "COUNTER", NewCounter)
	check(rt, "after a restart")
}

// The auth scheme is case-insensitive (RFC 9110); the token is not.
func TestAdmin_SchemeCaseInsensitive(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	h := rt.AdminHandler(adminToken)
	for header, want := range map[string]int{
		"bearer " + adminToken:                  200,
		"BEARER " + adminToken:                  200,
		"Bearer " + strings.ToUpper(adminToken): 401,
		"Basic " + adminToken:                   401,
		adminToken:                              401,
	} {
		req := httptest.NewRequest("GET", "/admin/v1/namespaces", nil)
		req.Header.Set("Authorization", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %q: %d, want %d", header, rec.Code, want)
		}
	}
}

// Notes keeps rows in a table of its own.
type Notes struct{ st *durable.State }

func (n *Notes) Add(ctx context.Context, text string) (int64, error) {
	if err := n.st.Storage().Exec("CREATE TABLE IF NOT EXISTS notes (text TEXT)").Err(); err != nil {
		return 0, err
	}
	var c int64
	if err := n.st.Storage().Exec("INSERT INTO notes VALUES (?)", text).Err(); err != nil {
		return 0, err
	}
	return c, n.st.Storage().Exec("SELECT count(*) FROM notes").Scan(&c)
}

func adminPost(t *testing.T, srv *httptest.Server, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// A read-only query runs as a turn of the object; anything that would
// write is refused and changes nothing.
func TestAdmin_Query(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "NOTES", func(st *durable.State) (*Notes, error) { return &Notes{st: st}, nil })
	for _, s := range []string{"one", "two", "three"} {
		if _, err := durable.Call(context.Background(), ns.GetByName("n"), (*Notes).Add, s); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	id := ns.IDFromName("n").String()
	q := "/admin/v1/namespaces/NOTES/objects/" + id + "/query"
	code, body := adminPost(t, srv, q, `{"sql": "SELECT text FROM notes ORDER BY rowid"}`)
	var res struct {
		Columns   []string `json:"columns"`
		Rows      [][]any  `json:"rows"`
		Truncated bool     `json:"truncated"`
	}
	if err := json.Unmarshal(body, &res); code != 200 || err != nil || len(res.Rows) != 3 || res.Rows[2][0] != "three" || res.Columns[0] != "text" {
		t.Fatalf("SELECT: %d %s", code, body)
	}
	for sql, want := range map[string]int{
		"DELETE FROM notes":         400,
		"DROP TABLE notes":          400,
		"PRAGMA foreign_keys = OFF": 400,
		"SELECT * FROM nowhere":     400,
		"SELECT * FROM _durable_kv": 400,
	} {
		b, _ := json.Marshal(map[string]string{"sql": sql})
		if code, body := adminPost(t, srv, q, string(b)); code != want {
			t.Errorf("%q: %d %s, want %d", sql, code, body, want)
		}
	}
	if n, err := durable.Call(context.Background(), ns.GetByName("n"), (*Notes).Add, "four"); err != nil || n != 4 {
		t.Errorf("after the refused writes the object holds %d notes (%v), want 4", n, err)
	}
	for path, want := range map[string]int{
		"/admin/v1/namespaces/NOTES/objects/" + ns.IDFromName("never").String() + "/query": 404,
		"/admin/v1/namespaces/NOTES/objects/not-an-id/query":                               400,
		"/admin/v1/namespaces/NOPE/objects/" + id + "/query":                               404,
	} {
		if code, body := adminPost(t, srv, path, `{"sql": "SELECT 1"}`); code != want {
			t.Errorf("POST %s: %d %s, want %d", path, code, body, want)
		}
	}
	if code, _ := adminPost(t, srv, q, `not json`); code != 400 {
		t.Errorf("a body that is not JSON: %d, want 400", code)
	}
}

// Pause refuses calls with a retryable error until resume; delete removes
// the object's storage and resets its instance; the KV keys list pages.
func TestAdmin_ActionsAndKeys(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	var built atomic.Int64
	ns := durable.Define(rt, "COUNTER", func(st *durable.State) (*Counter, error) {
		built.Add(1)
		return NewCounter(st)
	})
	ctx := context.Background()
	stub := ns.GetByName("x")
	durable.Call(ctx, stub, (*Counter).Increment, 5)
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	id := ns.IDFromName("x").String()
	base := "/admin/v1/namespaces/COUNTER/objects/" + id

	if code, body := adminPost(t, srv, base+"/pause", ""); code != 200 || !strings.Contains(string(body), `"paused":true`) {
		t.Fatalf("pause: %d %s", code, body)
	}
	_, err := durable.Call(ctx, stub, (*Counter).Increment, 1)
	var de *durable.Error
	if !errors.As(err, &de) || !de.Retryable || !strings.Contains(err.Error(), "paused") {
		t.Fatalf("a call to a paused object: %v, want a retryable error saying it is paused", err)
	}
	if code, body := adminPost(t, srv, base+"/resume", ""); code != 200 || !strings.Contains(string(body), `"paused":false`) {
		t.Fatalf("resume: %d %s", code, body)
	}
	if v, err := durable.Call(ctx, stub, (*Counter).Increment, 1); err != nil || v != 6 {
		t.Fatalf("after resume: %d %v, want 6 (the paused call never ran)", v, err)
	}

	code, body := adminGet(t, srv, base+"/kv?limit=10", adminToken)
	if code != 200 || !strings.Contains(string(body), `"key":"n"`) {
		t.Fatalf("kv keys: %d %s", code, body)
	}

	before := built.Load()
	if code, body := adminPost(t, srv, base+"/delete", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if v, err := durable.Call0(ctx, stub, (*Counter).Value); err != nil || v != 0 {
		t.Errorf("after delete: value %d %v, want 0", v, err)
	}
	if built.Load() != before+1 {
		t.Errorf("the instance was not rebuilt after its storage was deleted (built %d → %d)", before, built.Load())
	}
	if code, body := adminPost(t, srv, base+"/explode", ""); code != 404 {
		t.Errorf("an unknown action: %d %s, want 404", code, body)
	}
}

// Evict retires a live instance at once, keeps its data, and never fails
// the calls that race it.
func TestAdmin_EvictUnderConcurrentCalls(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	var built atomic.Int64
	ns := durable.Define(rt, "COUNTER", func(st *durable.State) (*Counter, error) {
		built.Add(1)
		return NewCounter(st)
	})
	ctx := context.Background()
	stub := ns.GetByName("e")
	durable.Call(ctx, stub, (*Counter).Increment, 1)
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	evict := "/admin/v1/namespaces/COUNTER/objects/" + ns.IDFromName("e").String() + "/evict"

	code, body := adminPost(t, srv, evict, "")
	if code != 200 || !strings.Contains(string(body), `"was_live":true`) {
		t.Fatalf("evict: %d %s", code, body)
	}
	waitFor(t, "the instance to be evicted", func() bool { return rt.Stats().Live == 0 })
	if v, err := durable.Call0(ctx, stub, (*Counter).Value); err != nil || v != 1 || built.Load() != 2 {
		t.Fatalf("after evict: value %d %v, built %d; want 1 and a new instance", v, err, built.Load())
	}

	// Calls racing evictions all succeed, and all count.
	var wg sync.WaitGroup
	const callers, each = 8, 50
	for range callers {
		wg.Go(func() {
			for range each {
				if _, err := durable.Call(ctx, stub, (*Counter).Increment, 1); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for range 20 {
		adminPost(t, srv, evict, "")
	}
	wg.Wait()
	if v, err := durable.Call0(ctx, stub, (*Counter).Value); err != nil || v != 1+callers*each {
		t.Fatalf("after racing evictions: %d %v, want %d", v, err, 1+callers*each)
	}
}

// Planner keeps notes and an alarm a day ahead.
type Planner struct{ st *durable.State }

func (p *Planner) Plan(ctx context.Context, text string) (int64, error) {
	s := p.st.Storage()
	for _, q := range []string{
		"CREATE TABLE IF NOT EXISTS plans (id INTEGER PRIMARY KEY, text TEXT NOT NULL)",
		"CREATE INDEX IF NOT EXISTS plans_text ON plans (text)",
		"CREATE VIEW IF NOT EXISTS plan_texts AS SELECT text FROM plans",
	} {
		if err := s.Exec(q).Err(); err != nil {
			return 0, err
		}
	}
	if err := s.Exec("INSERT INTO plans (text) VALUES (?)", text).Err(); err != nil {
		return 0, err
	}
	if err := s.Put("last", text); err != nil {
		return 0, err
	}
	at := time.UnixMilli(4102444800000) // 2100-01-01
	return at.UnixMilli(), s.SetAlarm(at)
}

// Bulk fills a table bulk with n rows in one statement.
func (p *Planner) Bulk(ctx context.Context, n int64) (int64, error) {
	if err := p.st.Storage().Exec("CREATE TABLE bulk (x INTEGER)").Err(); err != nil {
		return 0, err
	}
	return n, p.st.Storage().Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?)
		INSERT INTO bulk SELECT x FROM c`, n).Err()
}

func (p *Planner) Count(ctx context.Context) (n int64, err error) {
	return n, p.st.Storage().Exec("SELECT count(*) FROM plans").Scan(&n)
}

func (p *Planner) Unplan(ctx context.Context, _ int64) (bool, error) {
	return true, p.st.Storage().DeleteAlarm()
}

func (p *Planner) Alarm(ctx context.Context, info durable.AlarmInfo) error { return nil }

// An object's detail shows its alarm record and its schema with row
// counts, not the runtime's tables; the listing shows the alarm from the
// index; an object without data is 404.
func TestAdmin_ObjectDetail(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "PLANNER", func(st *durable.State) (*Planner, error) { return &Planner{st: st}, nil })
	var at int64
	for _, s := range []string{"a", "b", "c"} {
		var err error
		if at, err = durable.Call(context.Background(), ns.GetByName("p"), (*Planner).Plan, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := durable.Call(context.Background(), ns.GetByName("q"), (*Planner).Plan, "x"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	id := ns.IDFromName("p").String()
	code, body := adminGet(t, srv, "/admin/v1/namespaces/PLANNER/objects/"+id, adminToken)
	var d struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		AlarmMs int64  `json:"alarm_ms"`
		Bytes   int64  `json:"bytes"`
		Schema  []struct {
			Type, Name, Table, SQL string
			Rows                   *int64
		} `json:"schema"`
	}
	if err := json.Unmarshal(body, &d); code != 200 || err != nil {
		t.Fatalf("GET object: %d %s", code, body)
	}
	if d.ID != id || d.AlarmMs != at || d.Bytes <= 0 || d.State != "live" {
		t.Errorf("detail %s: want id %s, alarm %d, bytes > 0, live", body, id, at)
	}
	got := map[string]string{}
	for _, e := range d.Schema {
		got[e.Type+" "+e.Name] = e.Table
		if strings.HasPrefix(e.Name, "_durable_") || strings.HasPrefix(e.Name, "sqlite_") {
			t.Errorf("the runtime's table %s is listed", e.Name)
		}
		if e.Name == "plans" && (e.Rows == nil || *e.Rows != 3 || !strings.Contains(e.SQL, "CREATE TABLE plans")) {
			t.Errorf("plans: %+v, want 3 rows and its SQL", e)
		}
	}
	if len(got) != 3 || got["table plans"] != "plans" || got["index plans_text"] != "plans" || got["view plan_texts"] != "plan_texts" {
		t.Errorf("schema %v, want table plans, index plans_text, view plan_texts", got)
	}

	code, body = adminGet(t, srv, "/admin/v1/namespaces/PLANNER/objects", adminToken)
	var page struct {
		Objects []struct {
			ID      string `json:"id"`
			AlarmMs int64  `json:"alarm_ms"`
		} `json:"objects"`
	}
	if err := json.Unmarshal(body, &page); code != 200 || err != nil || len(page.Objects) != 2 {
		t.Fatalf("listing: %d %s", code, body)
	}
	for _, o := range page.Objects {
		if o.AlarmMs != at {
			t.Errorf("listing: object %s alarm %d, want %d", o.ID, o.AlarmMs, at)
		}
	}
	if code, body := adminGet(t, srv, "/admin/v1/namespaces/PLANNER/objects/"+ns.IDFromName("never").String(), adminToken); code != 404 {
		t.Errorf("an object without data: %d %s, want 404", code, body)
	}

	// A deleted alarm leaves the listing (found in review: the index kept
	// it until its time): by DeleteAlarm, and by the operator's delete.
	if _, err := durable.Call(context.Background(), ns.GetByName("p"), (*Planner).Unplan, 0); err != nil {
		t.Fatal(err)
	}
	if code, body := adminPost(t, srv, "/admin/v1/namespaces/PLANNER/objects/"+ns.IDFromName("q").String()+"/delete", ""); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	waitFor(t, "the deleted alarms to leave the listing", func() bool {
		_, body := adminGet(t, srv, "/admin/v1/namespaces/PLANNER/objects", adminToken)
		return !strings.Contains(string(body), "alarm_ms")
	})
}

// A table's row count stops at admin.MaxRowCount (100,000), so an
// object's page costs the same whatever its tables hold.
func TestAdmin_RowCountCapped(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "PLANNER", func(st *durable.State) (*Planner, error) { return &Planner{st: st}, nil })
	if _, err := durable.Call(context.Background(), ns.GetByName("big"), (*Planner).Bulk, 100005); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	code, body := adminGet(t, srv, "/admin/v1/namespaces/PLANNER/objects/"+ns.IDFromName("big").String(), adminToken)
	if code != 200 || !strings.Contains(string(body), `"name":"bulk","table":"bulk"`) ||
		!strings.Contains(string(body), `"rows":100000,"rows_capped":true`) {
		t.Errorf("detail: %d %s, want bulk with 100000 rows, capped", code, body)
	}
}

// Once the runtime is closed the admin API and the pages answer 503, not
// 500.
func TestAdmin_ClosedRuntime(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "PLANNER", func(st *durable.State) (*Planner, error) { return &Planner{st: st}, nil })
	if _, err := durable.Call(context.Background(), ns.GetByName("p"), (*Planner).Plan, "x"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	if err := rt.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	id := ns.IDFromName("p").String()
	for _, p := range []string{
		"/admin/v1/namespaces/PLANNER/objects",
		"/admin/v1/namespaces/PLANNER/objects/" + id,
		"/admin/v1/namespaces/PLANNER/objects/" + id + "/usage",
	} {
		if code, body := adminGet(t, srv, p, adminToken); code != 503 {
			t.Errorf("GET %s after Close: %d %s, want 503", p, code, body)
		}
	}
	for _, p := range []string{"/admin/ns/PLANNER", "/admin/ns/PLANNER/o/" + id} {
		if code, _ := browse(t, http.DefaultClient, "GET", srv.URL+p, nil, "Authorization", "Bearer "+adminToken); code != 503 {
			t.Errorf("page %s after Close: %d, want 503", p, code)
		}
	}
}

// Pause and resume under concurrent callers: once pause has answered,
// every call fails with the retryable "paused" error and none runs; after
// resume they all run again; the counter holds exactly the calls that
// succeeded.
func TestAdmin_PauseResumeUnderConcurrentCalls(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "COUNTER", NewCounter)
	ctx := context.Background()
	stub := ns.GetByName("p")
	durable.Call(ctx, stub, (*Counter).Increment, 1)
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	base := "/admin/v1/namespaces/COUNTER/objects/" + ns.IDFromName("p").String()

	var ok, paused, pausedPhase atomic.Int64
	var okWhilePaused atomic.Int64
	var inPause atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				was := inPause.Load()
				_, err := durable.Call(ctx, stub, (*Counter).Increment, 1)
				var de *durable.Error
				switch {
				case err == nil:
					ok.Add(1)
					if was && inPause.Load() {
						okWhilePaused.Add(1)
					}
				case errors.As(err, &de) && de.Retryable && strings.Contains(err.Error(), "paused"):
					paused.Add(1)
				default:
					t.Error(err)
					return
				}
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	for range 3 {
		if code, body := adminPost(t, srv, base+"/pause", ""); code != 200 {
			t.Fatalf("pause: %d %s", code, body)
		}
		inPause.Store(true)
		before := paused.Load()
		waitFor(t, "calls to be refused while paused", func() bool { return paused.Load() > before+20 })
		pausedPhase.Add(1)
		inPause.Store(false)
		if code, body := adminPost(t, srv, base+"/resume", ""); code != 200 {
			t.Fatalf("resume: %d %s", code, body)
		}
		n := ok.Load()
		waitFor(t, "calls to run again after resume", func() bool { return ok.Load() > n+20 })
	}
	close(stop)
	wg.Wait()
	if okWhilePaused.Load() != 0 {
		t.Errorf("%d calls started after pause answered succeeded", okWhilePaused.Load())
	}
	if v, err := durable.Call0(ctx, stub, (*Counter).Value); err != nil || v != 1+ok.Load() {
		t.Errorf("counter %d (%v), want 1 + %d successful calls", v, err, ok.Load())
	}
}
