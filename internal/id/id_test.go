package id

import (
	"errors"
	"strings"
	"testing"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func TestFromName_StableAndDistinct(t *testing.T) {
	k := NamespaceKey(secret, "COUNTER")
	a, b := k.FromName("alice"), k.FromName("alice")
	if a != b {
		t.Fatal("FromName is not deterministic")
	}
	if k.FromName("bob") == a {
		t.Fatal("two names gave one ID")
	}
	other := NamespaceKey(secret, "OTHER")
	if other.FromName("alice") == a {
		t.Fatal("the same name in two namespaces gave one ID")
	}
	if NamespaceKey([]byte("another secret"), "COUNTER").FromName("alice") == a {
		t.Fatal("two secrets gave one ID")
	}
	s := String(a)
	if len(s) != 64 || strings.ToLower(s) != s {
		t.Fatalf("String = %q", s)
	}
}

func TestParse(t *testing.T) {
	k := NamespaceKey(secret, "COUNTER")
	u := k.Unique()
	if k.Unique() == u {
		t.Fatal("two unique IDs are equal")
	}
	for _, s := range []string{String(u), strings.ToUpper(String(u))} {
		got, err := k.Parse(s)
		if err != nil || got != u {
			t.Fatalf("Parse(%q) = %x, %v", s, got, err)
		}
	}
	cases := map[string]error{
		"":                      ErrFormat,
		"abc":                   ErrFormat,
		strings.Repeat("g", 64): ErrFormat,
		strings.Repeat("0", 63): ErrFormat,
		strings.Repeat("0", 65): ErrFormat,
		String(u) + " ":         ErrFormat,
		strings.Repeat("0", 64): ErrForeign,
		String(NamespaceKey(secret, "X").Unique()): ErrForeign,
	}
	tampered := []byte(String(u))
	if tampered[3] == '0' { // another hex digit in the base
		tampered[3] = '1'
	} else {
		tampered[3] = '0'
	}
	cases[string(tampered)] = ErrForeign
	for s, want := range cases {
		if _, err := k.Parse(s); !errors.Is(err, want) {
			t.Errorf("Parse(%q) = %v, want %v", s, err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	k := NamespaceKey(secret, "FUZZ")
	f.Add(String(k.FromName("x")))
	f.Add(String(k.Unique()))
	f.Add(strings.Repeat("F", 64))
	f.Add("not an id")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := k.Parse(s)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrForeign) {
				t.Fatalf("Parse(%q): unexpected error %v", s, err)
			}
			return
		}
		// Anything accepted round-trips and is valid.
		if !strings.EqualFold(String(b), s) || !k.Valid(b) {
			t.Fatalf("Parse(%q) accepted %x", s, b)
		}
	})
}
