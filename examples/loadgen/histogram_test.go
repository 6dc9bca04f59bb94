package main

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The histogram's quantiles are never below the exact ones and at most
// 1/256 (plus the 1µs rounding) above.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	var exact []time.Duration
	for range 20_000 {
		d := time.Duration(rand.ExpFloat64() * float64(20*time.Millisecond))
		if rand.IntN(100) == 0 {
			d = time.Duration(rand.Int64N(int64(30 * time.Second)))
		}
		h.record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	s := h.snapshot()
	for _, q := range []float64{0.001, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		want := exact[max(int(q*float64(len(exact))+0.999999), 1)-1]
		got := s.quantile(q)
		if got < want.Truncate(time.Microsecond) || float64(got) > float64(want)*(1+1.0/256)+float64(time.Microsecond) {
			t.Errorf("q%g: %v, exact %v", q, got, want)
		}
	}
	if s.n != 20_000 || time.Duration(s.maxUS)*time.Microsecond < exact[len(exact)-1] {
		t.Errorf("n %d, max %dµs (exact %v)", s.n, s.maxUS, exact[len(exact)-1])
	}
	for i := range histBuckets - 1 {
		if bucketOf(bucketHigh(i)) != i || bucketOf(bucketHigh(i)+1) != i+1 {
			t.Fatalf("bucket %d: high %d maps to %d, +1 to %d", i, bucketHigh(i), bucketOf(bucketHigh(i)), bucketOf(bucketHigh(i)+1))
		}
	}
	if (histSnapshot{counts: make([]int64, histBuckets)}).quantile(0.99) != 0 {
		t.Error("an empty histogram's p99 is not 0")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(rand.Int64N(int64(time.Second)))
		for pb.Next() {
			h.record(d)
		}
	})
}
