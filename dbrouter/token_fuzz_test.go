package dbrouter

import (
	"errors"
	"testing"
)

// FuzzParseToken: ParseToken never panics, fails only with ErrInvalid, and
// what it accepts round-trips through String (String's form may differ
// from the input, "0/1@0" and "0/01@0", but parses to the same Token).
func FuzzParseToken(f *testing.F) {
	for _, s := range []string{"", "0/3000148@1767225600123", "0/3000148@1767225600123@2", "16/B374D848@0", "0/0@0@1",
		"FFFFFFFF/FFFFFFFF@9223372036854775807@4294967295", "0/1@5@0", "@", "0/1@@", "0/1@1@1@1", "0/1@-1", "1/2@+3@+4"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("ParseToken(%q) error %v does not wrap ErrInvalid", s, err)
			}
			return
		}
		again, err := ParseToken(tok.String())
		if err != nil {
			t.Fatalf("ParseToken(%q) = %+v, whose String %q does not parse: %v", s, tok, tok.String(), err)
		}
		if tok.IsZero() {
			if !again.IsZero() {
				t.Fatalf("zero token %q round-tripped to %+v", s, again)
			}
			return
		}
		if again.LSN != tok.LSN || !again.Time.Equal(tok.Time) || again.Timeline != tok.Timeline {
			t.Fatalf("ParseToken(%q) = %+v; String %q parses to %+v", s, tok, tok.String(), again)
		}
	})
}
