package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/batch"
)

var batchFamilies = []family[batch.Stats]{
	counter("scalekit_batch_loads_total", "Keys asked of the batcher (LoadMany counts each key).", func(s batch.Stats) uint64 { return s.Loads }),
	counter("scalekit_batch_deduped_total", "Loads that joined a key already in the open batch.", func(s batch.Stats) uint64 { return s.Deduped }),
	counter("scalekit_batch_cancelled_total", "Callers that left because their ctx ended.", func(s batch.Stats) uint64 { return s.Cancelled }),
	{name: "scalekit_batch_fetch_keys", help: "Keys per fetch (batch size); _count is the fetches started and _sum the keys they got.",
		send: fetchKeys},
	counter("scalekit_batch_fetch_errors_total", "Fetches that returned an error.", func(s batch.Stats) uint64 { return s.FetchErrors }),
	counter("scalekit_batch_fetch_panics_total", "Fetches that panicked.", func(s batch.Stats) uint64 { return s.Panics }),
	counter("scalekit_batch_wait_seconds_total", "Total time batches spent open before their fetch began; divided by the fetches, the mean latency batching adds.", func(s batch.Stats) float64 { return s.Wait.Seconds() }),
}

// fetchKeys sends the histogram of batch sizes. BatchSizes is per bucket,
// with one more for the bigger batches; Prometheus wants cumulative counts.
// The count is their total (rather than st.Batches, read at another
// instant) so +Inf always equals it.
func fetchKeys(o out, st batch.Stats) {
	buckets := make(map[float64]uint64, len(batch.SizeBuckets))
	var n uint64
	for i, le := range batch.SizeBuckets {
		n += st.BatchSizes[i]
		buckets[float64(le)] = n
	}
	n += st.BatchSizes[len(batch.SizeBuckets)]
	m, err := prometheus.NewConstHistogram(o.desc, n, float64(st.Keys), buckets, o.labels[:o.n]...)
	if err != nil {
		m = prometheus.NewInvalidMetric(o.desc, err)
	}
	o.ch <- m
}

// AddBatch reports the Stats of a batcher (any *batch.Loader[K, V]) under
// name.
func (c *Collector) AddBatch(name string, l interface{ Stats() batch.Stats }) error {
	return addStats(c, "AddBatch", "the loader", l, named{"batch loader", name}, &c.batch)
}
