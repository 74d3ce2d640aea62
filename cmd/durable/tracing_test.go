package main

import (
	"math"
	"testing"
)

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
	for _, bad := range []float64{1.5, -0.1, math.NaN()} {
		if _, err := newTracerProvider("http://127.0.0.1:4318", bad); err == nil {
			t.Errorf("--trace-sample %v accepted", bad)
		}
	}
}
