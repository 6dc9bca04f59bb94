package queuex

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	invalid := errors.New("x: invalid")
	for _, ok := range []string{"a", "emails", "email:welcome", "a_b.c-d", strings.Repeat("x", 100)} {
		if err := CheckName(invalid, "queue", ok); err != nil || !ValidName(ok) {
			t.Fatalf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a b", "é", "a/b", strings.Repeat("x", 101)} {
		err := CheckName(invalid, "kind", bad)
		if !errors.Is(err, invalid) || !strings.Contains(err.Error(), "kind") || ValidName(bad) {
			t.Fatalf("%q: %v, want an error wrapping the sentinel and naming what was checked", bad, err)
		}
	}
}

// ValidName agrees with the rule written as a regular expression, on
// every string of the fuzzer's and on the edges.
func FuzzValidName(f *testing.F) {
	re := regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)
	for _, s := range []string{"", "a", "a b", "é", "A-Z_0.9:", strings.Repeat("x", 100), strings.Repeat("x", 101), "\x00", "a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidName(s), re.MatchString(s); got != want {
			t.Fatalf("ValidName(%q) = %v, the rule says %v", s, got, want)
		}
	})
}

func BenchmarkValidName(b *testing.B) {
	re := regexp.MustCompile(`^[A-Za-z0-9_.:-]{1,100}$`)
	name := "email:welcome-digest.v2"
	b.Run("loop", func(b *testing.B) {
		for b.Loop() {
			ValidName(name)
		}
	})
	b.Run("regexp", func(b *testing.B) {
		for b.Loop() {
			re.MatchString(name)
		}
	})
}
