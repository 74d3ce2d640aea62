package durable_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/durable-go/durable"
	"github.com/durable-go/durable/durabletest"
)

// browse fetches an admin page with the client's cookies and returns its
// status and body.
func browse(t *testing.T, c *http.Client, method, u string, form url.Values, header ...string) (int, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The storage browser: sign in with the token, then every page with the
// session cookie; the pages show what the API shows, escaped; forms from
// elsewhere and cookies made with another token are refused; the JSON API
// never takes the cookie.
func TestAdminBrowser(t *testing.T) {
	rt := durabletest.New(t, durable.Config{})
	ns := durable.Define(rt, "PLANNER", func(st *durable.State) (*Planner, error) { return &Planner{st: st}, nil })
	ctx := context.Background()
	for _, s := range []string{"<script>alert(1)</script>", "b", "c"} {
		if _, err := durable.Call(ctx, ns.GetByName("p"), (*Planner).Plan, s); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 25 {
		if _, err := durable.Call(ctx, ns.GetByName("other-"+string(rune('a'+i))), (*Planner).Plan, "x"); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(rt.AdminHandler(adminToken))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	id := ns.IDFromName("p").String()

	// Before signing in: the login form, 401, for every page.
	for _, p := range []string{"/admin", "/admin/ns/PLANNER", "/admin/ns/PLANNER/o/" + id} {
		if code, body := browse(t, c, "GET", srv.URL+p, nil); code != 401 || !strings.Contains(body, `name="token"`) {
			t.Errorf("GET %s before signing in: %d, want 401 and the login form", p, code)
		}
	}
	if code, body := browse(t, c, "POST", srv.URL+"/admin/login", url.Values{"token": {strings.Repeat("x", len(adminToken))}}); code != 401 || !strings.Contains(body, "not the admin token") {
		t.Errorf("a wrong token of the same length: %d, want 401 and a message", code)
	}
	if code, _ := browse(t, c, "POST", srv.URL+"/admin/login", url.Values{"token": {adminToken}, "to": {"/admin/ns/PLANNER"}}); code != 200 {
		t.Fatalf("sign in: %d", code)
	}
	u, _ := url.Parse(srv.URL + "/admin")
	var session *http.Cookie
	for _, ck := range jar.Cookies(u) {
		if ck.Name == "durable_admin" {
			session = ck
		}
	}
	if session == nil {
		t.Fatal("no session cookie after signing in")
	}

	// The namespace page pages through all 26 objects, each once.
	seen := map[string]int{}
	next := "/admin/ns/PLANNER?limit=10"
	idLink := regexp.MustCompile(`/admin/ns/PLANNER/o/([0-9a-f]{64})"`)
	nextLink := regexp.MustCompile(`id="next" href="([^"]+)"`)
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("the pager does not end")
		}
		code, body := browse(t, c, "GET", srv.URL+strings.ReplaceAll(next, "&amp;", "&"), nil)
		if code != 200 {
			t.Fatalf("GET %s: %d %s", next, code, body)
		}
		for _, m := range idLink.FindAllStringSubmatch(body, -1) {
			seen[m[1]]++
		}
		next = ""
		if m := nextLink.FindStringSubmatch(body); m != nil {
			next = m[1]
		}
	}
	if len(seen) != 26 {
		t.Errorf("the pages listed %d objects, want 26", len(seen))
	}
	for o, n := range seen {
		if n != 1 {
			t.Errorf("object %s listed %d times", o, n)
		}
	}

	// The object: its alarm, its usage, its tables with row counts.
	code, body := browse(t, c, "GET", srv.URL+"/admin/ns/PLANNER/o/"+id, nil)
	for _, want := range []string{"2100-01-01 00:00:00.000 UTC", `/table/plans">plans</a>`, `<td class="num">3</td>`, "plans_text", "plan_texts", "Rows written"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("object page: %d, lacks %q", code, want)
		}
	}
	// A table's rows, escaped.
	code, body = browse(t, c, "GET", srv.URL+"/admin/ns/PLANNER/o/"+id+"/table/plans", nil)
	if code != 200 || !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") || strings.Contains(body, "<script>") {
		t.Errorf("table page: %d, want the row escaped:\n%s", code, body)
	}
	// A read-only query from the page's form; a write refused, nothing changed.
	q := srv.URL + "/admin/ns/PLANNER/o/" + id + "/query"
	code, body = browse(t, c, "POST", q, url.Values{"sql": {"SELECT count(*) AS n FROM plans"}}, "Sec-Fetch-Site", "same-origin")
	if code != 200 || !strings.Contains(body, `<th>n</th>`) || !strings.Contains(body, "<td>3</td>") {
		t.Errorf("query: %d\n%s", code, body)
	}
	code, body = browse(t, c, "POST", q, url.Values{"sql": {"DELETE FROM plans"}}, "Origin", srv.URL)
	if code != 400 || !strings.Contains(body, "would write") {
		t.Errorf("a write: %d, want 400 and a refusal", code)
	}
	if code, _ := browse(t, c, "POST", q, url.Values{"sql": {"SELECT 1"}}, "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Errorf("a form from another site: %d, want 403", code)
	}
	if code, _ := browse(t, c, "POST", q, url.Values{"sql": {"SELECT 1"}}, "Origin", "http://evil.example"); code != 403 {
		t.Errorf("a form with another origin: %d, want 403", code)
	}
	if n, err := durable.Call0(ctx, ns.GetByName("p"), (*Planner).Count); err != nil || n != 3 {
		t.Errorf("after the refused write the object holds %d plans (%v), want 3", n, err)
	}
	// KV keys and the usage page.
	if code, body := browse(t, c, "GET", srv.URL+"/admin/ns/PLANNER/o/"+id+"/kv", nil); code != 200 || !strings.Contains(body, "<code>last</code>") {
		t.Errorf("kv page: %d\n%s", code, body)
	}
	if code, body := browse(t, c, "GET", srv.URL+"/admin/usage?by=rows_written", nil); code != 200 || !strings.Contains(body, id) {
		t.Errorf("usage page: %d", code)
	}
	// Only the object's own tables: a table-valued function is no table.
	for _, name := range []string{"pragma_optimize", "_durable_kv", "sqlite_schema"} {
		if code, _ := browse(t, c, "GET", srv.URL+"/admin/ns/PLANNER/o/"+id+"/table/"+name, nil); code != 404 {
			t.Errorf("table page of %s: %d, want 404", name, code)
		}
	}
	// Unknown things are pages too, with the right status.
	for p, want := range map[string]int{
		"/admin/ns/NOPE": 404,
		"/admin/ns/PLANNER/o/" + ns.IDFromName("never").String(): 404,
		"/admin/ns/PLANNER/o/not-an-id":                          400,
		"/admin/ns/PLANNER/o/" + id + "/table/nowhere":           404,
		"/admin/ns/PLANNER?limit=5":                              400,
		"/admin/nothing":                                         404,
	} {
		if code, body := browse(t, c, "GET", srv.URL+p, nil); code != want || !strings.Contains(body, "</html>") {
			t.Errorf("GET %s: %d, want %d and a page", p, code, want)
		}
	}

	// The JSON API does not take the cookie.
	if code, _ := browse(t, c, "GET", srv.URL+"/admin/v1/namespaces", nil); code != 401 {
		t.Errorf("the API with the session cookie only: %d, want 401", code)
	}
	// The pages take the bearer header, without a cookie.
	if code, _ := browse(t, http.DefaultClient, "GET", srv.URL+"/admin", nil, "Authorization", "Bearer "+adminToken); code != 200 {
		t.Errorf("a page with the bearer header: %d, want 200", code)
	}
	// A cookie made for another token, or forged, or expired, is refused.
	other := httptest.NewServer(rt.AdminHandler(adminToken + "-other"))
	defer other.Close()
	for _, v := range []string{session.Value, "99999999999.00", "1." + strings.SplitN(session.Value, ".", 2)[1]} {
		if code, _ := browse(t, http.DefaultClient, "GET", other.URL+"/admin", nil, "Cookie", "durable_admin="+v); code != 401 {
			t.Errorf("cookie %q on a server with another token: %d, want 401", v, code)
		}
	}
	// Signing in again from a link keeps only the browser's own pages.
	for to, want := range map[string]string{"/admin/usage": "/admin/usage", "/admin/../\\evil.com": "/admin"} {
		req, _ := http.NewRequest("POST", srv.URL+"/admin/login", strings.NewReader(url.Values{"token": {adminToken}, "to": {to}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Location"); resp.StatusCode != 303 || got != want {
			t.Errorf("sign in with to=%q: %d to %q, want 303 to %q", to, resp.StatusCode, got, want)
		}
	}
	// Another site cannot sign the operator out.
	if code, _ := browse(t, c, "POST", srv.URL+"/admin/logout", url.Values{}, "Sec-Fetch-Site", "cross-site"); code != 403 {
		t.Errorf("a cross-site sign-out: %d, want 403", code)
	}
	if code, _ := browse(t, c, "GET", srv.URL+"/admin", nil); code != 200 {
		t.Errorf("after a refused cross-site sign-out: %d, want 200 (still signed in)", code)
	}
	// Signing out ends the session.
	browse(t, c, "POST", srv.URL+"/admin/logout", url.Values{}, "Sec-Fetch-Site", "same-origin")
	if code, _ := browse(t, c, "GET", srv.URL+"/admin", nil); code != 401 {
		t.Errorf("after signing out: %d, want 401", code)
	}
}
