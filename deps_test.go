package durable_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies asserts the import arrows of the design (DESIGN.md §3):
// dependencies point inward, and each third-party module lives in one leaf
// package.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath string
		Imports    []string
		Deps       []string
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(p.ImportPath, "github.com/durable-go/durable")] = p
	}
	const mod = "github.com/durable-go/durable"
	has := func(list []string, prefix string) bool {
		for _, s := range list {
			if s == prefix || strings.HasPrefix(s, prefix+"/") {
				return true
			}
		}
		return false
	}
	never := []struct {
		pkg, dep, why string
		direct        bool
	}{
		{"/internal/store", mod + "/internal/actor", "the store knows nothing of actors", false},
		{"/internal/store", mod + "/internal/host", "the store knows nothing of activations", false},
		{"/internal/store", "net/http", "the store knows nothing of HTTP", false},
		{"/internal/actor", "github.com/ncruces/go-sqlite3", "the actor knows nothing of SQLite", false},
		{"/internal/actor", mod + "/internal/store", "the actor knows nothing of storage", false},
		{"/internal/actor", "net/http", "the actor knows nothing of HTTP", false},
		{"/internal/gate", mod + "/internal/store", "the gate is below the store", false},
		{"/internal/codec", mod + "/internal/store", "the codec is a leaf", false},
		{"/internal/id", mod + "/internal/store", "IDs are a leaf", false},
		{"/internal/route", mod + "/internal/store", "the routing seams are below the store", false},
		{"/internal/metrics", mod + "/internal", "the counters are a leaf", false},
		{"", mod + "/cluster", "the root never imports cluster mode", false},
		{"", "github.com/ncruces/go-sqlite3", "only internal/store imports SQLite", true},
		{"/internal/host", "github.com/ncruces/go-sqlite3", "only internal/store imports SQLite", true},
	}
	for _, n := range never {
		p, ok := pkgs[n.pkg]
		if !ok {
			t.Errorf("package %q not found", n.pkg)
			continue
		}
		list := p.Deps
		if n.direct {
			list = p.Imports
		}
		if has(list, n.dep) {
			t.Errorf("%s imports %s: %s", mod+n.pkg, n.dep, n.why)
		}
	}
	// Each third-party module is imported directly by one leaf package.
	owners := map[string][]string{
		"github.com/ncruces/go-sqlite3": {"/internal/store", "/internal/store/faultfs"},
		// The runtime's counters are plain atomics (internal/metrics);
		// Prometheus is the exporter's business alone.
		"github.com/prometheus/client_golang": {"/internal/admin"},
		// Spans are made in internal/tracing; the root names the
		// provider's type in Config; the binary sets up the SDK.
		"go.opentelemetry.io/otel":                                        {"/internal/tracing", "", "/cmd/durable"},
		"go.opentelemetry.io/otel/sdk":                                    {"/cmd/durable"},
		"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp": {"/cmd/durable"},
	}
	for path, p := range pkgs {
		for dep, allowed := range owners {
			if has(p.Imports, dep) && !contains(allowed, path) {
				t.Errorf("%s imports %s directly; only %v may", mod+path, dep, allowed)
			}
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
