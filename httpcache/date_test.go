package httpcache

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestFormatDate(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 10000; i++ {
		tm := time.Unix(r.Int64N(253402300799), 0) // years 1970-9999
		if got, want := formatDate(tm), tm.UTC().Format(http.TimeFormat); got != want {
			t.Fatalf("formatDate(%v) = %q, want %q", tm, got, want)
		}
	}
}
