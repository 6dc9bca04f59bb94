package batch

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// SizeBuckets are the upper bounds of Stats.BatchSizes: batches of 1, 2,
// 3-4, 5-8, ... 513-1024 keys, and more.
var SizeBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

type stats struct {
	cancelled, batches, keys, fetchErrors, panics, waitNanos atomic.Uint64
	sizes                                                    [len(SizeBuckets) + 1]atomic.Uint64
}

func (s *stats) record(n int) {
	s.batches.Add(1)
	s.keys.Add(uint64(n))
	i := bits.Len(uint(n - 1)) // 1 -> 0, 2 -> 1, 3-4 -> 2, ...
	s.sizes[min(i, len(SizeBuckets))].Add(1)
}

// Stats is a snapshot of a Loader's counters.
type Stats struct {
	// Loads counts keys asked for (LoadMany counts each key).
	Loads uint64
	// Deduped counts loads that joined a key already in the open batch.
	Deduped uint64
	// Cancelled counts callers that left because their ctx ended.
	Cancelled uint64
	// Batches counts fetches started, and Keys the keys they got.
	Batches, Keys uint64
	// BatchSizes[i] counts batches of at most SizeBuckets[i] keys (and
	// more than the bucket before); the last counts bigger ones. Not
	// cumulative.
	BatchSizes [len(SizeBuckets) + 1]uint64
	// FetchErrors counts fetches that returned an error; Panics those that
	// panicked.
	FetchErrors, Panics uint64
	// Wait is the total time batches spent open before their fetch began;
	// Wait / Batches is the mean added latency.
	Wait time.Duration
}

// Stats returns a snapshot of the counters.
func (l *Loader[K, V]) Stats() Stats {
	s := &l.st
	l.mu.Lock()
	loads, deduped := l.loads, l.deduped
	l.mu.Unlock()
	out := Stats{
		Loads: loads, Deduped: deduped, Cancelled: s.cancelled.Load(),
		Batches: s.batches.Load(), Keys: s.keys.Load(), FetchErrors: s.fetchErrors.Load(),
		Panics: s.panics.Load(), Wait: time.Duration(s.waitNanos.Load()),
	}
	for i := range s.sizes {
		out.BatchSizes[i] = s.sizes[i].Load()
	}
	return out
}
