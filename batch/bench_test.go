package batch_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/batch"
)

// BenchmarkLoad is the workload of bench/BenchmarkLoad without the peers:
// 64 goroutines per core load distinct keys through a 500µs window with
// batches of up to 100 keys. It also reports the mean batch size.
func BenchmarkLoad(b *testing.B) {
	fetch := func(_ context.Context, keys []int) (map[int]string, error) {
		out := make(map[int]string, len(keys))
		for _, k := range keys {
			out[k] = fmt.Sprint("v", k)
		}
		return out, nil
	}
	l, err := batch.New(fetch, batch.Options{Wait: 500 * time.Microsecond, MaxBatch: 100})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := int(next.Add(1) % 1000)
			if v, err := l.Load(ctx, k); err != nil || v == "" {
				b.Errorf("load %d: %q %v", k, v, err)
				return
			}
		}
	})
	st := l.Stats()
	if st.Batches > 0 {
		b.ReportMetric(float64(st.Keys)/float64(st.Batches), "keys/batch")
	}
}
