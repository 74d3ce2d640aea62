package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/durable-go/durable/internal/usage"
)

// The storage browser: server-rendered pages under /admin on the admin
// address, no script, nothing loaded from elsewhere.
//
// How a browser carries the token. A browser cannot add an Authorization
// header to a link it follows, so the page asks for the token once (POST
// /admin/login) and answers with a session cookie:
//
//	durable_admin = <expiry, Unix s> "." hex(HMAC-SHA256(key: token, "durable admin session " + expiry))
//
// HttpOnly (no script reads it), SameSite=Strict (no other site's page
// sends it), Path=/admin, Secure when served over TLS, valid 12 hours.
// The server keeps no session state: changing the token (and restarting)
// ends every session. Every POST must also come from the page itself
// (Sec-Fetch-Site same-origin, or an Origin naming this host), so another
// site cannot submit a form here. The pages take the bearer header too.
// The JSON API under /admin/v1 takes only the header: a cookie there would
// let a page's forms drive it.
//
// The pages only read: the operator actions stay in the API.

//go:embed ui
var uiFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"when":  when,
	"bytes": humanBytes,
	"wall":  func(ns int64) string { return time.Duration(ns).Round(time.Microsecond).String() },
	"cell":  cell,
	"path":  url.PathEscape,
	"add":   func(a, b int) int { return a + b },
}).ParseFS(uiFS, "ui/*.html"))

const (
	sessionCookie = "durable_admin"
	sessionTTL    = 12 * time.Hour
	tableRows     = 100 // rows a table page shows
)

// Handler serves the admin API under /admin/v1 (APIHandler) and the
// storage browser under /admin, with one token.
func Handler(token string, src Objects, log *slog.Logger) http.Handler {
	api := APIHandler(token, src)
	b := &browser{token: strings.TrimSpace(token), src: src, log: log}
	mux := http.NewServeMux()
	mux.Handle("/admin/v1/", api)
	mux.HandleFunc("GET /admin/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		css, _ := uiFS.ReadFile("ui/style.css")
		w.Write(css)
	})
	mux.HandleFunc("POST /admin/login", b.login)
	mux.HandleFunc("POST /admin/logout", b.logout)
	mux.HandleFunc("GET /admin/login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
	})
	mux.Handle("GET /admin", b.authed(b.namespaces))
	mux.Handle("GET /admin/{$}", b.authed(b.namespaces))
	mux.Handle("GET /admin/usage", b.authed(b.top))
	mux.Handle("GET /admin/ns/{ns}", b.authed(b.objects))
	mux.Handle("GET /admin/ns/{ns}/o/{id}", b.authed(b.object))
	mux.Handle("POST /admin/ns/{ns}/o/{id}/query", b.authed(b.object))
	mux.Handle("GET /admin/ns/{ns}/o/{id}/table/{table}", b.authed(b.table))
	mux.Handle("GET /admin/ns/{ns}/o/{id}/kv", b.authed(b.keys))
	notFound := b.authed(func(w http.ResponseWriter, r *http.Request) {
		b.render(w, http.StatusNotFound, "error", view{Title: "Not found", Error: "no page " + r.URL.Path})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/admin/") {
			notFound.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

type browser struct {
	token string
	src   Objects
	log   *slog.Logger
}

// view is what every page template gets.
type view struct {
	Title   string
	Crumbs  []crumb
	Error   string
	Status  int
	LoginTo string // the login page: where to go after
	Data    any
}

type crumb struct{ Label, Href string }

// sessionValue is the cookie value for a session that ends at exp.
func (b *browser) sessionValue(exp int64) string {
	mac := hmac.New(sha256.New, []byte(b.token))
	fmt.Fprintf(mac, "durable admin session %d", exp)
	return strconv.FormatInt(exp, 10) + "." + hex.EncodeToString(mac.Sum(nil))
}

// validSession says whether r carries a session cookie made with the
// token that has not expired.
func (b *browser) validSession(r *http.Request) bool {
	c, err := r.Cookie(sessionCookie)
	if err != nil || b.token == "" {
		return false
	}
	expText, _, ok := strings.Cut(c.Value, ".")
	exp, err := strconv.ParseInt(expText, 10, 64)
	if !ok || err != nil || time.Now().Unix() >= exp {
		return false
	}
	want := b.sessionValue(exp)
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(want)) == 1
}

// sameOrigin refuses a POST another site's page could have sent.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser's cross-site form: those send Origin
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// authed wraps a page: without a session or the header it shows the
// login form (401).
func (b *browser) authed(page func(w http.ResponseWriter, r *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.validSession(r) && !validBearer(r, b.token) {
			to := r.URL.RequestURI()
			if r.Method != http.MethodGet {
				to = "/admin"
			}
			b.render(w, http.StatusUnauthorized, "login", view{Title: "Sign in", LoginTo: to})
			return
		}
		if r.Method == http.MethodPost && !sameOrigin(r) {
			b.render(w, http.StatusForbidden, "error", view{Title: "Refused", Error: "a form from another site was refused"})
			return
		}
		page(w, r)
	})
}

func (b *browser) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		b.render(w, http.StatusForbidden, "error", view{Title: "Refused", Error: "a form from another site was refused"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	given := strings.TrimSpace(r.PostFormValue("token"))
	to := safeReturn(r.PostFormValue("to"))
	if !tokenMatches(given, b.token) {
		b.log.Warn("admin: a sign-in with a wrong token", "remote", r.RemoteAddr)
		b.render(w, http.StatusUnauthorized, "login", view{Title: "Sign in", LoginTo: to, Error: "That is not the admin token."})
		return
	}
	exp := time.Now().Add(sessionTTL).Unix()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: b.sessionValue(exp), Path: "/admin",
		Expires: time.Unix(exp, 0), HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// safeReturn keeps a page to return to after signing in only if it is one
// of the browser's own pages: a clean path under /admin, no backslash,
// query kept; anything else is /admin.
func safeReturn(to string) string {
	u, err := url.Parse(to)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || strings.ContainsAny(to, "\\\x00") {
		return "/admin"
	}
	p := path.Clean("/" + u.Path)
	if p != "/admin" && !strings.HasPrefix(p, "/admin/") {
		return "/admin"
	}
	u.Path, u.RawPath, u.Fragment = p, "", ""
	return u.String()
}

func (b *browser) logout(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		b.render(w, http.StatusForbidden, "error", view{Title: "Refused", Error: "a form from another site was refused"})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/admin", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

// render writes a page with the headers that keep it to itself.
func (b *browser) render(w http.ResponseWriter, status int, name string, v view) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	v.Status = status
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		b.log.Error("admin: render a page", "page", name, "err", err)
	}
}

// failed renders err as the page's answer, if any.
func (b *browser) failed(w http.ResponseWriter, r *http.Request, title string, crumbs []crumb, err error) bool {
	if err == nil {
		return false
	}
	status := errorStatus(err)
	b.render(w, status, "error", view{Title: title, Crumbs: crumbs, Error: err.Error()})
	return true
}

func home() []crumb { return []crumb{{"Namespaces", "/admin"}} }

func nsCrumbs(ns string) []crumb {
	return append(home(), crumb{ns, "/admin/ns/" + url.PathEscape(ns)})
}

func objCrumbs(ns, id string) []crumb {
	return append(nsCrumbs(ns), crumb{short(id), "/admin/ns/" + url.PathEscape(ns) + "/o/" + url.PathEscape(id)})
}

func (b *browser) namespaces(w http.ResponseWriter, r *http.Request) {
	b.render(w, http.StatusOK, "namespaces", view{Title: "Namespaces", Data: b.src.Namespaces()})
}

func (b *browser) objects(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < MinPageSize || n > MaxPageSize {
			b.render(w, http.StatusBadRequest, "error", view{Title: ns, Crumbs: home(), Error: "limit must be a whole number from 10 to 10000"})
			return
		}
		limit = n
	}
	cursor := r.URL.Query().Get("cursor")
	objs, more, err := b.src.ListObjects(ns, cursor, limit)
	if err == ErrUnknownNamespace {
		err = fmt.Errorf("%w %q", err, ns)
	}
	if b.failed(w, r, ns, home(), err) {
		return
	}
	next := ""
	if more && len(objs) > 0 {
		next = objs[len(objs)-1].ID
	}
	b.render(w, http.StatusOK, "objects", view{Title: ns, Crumbs: home(), Data: map[string]any{
		"NS": ns, "Objects": objs, "Next": next, "Limit": limit, "From": cursor}})
}

func (b *browser) object(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("ns"), r.PathValue("id")
	d, err := b.src.Object(ns, id)
	if b.failed(w, r, short(id), nsCrumbs(ns), err) {
		return
	}
	u, err := b.src.Usage(ns, id)
	if b.failed(w, r, short(id), nsCrumbs(ns), err) {
		return
	}
	data := map[string]any{"NS": ns, "O": d, "Usage": u}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, MaxQueryBytes+1024)
		sql := r.PostFormValue("sql")
		data["SQL"] = sql
		if strings.TrimSpace(sql) == "" {
			data["QueryError"], status = "Write one SELECT statement.", http.StatusBadRequest
		} else if res, err := b.src.Query(ns, id, sql); err != nil {
			data["QueryError"], status = err.Error(), http.StatusBadRequest
		} else {
			data["Result"] = res
		}
	}
	b.render(w, status, "object", view{Title: short(id), Crumbs: nsCrumbs(ns), Data: data})
}

func (b *browser) table(w http.ResponseWriter, r *http.Request) {
	ns, id, table := r.PathValue("ns"), r.PathValue("id"), r.PathValue("table")
	offset := 0
	if s := r.URL.Query().Get("offset"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			b.render(w, http.StatusBadRequest, "error", view{Title: table, Crumbs: objCrumbs(ns, id), Error: "offset must be a whole number ≥ 0"})
			return
		}
		offset = n
	}
	// Only the object's own tables and views: a name such as
	// pragma_optimize would reach a table-valued function. (No bound
	// parameters on the read-only path: literals and numbers are ours.)
	known, err := b.src.Query(ns, id, `SELECT 1 FROM sqlite_schema WHERE type IN ('table', 'view')
		AND name NOT LIKE '\_durable\_%' ESCAPE '\' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name = `+quoteString(table))
	if b.failed(w, r, table, objCrumbs(ns, id), err) {
		return
	}
	if len(known.Rows) == 0 {
		b.render(w, http.StatusNotFound, "error", view{Title: table, Crumbs: objCrumbs(ns, id), Error: "the object has no table or view " + strconv.Quote(table)})
		return
	}
	res, err := b.src.Query(ns, id, fmt.Sprintf("SELECT * FROM %s LIMIT %d OFFSET %d", QuoteIdent(table), tableRows+1, offset))
	if b.failed(w, r, table, objCrumbs(ns, id), err) {
		return
	}
	more := len(res.Rows) > tableRows
	if more {
		res.Rows = res.Rows[:tableRows]
	}
	b.render(w, http.StatusOK, "table", view{Title: table, Crumbs: objCrumbs(ns, id), Data: map[string]any{
		"NS": ns, "ID": id, "Table": table, "Result": res, "Offset": offset, "More": more,
		"Next": offset + tableRows, "Prev": max(0, offset-tableRows)}})
}

func (b *browser) keys(w http.ResponseWriter, r *http.Request) {
	ns, id := r.PathValue("ns"), r.PathValue("id")
	q := r.URL.Query()
	keys, err := b.src.Keys(ns, id, q.Get("prefix"), q.Get("cursor"), DefaultPageSize)
	if b.failed(w, r, "KV", objCrumbs(ns, id), err) {
		return
	}
	next := ""
	if len(keys) == DefaultPageSize {
		next = keys[len(keys)-1].Key
	}
	b.render(w, http.StatusOK, "kv", view{Title: "KV keys", Crumbs: objCrumbs(ns, id), Data: map[string]any{
		"NS": ns, "ID": id, "Keys": keys, "Prefix": q.Get("prefix"), "Next": next}})
}

func (b *browser) top(w http.ResponseWriter, r *http.Request) {
	by := r.URL.Query().Get("by")
	if _, ok := usage.Orders[by]; !ok {
		by = "requests"
	}
	top, err := b.src.TopUsage("", by, 50)
	if b.failed(w, r, "Usage", home(), err) {
		return
	}
	b.render(w, http.StatusOK, "usage", view{Title: "Top usage", Crumbs: home(), Data: map[string]any{
		"By": by, "Top": top, "Orders": []string{"requests", "wall", "rows_read", "rows_written", "bytes"}}})
}

// quoteString quotes an SQL string literal.
func quoteString(v string) string {
	return "'" + strings.ReplaceAll(v, "'", "''") + "'"
}

// when shows a Unix-ms time in UTC ("" for none).
func when(ms int64) string {
	if ms == 0 {
		return ""
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05.000 MST")
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// cell shows one SQL value.
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		if len(v) > 64 {
			return fmt.Sprintf("x'%x…' (%d bytes)", v[:64], len(v))
		}
		return fmt.Sprintf("x'%x'", v)
	case string:
		if len(v) > 500 {
			cut := 500
			for cut > 0 && !utf8.RuneStart(v[cut]) {
				cut--
			}
			return v[:cut] + "…"
		}
		return v
	}
	return fmt.Sprint(v)
}

// short abbreviates an object ID for titles.
func short(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}
