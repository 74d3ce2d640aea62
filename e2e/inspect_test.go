package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// inspectRun runs `durable inspect` and returns its stdout, stderr and
// exit code.
func inspectRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(durableBinary(t), append([]string{"inspect"}, args...)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// durable inspect reads what a server wrote once it stopped, refuses a
// directory a running server holds, and never writes.
func TestInspect_StoppedServersData(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	s.increment("alpha")
	s.increment("alpha")
	if _, errOut, code := inspectRun(t, "--dir", dir, "namespaces"); code != 1 || !strings.Contains(errOut, "held by a running server") {
		t.Errorf("inspect of a held directory: exit %d, %q; want 1 and a clear refusal", code, errOut)
	}
	s.stop()

	out, errOut, code := inspectRun(t, "--dir", dir, "--json", "objects", "COUNTER")
	var page struct {
		Objects []struct {
			ID    string `json:"id"`
			Bytes int64  `json:"bytes"`
		} `json:"objects"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &page) != nil || len(page.Objects) != 1 || page.Objects[0].Bytes <= 0 {
		t.Fatalf("objects: exit %d %s %s", code, out, errOut)
	}
	id := page.Objects[0].ID
	out, errOut, code = inspectRun(t, "--dir", dir, "--json", "keys", "COUNTER", id)
	if code != 0 || !strings.Contains(out, `"key": "value"`) || !strings.Contains(out, `"cursor": ""`) {
		t.Errorf("keys: exit %d %s %s", code, out, errOut)
	}
	out, errOut, code = inspectRun(t, "--dir", dir, "--json", "object", "COUNTER", id)
	var detail struct {
		ID     string `json:"id"`
		Bytes  int64  `json:"bytes"`
		Schema []any  `json:"schema"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &detail) != nil || detail.ID != id || detail.Bytes <= 0 || detail.Schema == nil {
		t.Errorf("object: exit %d %s %s", code, out, errOut)
	}
	out, errOut, code = inspectRun(t, "--dir", dir, "query", "COUNTER", id, "SELECT count(*) AS n FROM sqlite_schema WHERE name = '_durable_kv'")
	if code != 0 || !strings.Contains(out, "n") || !strings.Contains(out, "1") {
		t.Errorf("query: exit %d %q %s", code, out, errOut)
	}
	if _, errOut, code := inspectRun(t, "--dir", dir, "query", "COUNTER", id, "DROP TABLE _durable_kv"); code != 1 || errOut == "" {
		t.Errorf("a write through inspect: exit %d %q; want a refusal", code, errOut)
	}
	out, errOut, code = inspectRun(t, "--dir", dir, "--json", "usage", "COUNTER", id)
	if code != 0 || !strings.Contains(out, `"requests": 2`) {
		t.Errorf("usage: exit %d %s %s; want the 2 increments", code, out, errOut)
	}
	out, errOut, code = inspectRun(t, "--dir", dir, "top", "requests")
	if code != 0 || !strings.Contains(out, id) {
		t.Errorf("top: exit %d %s %s", code, out, errOut)
	}
	if _, errOut, code := inspectRun(t, "--dir", dir, "objects", "NOPE"); code != 1 || !strings.Contains(errOut, "no namespace") {
		t.Errorf("objects of an unknown namespace: exit %d %q, want 1 and a clear message", code, errOut)
	}
	if _, errOut, code := inspectRun(t, "--dir", dir, "query", "COUNTER", id, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c"); code != 1 || !strings.Contains(errOut, "timed out") {
		t.Errorf("a runaway query: exit %d %q, want 1 after the 5 s bound", code, errOut)
	}
	if _, _, code := inspectRun(t, "--dir", dir, "bogus"); code != 2 {
		t.Errorf("an unknown command: exit %d, want 2", code)
	}
	// The data is intact: the server reads the same counter.
	s = startServer(t, dir)
	if v := s.get("alpha"); v != 2 {
		t.Errorf("alpha after inspecting = %d, want 2", v)
	}
	s.stop()
}
