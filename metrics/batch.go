package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/batch"
)

type batchDescs struct {
	loads, deduped, cancelled, fetchKeys, fetchErrors, fetchPanics, wait *prometheus.Desc
}

func newBatchDescs(b *builder) batchDescs {
	return batchDescs{
		loads:       b.desc("scalekit_batch_loads_total", "Keys asked of the batcher (LoadMany counts each key)."),
		deduped:     b.desc("scalekit_batch_deduped_total", "Loads that joined a key already in the open batch."),
		cancelled:   b.desc("scalekit_batch_cancelled_total", "Callers that left because their ctx ended."),
		fetchKeys:   b.desc("scalekit_batch_fetch_keys", "Keys per fetch (batch size); _count is the fetches started and _sum the keys they got."),
		fetchErrors: b.desc("scalekit_batch_fetch_errors_total", "Fetches that returned an error."),
		fetchPanics: b.desc("scalekit_batch_fetch_panics_total", "Fetches that panicked."),
		wait:        b.desc("scalekit_batch_wait_seconds_total", "Total time batches spent open before their fetch began; divided by the fetches, the mean latency batching adds."),
	}
}

// AddBatch reports the Stats of a batcher (any *batch.Loader[K, V]) under
// name.
func (c *Collector) AddBatch(name string, l interface{ Stats() batch.Stats }) error {
	if isNil(l) {
		return nilArg("AddBatch", "the loader")
	}
	d := &c.batch
	return c.add("AddBatch", named{"batch loader", name}, func(ch chan<- prometheus.Metric) {
		st := l.Stats()
		counter(ch, d.loads, st.Loads, name)
		counter(ch, d.deduped, st.Deduped, name)
		counter(ch, d.cancelled, st.Cancelled, name)
		// BatchSizes is per bucket, with one more for the bigger batches;
		// Prometheus wants cumulative counts. The count is their total
		// (rather than st.Batches, read at another instant) so +Inf always
		// equals it.
		buckets := make(map[float64]uint64, len(batch.SizeBuckets))
		var n uint64
		for i, le := range batch.SizeBuckets {
			n += st.BatchSizes[i]
			buckets[float64(le)] = n
		}
		n += st.BatchSizes[len(batch.SizeBuckets)]
		m, err := prometheus.NewConstHistogram(d.fetchKeys, n, float64(st.Keys), buckets, name)
		if err != nil {
			m = prometheus.NewInvalidMetric(d.fetchKeys, err)
		}
		ch <- m
		counter(ch, d.fetchErrors, st.FetchErrors, name)
		counter(ch, d.fetchPanics, st.Panics, name)
		emit(ch, d.wait, prometheus.CounterValue, st.Wait.Seconds(), name)
	})
}
