package queuex

import (
	"errors"
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
