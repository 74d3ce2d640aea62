package admin

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"strings"
	"testing"
)

// The page to return to after signing in stays one of the browser's own.
func TestSafeReturn(t *testing.T) {
	for in, want := range map[string]string{
		"/admin":                      "/admin",
		"/admin/ns/A?limit=10":        "/admin/ns/A?limit=10",
		"/admin/ns/A/o/x#frag":        "/admin/ns/A/o/x",
		"/admin/../\\evil.com":        "/admin",
		"/admin/../../etc":            "/admin",
		"/adminX":                     "/admin",
		"/admin@evil.com":             "/admin",
		"//evil.com/admin":            "/admin",
		"https://evil.com/admin":      "/admin",
		"/admin/./ns/../ns/A":         "/admin/ns/A",
		"/admin\\@evil":               "/admin",
		"":                            "/admin",
		"javascript:alert(1)//admin/": "/admin",
	} {
		if got := safeReturn(in); got != want {
			t.Errorf("safeReturn(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever it is given, safeReturn answers a path of the browser's own:
// under /admin, clean, no host, no backslash.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/admin", "/admin/ns/A?limit=10", "/admin/../\\evil.com", "//evil.com", "https://x/admin", "/admin/%2e%2e/x", "/admin?to=//evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, to string) {
		got := safeReturn(to)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || strings.ContainsAny(got, "\\\x00") ||
			(u.Path != "/admin" && !strings.HasPrefix(u.Path, "/admin/")) || path.Clean(u.Path) != u.Path {
			t.Fatalf("safeReturn(%q) = %q", to, got)
		}
	})
}

// A session cookie is valid only as made: any other value is refused,
// and parsing never panics.
func FuzzSession(f *testing.F) {
	b := &browser{token: "token-0123456789"}
	good := b.sessionValue(4102444800)
	for _, s := range []string{good, "", ".", "1.", "x.y", "99999999999999999999.00", good + "0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/admin", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: v}) // drops bytes a cookie cannot hold
		sent := ""
		if c, err := r.Cookie(sessionCookie); err == nil {
			sent = c.Value
		}
		if b.validSession(r) && sent != good {
			t.Fatalf("cookie %q (sent as %q) accepted", v, sent)
		}
	})
}
