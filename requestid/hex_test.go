package requestid

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// putHex agrees with fmt's %08x on every nibble value at every position
// and on random words.
func TestPutHex(t *testing.T) {
	words := []uint32{0, 1, 9, 10, 15, 0x99999999, 0xaaaaaaaa, 0xffffffff, 0x0123abcd, 0xfedc9876}
	for pos := range 8 {
		for n := range uint32(16) {
			words = append(words, n<<(4*pos))
		}
	}
	for range 10000 {
		words = append(words, rand.Uint32())
	}
	var buf [8]byte
	for _, v := range words {
		putHex(buf[:], v)
		if got, want := string(buf[:]), fmt.Sprintf("%08x", v); got != want {
			t.Fatalf("putHex(%#x) = %q, want %q", v, got, want)
		}
	}
}

func FuzzPutHex(f *testing.F) {
	f.Add(uint32(0xdeadbeef))
	f.Fuzz(func(t *testing.T, v uint32) {
		var buf [8]byte
		putHex(buf[:], v)
		if got, want := string(buf[:]), fmt.Sprintf("%08x", v); got != want {
			t.Fatalf("putHex(%#x) = %q, want %q", v, got, want)
		}
	})
}
