package token

import "testing"

func TestNewIsUnique(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		tok := New()
		if tok == "" || seen[tok] {
			t.Fatalf("token %q repeated or empty after %d", tok, i)
		}
		seen[tok] = true
	}
}
