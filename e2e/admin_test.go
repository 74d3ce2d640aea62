package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// adminBase returns the admin API's base URL from the server's stdout.
func (s *server) adminBase(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^admin on (\S+)$`).FindStringSubmatch(s.stdout.String())
	if m == nil {
		t.Fatalf("no \"admin on ADDR\" line on stdout:\n%s", s.stdout.String())
	}
	return "http://" + m[1]
}

func adminStatus(t *testing.T, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// The admin API listens only on --admin-addr, behind a token made once,
// kept in the data directory with mode 0600 and printed once.
func TestServe_AdminAPI(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, "--admin-addr", "127.0.0.1:0")
	admin := s.adminBase(t)
	path := filepath.Join(dir, "admin-token")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("no generated token file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-token has mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	// stderr comes through its own pipe: the line may trail stdout's.
	printed := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if printed = strings.Contains(s.stderr.String(), token); printed {
			break
		}
	}
	if !printed {
		t.Errorf("the generated token was not printed at its first start")
	}
	s.increment("alpha")
	if got := adminStatus(t, admin+"/admin/v1/namespaces/COUNTER/objects", token); got != 200 {
		t.Errorf("with the token: %d, want 200", got)
	}
	if got := adminStatus(t, admin+"/admin/v1/namespaces", ""); got != 401 {
		t.Errorf("without a token: %d, want 401", got)
	}
	if got := adminStatus(t, admin+"/admin/v1/namespaces", strings.Repeat("0", len(token))); got != 401 {
		t.Errorf("with a wrong token of the same length: %d, want 401", got)
	}
	if r := s.do(http.MethodGet, "/admin/v1/namespaces"); r.status != http.StatusNotFound {
		t.Errorf("the app's address serves the admin API: %d", r.status)
	}
	s.stop()

	// A restart keeps the token and does not print it again.
	s = startServer(t, dir, "--admin-addr", "127.0.0.1:0")
	if got := adminStatus(t, s.adminBase(t)+"/admin/v1/namespaces", token); got != 200 {
		t.Errorf("after a restart, the kept token: %d, want 200", got)
	}
	if strings.Contains(s.stderr.String(), token) {
		t.Errorf("the kept token was printed again")
	}
	s.stop()

	// --admin-token wins over the kept one.
	s = startServer(t, dir, "--admin-addr", "127.0.0.1:0", "--admin-token", "given-token")
	admin = s.adminBase(t)
	if got := adminStatus(t, admin+"/admin/v1/namespaces", "given-token"); got != 200 {
		t.Errorf("--admin-token: %d, want 200", got)
	}
	if got := adminStatus(t, admin+"/admin/v1/namespaces", token); got != 401 {
		t.Errorf("the kept token with --admin-token given: %d, want 401", got)
	}
	s.stop()

	// Without --admin-addr there is no admin listener at all.
	s = startServer(t, dir)
	if strings.Contains(s.stdout.String(), "admin on") {
		t.Errorf("an admin listener without --admin-addr:\n%s", s.stdout.String())
	}
	s.stop()
}
