// Package id derives and checks object IDs.
//
// An ID is 32 bytes, shown as 64 lowercase hex digits: a 16-byte base and a
// 16-byte tag, the first half of HMAC-SHA256 of the base under the
// namespace's key. The base of a named ID is derived from the name under
// the same key; the base of a unique ID is random. The namespace key is
// derived from the runtime secret and the namespace name, so an ID is
// stable across restarts, and an ID of another namespace (or runtime, or a
// tampered one) fails the tag check.
package id

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
)

// Size is the length of an ID in bytes; its string is twice as long.
const Size = 32

// Errors of Parse. The messages are the platform's (spec ID-6).
var (
	ErrFormat  = errors.New("invalid Durable Object ID: must be 64 hex digits")
	ErrForeign = errors.New("Durable Object ID is not valid for this namespace")
)

// Key is one namespace's ID key.
type Key struct{ k [32]byte }

// NamespaceKey derives the key of namespace ns from the runtime secret.
func NamespaceKey(secret []byte, ns string) Key {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("durable namespace id key v1\x00"))
	m.Write([]byte(ns))
	var k Key
	m.Sum(k.k[:0])
	return k
}

func (k Key) mac(domain byte, data []byte) [32]byte {
	m := hmac.New(sha256.New, k.k[:])
	m.Write([]byte{domain})
	m.Write(data)
	var out [32]byte
	m.Sum(out[:0])
	return out
}

// seal completes an ID from its base.
func (k Key) seal(base []byte) [Size]byte {
	var out [Size]byte
	copy(out[:16], base)
	tag := k.mac('t', base)
	copy(out[16:], tag[:16])
	return out
}

// FromName returns the ID of a name: the same for the same key and name.
func (k Key) FromName(name string) [Size]byte {
	base := k.mac('n', []byte(name))
	return k.seal(base[:16])
}

// Unique returns a new random ID.
func (k Key) Unique() [Size]byte {
	var base [16]byte
	rand.Read(base[:]) // crypto/rand.Read never fails (Go 1.24+)
	return k.seal(base[:])
}

// Valid reports whether b's tag matches this key.
func (k Key) Valid(b [Size]byte) bool {
	want := k.seal(b[:16])
	return subtle.ConstantTimeCompare(want[16:], b[16:]) == 1
}

// Parse reads an ID string (upper- or lower-case hex) and checks it
// belongs to this key's namespace.
func (k Key) Parse(s string) ([Size]byte, error) {
	var b [Size]byte
	if len(s) != 2*Size {
		return b, ErrFormat
	}
	if _, err := hex.Decode(b[:], []byte(s)); err != nil {
		return [Size]byte{}, ErrFormat
	}
	if !k.Valid(b) {
		return [Size]byte{}, ErrForeign
	}
	return b, nil
}

// String returns the 64 lowercase hex digits of an ID.
func String(b [Size]byte) string { return hex.EncodeToString(b[:]) }
