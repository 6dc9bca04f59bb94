package jsonflat

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
	"unsafe"
)

type flat struct {
	ID    int
	Name  string
	Email string `json:"email,omitempty"`
	OK    bool
	F     float64
	F32   float32
	I8    int8
	U16   uint16
	U     uint64
	I64   int64 `json:",omitzero"`
	//lint:ignore U1000 an unexported field json skips: a key of its name declines
	hidden int
	Skip   string `json:"-"`
}

type level string

type upper string

func (u *upper) UnmarshalText(b []byte) error { *u = upper(b) + "!"; return nil }

// types are what the differential checks run over: the struct and the
// basic kinds at the top.
var types = []reflect.Type{
	reflect.TypeFor[flat](), reflect.TypeFor[string](), reflect.TypeFor[level](), reflect.TypeFor[int](),
	reflect.TypeFor[int8](), reflect.TypeFor[uint8](), reflect.TypeFor[uint64](), reflect.TypeFor[float32](),
	reflect.TypeFor[float64](), reflect.TypeFor[bool](), reflect.TypeFor[struct{}](), reflect.TypeFor[struct{ a int }](),
}

// check decodes data into a new t with p and, when p accepts it, with
// json.Unmarshal: json.Unmarshal must succeed with the same value.
func check(t *testing.T, p *Plan, typ reflect.Type, data []byte) bool {
	t.Helper()
	got := reflect.New(typ).Elem()
	if !p.Decode(data, got.Addr().UnsafePointer()) {
		return false
	}
	want := reflect.New(typ)
	if err := json.Unmarshal(data, want.Interface()); err != nil {
		t.Fatalf("%v: Decode accepted %q, json.Unmarshal fails: %v", typ, data, err)
	}
	if g, w := got.Interface(), want.Elem().Interface(); !reflect.DeepEqual(g, w) || !sameFloats(got, want.Elem()) {
		t.Fatalf("%v: Decode(%q) = %#v, json.Unmarshal = %#v", typ, data, g, w)
	}
	return true
}

// sameFloats compares float fields bit by bit (DeepEqual says -0 == 0).
func sameFloats(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Struct:
		for i := range a.NumField() {
			if a.Type().Field(i).IsExported() && !sameFloats(a.Field(i), b.Field(i)) {
				return false
			}
		}
	}
	return true
}

var seeds = []string{
	`{}`, `null`, ` {}`, `{} `, `{"ID":1}`, `{"ID":-0}`, `{"ID":01}`, `{"ID":1.0}`, `{"ID":1e2}`, `{"ID":-}`,
	`{"ID":9223372036854775807}`, `{"ID":9223372036854775808}`, `{"ID":-9223372036854775808}`, `{"ID":-9223372036854775809}`,
	`{"I8":127}`, `{"I8":128}`, `{"I8":-128}`, `{"I8":-129}`, `{"U16":65535}`, `{"U16":65536}`, `{"U16":-1}`,
	`{"U":18446744073709551615}`, `{"U":18446744073709551616}`, `{"U":1844674407370955161}`,
	`{"F":1.5e300}`, `{"F":-0}`, `{"F":-0.0}`, `{"F":1e400}`, `{"F32":1e40}`, `{"F32":3.4e38}`, `{"F":.5}`, `{"F":1.}`, `{"F":1e}`, `{"F":0.1e-2}`,
	`{"Name":"Ada"}`, `{"Name":""}`, `{"Name":"é"}`, "{\"Name\":\"\xff\"}", "{\"Name\":\"\xed\xa0\x80\"}", `{"Name":"a\"b"}`, `{"Name":"\u00e9"}`,
	"{\"Name\":\"a\tb\"}", `{"Name":1}`, `{"Name":null}`, `{"Name":"x","Name":"y"}`, `{"name":"x"}`, `{"NAME":"x"}`,
	`{"Name":"y","ID":1}`, `{"ID":1,"Name":"y"}`, `{"ID":1,}`, `{"ID":1`, `{"ID":1}}`, `{"ID":1 }`, `{"ID" :1}`,
	`{"email":"a@b"}`, `{"Email":"a@b"}`, `{"OK":true}`, `{"OK":false}`, `{"OK":tru}`, `{"OK":1}`, `{"OK":truex}`,
	`{"Skip":"x"}`, `{"hidden":1}`, `{"I64":5}`, `{"Other":1}`,
	`"Ada"`, `""`, `"a`, `1`, `-1`, `255`, `256`, `-0`, `1.5`, `true`, `false`, `0`, `00`, `1 `, `"é"`,
}

func TestAgainstUnmarshal(t *testing.T) {
	for _, typ := range types {
		p := For(typ)
		if p == nil {
			t.Fatalf("For(%v) = nil", typ)
		}
		for _, s := range seeds {
			check(t, p, typ, []byte(s))
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	b, _ := json.Marshal(flat{ID: -42, Name: "Ada Lovelace", Email: "ada@example.com", OK: true, F: 0.1, F32: 3.25, I8: -8, U16: 9, U: 1 << 63, I64: math.MinInt64})
	f.Add(b)
	plans := make([]*Plan, len(types))
	for i, typ := range types {
		plans[i] = For(typ)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for i, typ := range types {
			check(t, plans[i], typ, data)
		}
	})
}

// TestMarshalled: what json.Marshal writes for a flat value is decoded by
// the Plan (not left to json.Unmarshal), to the same value.
func TestMarshalled(t *testing.T) {
	p := For(reflect.TypeFor[flat]())
	for _, v := range []flat{
		{},
		{ID: 4242, Name: "Ada Lovelace", Email: "ada.lovelace@example.com", OK: true},
		{ID: math.MinInt, Name: "Grüße, 世界", F: -1.25e-300, F32: math.MaxFloat32, I8: math.MinInt8, U16: math.MaxUint16, U: math.MaxUint64 / 10, I64: math.MaxInt64},
		{F: math.Copysign(0, -1), F32: 1e-45},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !check(t, p, reflect.TypeFor[flat](), b) {
			t.Errorf("Decode declined %s", b)
		}
	}
}

type embedded struct{ flat }

type tagged struct {
	N int `json:",string"`
}

type withPointer struct{ P *int }

type withTime struct{ T time.Time }

type withText struct{ U upper }

type folded struct {
	A int `json:"x"`
	B int `json:"X"`
}

type oddTag struct {
	A int `json:"a-b"`
}

type unicodeName struct{ Größe int }

type withNumber struct{ N json.Number }

func TestNotFlat(t *testing.T) {
	for _, typ := range []reflect.Type{
		reflect.TypeFor[embedded](), reflect.TypeFor[tagged](), reflect.TypeFor[withPointer](), reflect.TypeFor[withTime](),
		reflect.TypeFor[withText](), reflect.TypeFor[upper](), reflect.TypeFor[time.Time](), reflect.TypeFor[folded](),
		reflect.TypeFor[oddTag](), reflect.TypeFor[unicodeName](), reflect.TypeFor[[]int](), reflect.TypeFor[map[string]int](),
		reflect.TypeFor[*flat](), reflect.TypeFor[any](), reflect.TypeFor[json.RawMessage](), reflect.TypeFor[uintptr](),
		reflect.TypeFor[json.Number](), reflect.TypeFor[withNumber](),
	} {
		if p := For(typ); p != nil {
			t.Errorf("For(%v) = a Plan; want nil", typ)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data, _ := json.Marshal(struct {
		ID               int
		Name, Email, Bio string
	}{4242, "Ada Lovelace", "ada.lovelace@example.com", "Wrote the first published program, for the Analytical Engine."})
	type user struct {
		ID               int
		Name, Email, Bio string
	}
	p := For(reflect.TypeFor[user]())
	b.Run("jsonflat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var u user
			if !p.Decode(data, unsafe.Pointer(&u)) {
				b.Fatal("declined")
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var u user
			if err := json.Unmarshal(data, &u); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzPlainString: the word-at-a-time test agrees with the byte loop.
func FuzzPlainString(f *testing.F) {
	for _, s := range []string{"", "Ada Lovelace", "ada.lovelace@example.com", "12345678\\", "1234567\x1f9", "abcdefgh\x7f", "abcdefg\x80", "Grüße, 世界!!", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "a\\b", " !\"#$%&'()*+,-./0123456789:;<=>?@[]^_`{|}~"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, s []byte) {
		if got, want := plainString(s), plainBytes(s); got != want {
			t.Fatalf("plainString(%q) = %v, plainBytes = %v", s, got, want)
		}
	})
}

func TestPlainStringEveryByte(t *testing.T) {
	for c := range 256 {
		for at := range 16 {
			s := []byte("abcdefghijklmnop")
			s[at] = byte(c)
			if got, want := plainString(s), plainBytes(s); got != want {
				t.Fatalf("plainString(%q) = %v, plainBytes = %v", s, got, want)
			}
		}
	}
}
