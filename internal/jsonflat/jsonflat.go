// Package jsonflat decodes, without encoding/json's scanner and
// reflection walk, the JSON encoding/json.Marshal writes for a flat type:
// a string, bool or number, or a struct of such fields. It decodes only
// the shape Marshal writes (no whitespace, keys spelled as the fields are
// and in their order, no escapes, no null) and declines anything else, so
// a caller falls back to json.Unmarshal: what it accepts, json.Unmarshal
// decodes to the same value, without error (FuzzDecode checks it).
package jsonflat

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Plan decodes one type. It is safe for concurrent use.
type Plan struct {
	t      reflect.Type
	fields []field // a struct's, in Marshal's order; nil for a basic type
	top    field   // a basic type's
}

// field is one struct field (or the basic type itself, at offset 0).
type field struct {
	key  []byte // `"name":`
	off  uintptr
	kind reflect.Kind
	bits int // ints, uints and floats: the size
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	numberType      = reflect.TypeFor[json.Number]()
)

// For returns t's Plan, or nil when t is not flat: a struct whose
// decodable fields are all of basic kinds (no embedded field, no ",string"
// option, no two names equal but for case), or a basic type; neither t nor
// a field's type may decode itself (json.Unmarshaler,
// encoding.TextUnmarshaler) or be json.Number.
func For(t reflect.Type) *Plan {
	if custom(t) {
		return nil
	}
	if t.Kind() != reflect.Struct {
		f, ok := basic(t)
		if !ok {
			return nil
		}
		return &Plan{t: t, top: f}
	}
	p := &Plan{t: t, fields: []field{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		if sf.Anonymous {
			return nil // embedded: promoted fields and their own rules
		}
		if !sf.IsExported() {
			continue // json ignores it; a key of its name declines
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		for opts != "" {
			var o string
			o, opts, _ = strings.Cut(opts, ",")
			if o != "omitempty" && o != "omitzero" {
				return nil // ",string" changes decoding; others are unknown here
			}
		}
		if name == "" {
			name = sf.Name
		}
		if !plainName(name) || custom(sf.Type) {
			return nil
		}
		f, ok := basic(sf.Type)
		if !ok {
			return nil
		}
		for _, g := range p.fields {
			if bytes.EqualFold(g.key, []byte(`"`+name+`":`)) {
				return nil // json's dominance and case-folding rules
			}
		}
		f.key, f.off = []byte(`"`+name+`":`), sf.Offset
		p.fields = append(p.fields, f)
	}
	return p
}

// custom says whether t decodes itself.
func custom(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || t.Implements(textUnmarshaler) || pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler)
}

// plainName: letters, digits and '_' (Marshal writes them as they are).
func plainName(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func basic(t reflect.Type) (field, bool) {
	if t == numberType {
		return field{}, false // json.Unmarshal checks that its string is a number
	}
	switch k := t.Kind(); k {
	case reflect.String, reflect.Bool:
		return field{kind: k}, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return field{kind: k, bits: t.Bits()}, true
	}
	return field{}, false
}

// Decode decodes data into *p, which must be a value of the Plan's type
// holding its zero value, and reports whether it did. When it declines,
// *p may hold part of the data: the caller zeroes it before falling back
// to json.Unmarshal.
func (p *Plan) Decode(data []byte, v unsafe.Pointer) bool {
	if p.fields == nil {
		n, ok := p.top.value(data, v)
		return ok && n == len(data)
	}
	if len(data) < 2 || data[0] != '{' {
		return false
	}
	if len(data) == 2 {
		return data[1] == '}'
	}
	i, next := 1, 0
	for {
		rest := data[i:]
		f := -1
		for j := next; j < len(p.fields); j++ {
			if bytes.HasPrefix(rest, p.fields[j].key) {
				f = j
				break
			}
		}
		if f < 0 {
			return false // unknown, out of order, repeated or spelled otherwise
		}
		fd := &p.fields[f]
		i += len(fd.key)
		n, ok := fd.value(data[i:], unsafe.Add(v, fd.off))
		if !ok {
			return false
		}
		i += n
		if i >= len(data) {
			return false
		}
		switch data[i] {
		case '}':
			return i+1 == len(data)
		case ',':
			i++
			next = f + 1
		default:
			return false
		}
	}
}

// value decodes the JSON value at the start of b into the field at p and
// returns its length, or false to decline.
func (f *field) value(b []byte, p unsafe.Pointer) (int, bool) {
	switch f.kind {
	case reflect.String:
		n, s, ok := str(b)
		if ok && len(s) > 0 {
			*(*string)(p) = string(s)
		}
		return n, ok
	case reflect.Bool:
		switch {
		case bytes.HasPrefix(b, []byte("true")):
			*(*bool)(p) = true
			return 4, true
		case bytes.HasPrefix(b, []byte("false")):
			return 5, true // *p is false
		}
		return 0, false
	case reflect.Float32, reflect.Float64:
		n := number(b)
		if n == 0 {
			return 0, false
		}
		x, err := strconv.ParseFloat(string(b[:n]), f.bits)
		if err != nil {
			return 0, false
		}
		if f.bits == 32 {
			*(*float32)(p) = float32(x)
		} else {
			*(*float64)(p) = x
		}
		return n, true
	}
	// integers: an optional '-' (ints) and digits, no fraction or
	// exponent, within range (json.Unmarshal reports anything else)
	if len(b) == 0 {
		return 0, false
	}
	neg := b[0] == '-'
	i := 0
	if neg {
		if f.kind >= reflect.Uint {
			return 0, false
		}
		i++
	}
	start := i
	var u uint64
	for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		if u > (math.MaxUint64-9)/10 {
			return 0, false
		}
		u = u*10 + uint64(b[i]-'0')
	}
	switch {
	case i == start, b[start] == '0' && i > start+1: // no digits, leading zero
		return 0, false
	case i < len(b) && (b[i] == '.' || b[i] == 'e' || b[i] == 'E'):
		return 0, false
	}
	if f.kind >= reflect.Uint {
		if f.bits < 64 && u >= 1<<f.bits {
			return 0, false
		}
		store(p, f.bits, u)
		return i, true
	}
	lim := uint64(1) << (f.bits - 1) // |min|; max is lim-1
	if neg && u > lim || !neg && u >= lim {
		return 0, false
	}
	if neg {
		u = -u // two's complement: for u == lim, the minimum
	}
	store(p, f.bits, u)
	return i, true
}

// store writes the low bits of u, an integer of that size, at p.
func store(p unsafe.Pointer, bits int, u uint64) {
	switch bits {
	case 8:
		*(*uint8)(p) = uint8(u)
	case 16:
		*(*uint16)(p) = uint16(u)
	case 32:
		*(*uint32)(p) = uint32(u)
	default:
		*(*uint64)(p) = u
	}
}

// str reads a string without escapes or control characters, in valid
// UTF-8 (json.Unmarshal keeps such bytes as they are): its length in b
// and its content.
func str(b []byte) (int, []byte, bool) {
	if len(b) == 0 || b[0] != '"' {
		return 0, nil, false
	}
	q := bytes.IndexByte(b[1:], '"')
	if q < 0 {
		return 0, nil, false
	}
	s := b[1 : 1+q]
	if !plainString(s) {
		return 0, nil, false
	}
	return q + 2, s, true
}

// plainString says whether s, the bytes between two quotes, is a JSON
// string's content as it is: no backslash, no control character, valid
// UTF-8. It tests eight bytes at a time: a word with no byte under 0x20
// or over 0x7f, and no backslash, is plain.
func plainString(s []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	i := 0
	for ; i+8 <= len(s); i += 8 {
		x := binary.LittleEndian.Uint64(s[i:])
		under := x - ones*0x20 // a byte < 0x20 (none >= 0x80) sets its high bit
		bs := x ^ ones*'\\'
		slash := (bs - ones) &^ bs // a zero byte in bs, a '\\' in x, sets a high bit
		if (under|x|slash)&highs != 0 {
			return plainBytes(s)
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '\\' || c >= utf8.RuneSelf {
			return plainBytes(s)
		}
	}
	return true
}

// plainBytes is plainString byte by byte.
func plainBytes(s []byte) bool {
	high := false
	for _, c := range s {
		switch {
		case c < 0x20 || c == '\\':
			return false
		case c >= utf8.RuneSelf:
			high = true
		}
	}
	return !high || utf8.Valid(s) // json.Unmarshal replaces bad bytes with U+FFFD
}

// number is the length of the JSON number at the start of b, 0 when there
// is none.
func number(b []byte) int {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
	default:
		return 0
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
		if i == d {
			return 0
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for ; i < len(b) && '0' <= b[i] && b[i] <= '9'; i++ {
		}
		if i == d {
			return 0
		}
	}
	return i
}
