// Package codec encodes the values durable stores and copies: KV values and
// RPC arguments and results.
//
// Every encoding starts with a one-byte format tag, so the stored format can
// evolve. []byte is stored raw; the common scalar types (string, bool,
// integers, floats, nil) have compact tags; everything else is encoding/json
// (format version 1). The promise: every value that encoding/json
// round-trips, round-trips.
//
// Decoding into *any gives the natural Go value of a compact tag (string,
// bool, int64, uint64, float64, []byte, nil) and what encoding/json gives for
// JSON-encoded values. Decoding into another type than the one stored goes
// through the value's JSON form, with encoding/json's conversion rules.
package codec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
)

// Format tags: the first byte of every encoding.
const (
	TagRaw    byte = 0x00 // []byte, stored as is
	TagJSON   byte = 0x01 // encoding/json, format version 1
	TagString byte = 0x02 // UTF-8 bytes
	TagInt    byte = 0x03 // zig-zag varint
	TagUint   byte = 0x04 // varint
	TagFloat  byte = 0x05 // IEEE 754 binary64, little-endian
	TagFalse  byte = 0x06
	TagTrue   byte = 0x07
	TagNil    byte = 0x08 // JSON null
)

// ErrFormat reports stored bytes this codec cannot read.
var ErrFormat = errors.New("codec: unknown or malformed encoding")

// Marshal encodes v.
func Marshal(v any) ([]byte, error) { return Append(nil, v) }

// Append appends the encoding of v to dst.
func Append(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, TagNil), nil
	case []byte:
		if x == nil {
			// encoding/json gives null for a nil slice; keep that.
			return append(dst, TagNil), nil
		}
		return append(append(dst, TagRaw), x...), nil
	case string:
		return append(append(dst, TagString), x...), nil
	case bool:
		if x {
			return append(dst, TagTrue), nil
		}
		return append(dst, TagFalse), nil
	case int:
		return binary.AppendVarint(append(dst, TagInt), int64(x)), nil
	case int8:
		return binary.AppendVarint(append(dst, TagInt), int64(x)), nil
	case int16:
		return binary.AppendVarint(append(dst, TagInt), int64(x)), nil
	case int32:
		return binary.AppendVarint(append(dst, TagInt), int64(x)), nil
	case int64:
		return binary.AppendVarint(append(dst, TagInt), x), nil
	case uint:
		return binary.AppendUvarint(append(dst, TagUint), uint64(x)), nil
	case uint8:
		return binary.AppendUvarint(append(dst, TagUint), uint64(x)), nil
	case uint16:
		return binary.AppendUvarint(append(dst, TagUint), uint64(x)), nil
	case uint32:
		return binary.AppendUvarint(append(dst, TagUint), uint64(x)), nil
	case uint64:
		return binary.AppendUvarint(append(dst, TagUint), x), nil
	case float64:
		return binary.LittleEndian.AppendUint64(append(dst, TagFloat), math.Float64bits(x)), nil
	case float32:
		return binary.LittleEndian.AppendUint64(append(dst, TagFloat), math.Float64bits(float64(x))), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("codec: encode %T: %w", v, err)
	}
	return append(append(dst, TagJSON), b...), nil
}

// Unmarshal decodes data into dst, which must be a non-nil pointer.
func Unmarshal(data []byte, dst any) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrFormat)
	}
	tag, body := data[0], data[1:]
	if tag == TagJSON {
		if err := json.Unmarshal(body, dst); err != nil {
			return fmt.Errorf("codec: decode into %T: %w", dst, err)
		}
		return nil
	}
	// Fast paths: the stored type matches the destination.
	switch d := dst.(type) {
	case *[]byte:
		switch tag {
		case TagRaw:
			*d = append([]byte(nil), body...)
			if *d == nil {
				*d = []byte{}
			}
			return nil
		case TagNil:
			*d = nil
			return nil
		}
	case *string:
		if tag == TagString {
			*d = string(body)
			return nil
		}
	case *bool:
		switch tag {
		case TagTrue:
			*d = true
			return nil
		case TagFalse:
			*d = false
			return nil
		}
	case *int64:
		if tag == TagInt {
			n, err := varint(body)
			*d = n
			return err
		}
	case *int:
		if tag == TagInt {
			n, err := varint(body)
			if err == nil && int64(int(n)) != n {
				return fmt.Errorf("codec: %d overflows int", n)
			}
			*d = int(n)
			return err
		}
	case *uint64:
		if tag == TagUint {
			n, err := uvarint(body)
			*d = n
			return err
		}
	case *float64:
		if tag == TagFloat {
			f, err := float(body)
			*d = f
			return err
		}
	case *any:
		v, err := natural(tag, body)
		if err == nil {
			*d = v
		}
		return err
	}
	if tag == TagRaw {
		if rv := reflect.ValueOf(dst); rv.Kind() == reflect.Pointer && !rv.IsNil() &&
			rv.Elem().Kind() == reflect.Slice && rv.Elem().Type().Elem().Kind() == reflect.Uint8 {
			rv.Elem().SetBytes(append([]byte{}, body...))
			return nil
		}
		return fmt.Errorf("codec: stored value is raw bytes; decode it into *[]byte, not %T", dst)
	}
	// The destination differs from the stored type: go through JSON, so the
	// conversions are encoding/json's.
	js, err := jsonForm(tag, body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(js, dst); err != nil {
		return fmt.Errorf("codec: decode into %T: %w", dst, err)
	}
	return nil
}

// natural returns the Go value a compact tag stands for.
func natural(tag byte, body []byte) (any, error) {
	switch tag {
	case TagRaw:
		return append([]byte{}, body...), nil
	case TagString:
		return string(body), nil
	case TagTrue:
		return true, nil
	case TagFalse:
		return false, nil
	case TagNil:
		return nil, nil
	case TagInt:
		return varint(body)
	case TagUint:
		return uvarint(body)
	case TagFloat:
		return float(body)
	}
	return nil, fmt.Errorf("%w: tag %#x", ErrFormat, tag)
}

// jsonForm returns the JSON text of a compactly encoded value.
func jsonForm(tag byte, body []byte) ([]byte, error) {
	switch tag {
	case TagString:
		return json.Marshal(string(body))
	case TagTrue:
		return []byte("true"), nil
	case TagFalse:
		return []byte("false"), nil
	case TagNil:
		return []byte("null"), nil
	case TagInt:
		n, err := varint(body)
		return strconv.AppendInt(nil, n, 10), err
	case TagUint:
		n, err := uvarint(body)
		return strconv.AppendUint(nil, n, 10), err
	case TagFloat:
		f, err := float(body)
		if err != nil {
			return nil, err
		}
		return json.Marshal(f)
	}
	return nil, fmt.Errorf("%w: tag %#x", ErrFormat, tag)
}

func varint(b []byte) (int64, error) {
	n, k := binary.Varint(b)
	if k <= 0 || k != len(b) {
		return 0, fmt.Errorf("%w: bad integer", ErrFormat)
	}
	return n, nil
}

func uvarint(b []byte) (uint64, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || k != len(b) {
		return 0, fmt.Errorf("%w: bad unsigned integer", ErrFormat)
	}
	return n, nil
}

func float(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: bad float", ErrFormat)
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}
