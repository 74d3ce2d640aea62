package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminTokenPrecedence(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DURABLE_ADMIN_TOKEN", "")
	tok, gen, err := adminToken(dir, "")
	if err != nil || !gen || len(tok) != 64 {
		t.Fatalf("first start: %q generated=%v %v; want a new 64-hex-digit token", tok, gen, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, adminTokenFile)); fi == nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode: %v", fi)
	}
	if again, gen, err := adminToken(dir, ""); err != nil || gen || again != tok {
		t.Fatalf("second start: %q generated=%v %v; want the kept %q", again, gen, err, tok)
	}
	t.Setenv("DURABLE_ADMIN_TOKEN", "from-env")
	if got, _, _ := adminToken(dir, ""); got != "from-env" {
		t.Errorf("with $DURABLE_ADMIN_TOKEN: %q", got)
	}
	if got, _, _ := adminToken(dir, "from-flag"); got != "from-flag" {
		t.Errorf("with --admin-token and the variable: %q, want the flag's", got)
	}
	t.Setenv("DURABLE_ADMIN_TOKEN", "")
	os.WriteFile(filepath.Join(dir, adminTokenFile), []byte("\n"), 0o600)
	if _, _, err := adminToken(dir, ""); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("an empty token file: %v, want a clear error", err)
	}
}

func TestAdminTokenBlankRefused(t *testing.T) {
	t.Setenv("DURABLE_ADMIN_TOKEN", "")
	if _, _, err := adminToken(t.TempDir(), "   "); err == nil {
		t.Error("a blank --admin-token was accepted")
	}
	t.Setenv("DURABLE_ADMIN_TOKEN", " \t")
	if _, _, err := adminToken(t.TempDir(), ""); err == nil {
		t.Error("a blank $DURABLE_ADMIN_TOKEN was accepted")
	}
	if tok, _, err := adminToken(t.TempDir(), " padded "); err != nil || tok != "padded" {
		t.Errorf("--admin-token \" padded \" = %q, %v; want it trimmed", tok, err)
	}
}
