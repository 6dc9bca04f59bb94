package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

const (
	histSubBits  = 8
	histSub      = 1 << histSubBits // buckets per power of two above histExact
	histExact    = 2 * histSub      // values (µs) below this have a bucket each
	histMaxShift = 32               // the top bucket ends at 2^41 µs (25 days)
	histBuckets  = histExact + histMaxShift*histSub
)

// histogram is a log-linear (HDR-style) latency histogram in microseconds:
// exact below 512µs, then 256 buckets per power of two, so a quantile is
// never below the true value and at most 0.4% above it. record is
// lock-free; readers take a snapshot.
type histogram struct {
	counts [histBuckets]atomic.Int64
	maxUS  atomic.Int64
}

func bucketOf(us int64) int {
	if us < histExact {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - (histSubBits + 1) // us>>shift is in [histSub, 2*histSub)
	if shift > histMaxShift {
		return histBuckets - 1
	}
	return histExact + (shift-1)*histSub + int(us>>shift) - histSub
}

// bucketHigh is the highest value (µs) bucket i holds.
func bucketHigh(i int) int64 {
	if i < histExact {
		return int64(i)
	}
	shift := (i-histExact)/histSub + 1
	top := int64((i-histExact)%histSub + histSub)
	return (top+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := int64((d + time.Microsecond - 1) / time.Microsecond) // round up: quantiles never flatter
	h.counts[bucketOf(us)].Add(1)
	for m := h.maxUS.Load(); us > m && !h.maxUS.CompareAndSwap(m, us); m = h.maxUS.Load() {
	}
}

// histSnapshot is a histogram's counts at one moment.
type histSnapshot struct {
	counts []int64
	n      int64
	maxUS  int64
}

func (h *histogram) snapshot() histSnapshot {
	s := histSnapshot{counts: make([]int64, histBuckets), maxUS: h.maxUS.Load()}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] = c
		s.n += c
	}
	return s
}

// quantile returns the q-quantile, q in (0, 1]; 0 when empty.
func (s histSnapshot) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := max(int64(q*float64(s.n)+0.999999), 1)
	var seen int64
	for i, c := range s.counts {
		if seen += c; seen >= rank {
			return time.Duration(min(bucketHigh(i), s.maxUS)) * time.Microsecond
		}
	}
	return time.Duration(s.maxUS) * time.Microsecond
}

// latencyStats is a latency summary.
type latencyStats struct {
	Count              int64
	P50, P95, P99, Max time.Duration
}

func (s histSnapshot) stats() latencyStats {
	return latencyStats{Count: s.n, P50: s.quantile(0.50), P95: s.quantile(0.95), P99: s.quantile(0.99),
		Max: time.Duration(s.maxUS) * time.Microsecond}
}
