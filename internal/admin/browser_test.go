package admin

import "testing"

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
