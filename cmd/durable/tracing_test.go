package main

import "testing"

func TestOTLPURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4318":         "http://127.0.0.1:4318/v1/traces",
		"http://127.0.0.1:4318/":        "http://127.0.0.1:4318/v1/traces",
		"https://otel.example/x/traces": "https://otel.example/x/traces",
		"127.0.0.1:4318":                "",
		"grpc://127.0.0.1:4317":         "",
		"http://":                       "",
		"":                              "",
	} {
		got, err := otlpURL(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("otlpURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := newTracerProvider("http://127.0.0.1:4318", 1.5); err == nil {
		t.Error("--trace-sample 1.5 accepted")
	}
}
