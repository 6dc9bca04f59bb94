package redisx

import "testing"

// The slots Redis's cluster spec and CLUSTER KEYSLOT give for these keys.
func TestSlot(t *testing.T) {
	for key, want := range map[string]int{
		"123456789":            0x31C3, // the spec's CRC16 check value
		"foo":                  12182,
		"{user1000}.following": Slot("user1000"),
		"{}x":                  Slot("{}x"), // an empty tag: the whole key
		"a{b}c{d}":             Slot("b"),
		"":                     0,
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
	if Slot("{}x") == Slot("x") {
		t.Errorf("an empty tag must hash the whole key")
	}
}
