package codec

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

type point struct {
	X, Y int
	Tags []string          `json:"tags,omitempty"`
	Meta map[string]string `json:"meta"`
	When time.Time
	Next *point
}

type celsius float64
type name string
type blob []byte

// roundTripCases are values encoding/json round-trips exactly.
func roundTripCases() []any {
	return []any{
		"", "hello", "ünïcödé ✓", "with\x00nul",
		true, false,
		0, 1, -1, math.MaxInt64, math.MinInt64,
		int8(-8), int16(300), int32(-70000), int64(1 << 60),
		uint(7), uint8(255), uint16(65535), uint32(1 << 31), uint64(math.MaxUint64),
		0.0, 1.5, -2.25, math.MaxFloat64, math.SmallestNonzeroFloat64, float32(1.5),
		[]byte{}, []byte{0, 1, 2, 255}, []byte("raw"),
		[]int{1, 2, 3}, []string{"a", "b"}, map[string]int{"a": 1, "b": 2},
		map[string]any{"n": 1.5, "s": "x", "l": []any{true, nil}},
		point{X: 1, Y: -2, Tags: []string{"t"}, Meta: map[string]string{"k": "v"},
			When: time.Date(2026, 11, 27, 1, 2, 3, 4, time.UTC), Next: &point{X: 9}},
		&point{X: 3},
		celsius(21.5), name("bob"), blob("named bytes"),
		json.RawMessage(`{"a":[1,2,3]}`),
		[2]int{4, 5},
		struct{}{},
	}
}

// TestRoundTrip checks every value decodes into its own type as
// encoding/json would give it back.
func TestRoundTrip(t *testing.T) {
	for _, v := range roundTripCases() {
		enc, err := Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%#v): %v", v, err)
		}
		got := reflect.New(reflect.TypeOf(v))
		if err := Unmarshal(enc, got.Interface()); err != nil {
			t.Fatalf("Unmarshal(%T): %v", v, err)
		}
		want := reflect.New(reflect.TypeOf(v))
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(js, want.Interface()); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Elem().Interface(), want.Elem().Interface()) {
			t.Errorf("%T: got %#v, encoding/json gives %#v", v, got.Elem().Interface(), want.Elem().Interface())
		}
		if !reflect.DeepEqual(got.Elem().Interface(), v) {
			t.Errorf("%T: got %#v, want the original %#v", v, got.Elem().Interface(), v)
		}
	}
}

func TestUnmarshal_IntoAny(t *testing.T) {
	cases := []struct {
		in   any
		want any
	}{
		{"s", "s"}, {true, true}, {nil, nil}, {int64(-5), int64(-5)},
		{uint64(math.MaxUint64), uint64(math.MaxUint64)}, {2.5, 2.5},
		{[]byte{1, 2}, []byte{1, 2}},
		{map[string]int{"a": 1}, map[string]any{"a": 1.0}}, // JSON-encoded: encoding/json's rules
		{[]int{1}, []any{1.0}},
	}
	for _, c := range cases {
		enc, err := Marshal(c.in)
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if err := Unmarshal(enc, &got); err != nil {
			t.Fatalf("Unmarshal(%#v) into *any: %v", c.in, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%#v into *any = %#v, want %#v", c.in, got, c.want)
		}
	}
}

func TestUnmarshal_Conversions(t *testing.T) {
	enc := func(v any) []byte {
		b, err := Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var f float64
	if err := Unmarshal(enc(7), &f); err != nil || f != 7 {
		t.Errorf("int into float64: %v %v", f, err)
	}
	var i32 int32
	if err := Unmarshal(enc(int64(-9)), &i32); err != nil || i32 != -9 {
		t.Errorf("int64 into int32: %v %v", i32, err)
	}
	var i8 int8
	if err := Unmarshal(enc(1000), &i8); err == nil {
		t.Errorf("1000 into int8: no error, got %d", i8)
	}
	var n int
	if err := Unmarshal(enc(2.5), &n); err == nil {
		t.Error("2.5 into int: no error")
	}
	var s string
	if err := Unmarshal(enc(5), &s); err == nil {
		t.Error("int into string: no error")
	}
	if err := Unmarshal(enc([]byte("x")), &s); err == nil {
		t.Error("raw bytes into string: no error")
	}
	var c celsius
	if err := Unmarshal(enc(36.6), &c); err != nil || c != 36.6 {
		t.Errorf("float64 into named float: %v %v", c, err)
	}
	var p *point
	if err := Unmarshal(enc(nil), &p); err != nil || p != nil {
		t.Errorf("nil into *point: %v %v", p, err)
	}
	var bs []byte = []byte("old")
	if err := Unmarshal(enc([]byte(nil)), &bs); err != nil || bs != nil {
		t.Errorf("nil slice: %v %v", bs, err)
	}
}

func TestUnmarshal_BadInput(t *testing.T) {
	var v any
	for _, b := range [][]byte{nil, {}, {0x7f}, {TagInt}, {TagInt, 0x80}, {TagFloat, 1, 2}, {TagJSON, '{'}, {TagUint}} {
		if err := Unmarshal(b, &v); err == nil {
			t.Errorf("Unmarshal(%v) = nil error", b)
		}
	}
	if err := Unmarshal([]byte{TagString, 'a'}, nil); err == nil {
		t.Error("Unmarshal into nil: no error")
	}
	var s string
	if err := Unmarshal([]byte{TagString, 'a'}, s); err == nil {
		t.Error("Unmarshal into a non-pointer: no error")
	}
	if err := Unmarshal([]byte{}, &s); !errors.Is(err, ErrFormat) {
		t.Errorf("empty input: %v, want ErrFormat", err)
	}
}

func TestMarshal_Unsupported(t *testing.T) {
	if _, err := Marshal(make(chan int)); err == nil {
		t.Error("Marshal(chan) = nil error")
	}
	if _, err := Marshal(func() {}); err == nil {
		t.Error("Marshal(func) = nil error")
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, v := range roundTripCases() {
		b, _ := Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{TagInt, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		// Never panic, whatever the bytes and the destination.
		var a any
		var s string
		var i int
		var i8 int8
		var u uint64
		var fl float64
		var b []byte
		var p point
		var m map[string]any
		for _, dst := range []any{&a, &s, &i, &i8, &u, &fl, &b, &p, &m} {
			_ = Unmarshal(data, dst)
		}
		// What decodes into *any re-encodes and decodes to the same value.
		if err := Unmarshal(data, &a); err == nil {
			enc, err := Marshal(a)
			if err != nil {
				return // e.g. NaN decoded from a float tag into a JSON-only value
			}
			var again any
			if err := Unmarshal(enc, &again); err != nil {
				t.Fatalf("re-decoding %v: %v", enc, err)
			}
			if fa, ok := a.(float64); ok && math.IsNaN(fa) {
				return
			}
			if !reflect.DeepEqual(a, again) {
				t.Fatalf("%#v re-decoded as %#v", a, again)
			}
		}
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("s", int64(1), 1.5, []byte{1}, true)
	f.Add("", int64(math.MinInt64), math.Inf(1), []byte{}, false)
	f.Fuzz(func(t *testing.T, s string, n int64, x float64, b []byte, ok bool) {
		check := func(v, dst any) {
			enc, err := Marshal(v)
			if err != nil {
				t.Fatalf("Marshal(%#v): %v", v, err)
			}
			if err := Unmarshal(enc, dst); err != nil {
				t.Fatalf("Unmarshal(%#v): %v", v, err)
			}
			got := reflect.ValueOf(dst).Elem().Interface()
			if fv, isF := v.(float64); isF && math.IsNaN(fv) {
				if !math.IsNaN(got.(float64)) {
					t.Fatalf("NaN came back as %v", got)
				}
				return
			}
			if b, isB := v.([]byte); isB && b == nil {
				v = []byte(nil)
			}
			if !reflect.DeepEqual(got, v) {
				t.Fatalf("%#v came back as %#v", v, got)
			}
		}
		var s2 string
		var n2 int64
		var x2 float64
		var b2 []byte
		var ok2 bool
		check(s, &s2)
		check(n, &n2)
		check(x, &x2)
		check(b, &b2)
		check(ok, &ok2)
	})
}

var benchStruct = point{X: 1, Y: 2, Tags: []string{"a", "b"}, Meta: map[string]string{"k": "v"}}

func BenchmarkCodec(b *testing.B) {
	for _, c := range []struct {
		name string
		v    any
		dst  func() any
	}{
		{"int64", int64(123456), func() any { return new(int64) }},
		{"string", "hello, durable objects", func() any { return new(string) }},
		{"bytes", make([]byte, 256), func() any { return new([]byte) }},
		{"struct", benchStruct, func() any { return new(point) }},
	} {
		b.Run("codec/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			dst := c.dst()
			var buf []byte
			for i := 0; i < b.N; i++ {
				var err error
				buf, err = Append(buf[:0], c.v)
				if err != nil {
					b.Fatal(err)
				}
				if err := Unmarshal(buf, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("json/"+c.name, func(b *testing.B) {
			b.ReportAllocs()
			dst := c.dst()
			for i := 0; i < b.N; i++ {
				js, err := json.Marshal(c.v)
				if err != nil {
					b.Fatal(err)
				}
				if err := json.Unmarshal(js, dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
