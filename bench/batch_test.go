package bench

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graph-gophers/dataloader/v7"
	"github.com/vikstrous/dataloadgen"

	"github.com/scalekit-go/scalekit/batch"
)

// The same workload for every loader: 64 goroutines per core load keys
// from one shared sequence over 1000 (so the keys in flight are distinct;
// dataloadgen does not deduplicate and would flush early on repeated keys,
// scalekit would wait the window for distinct ones), scalekit and dataloadgen
// get the same map-returning fetch (graph-gophers only takes a slice of
// results, built from the same values), the batch window is 500µs with up to 100 keys, and the
// fetch builds the values for its keys (the same work for all). Peers'
// result caches are off: scalekit's Loader is not a cache, and a cache
// would measure map hits instead of batching.
const (
	batchKeys   = 1000
	batchWait   = 500 * time.Microsecond
	batchMax    = 100
	batchGorout = 64
)

func fetchValues(keys []int) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = fmt.Sprint("v", k)
	}
	return out
}

// fetchMap is the fetch scalekit and dataloadgen (its mapped form) share:
// one map per batch, as a `WHERE id = ANY($1)` query would fill.
func fetchMap(_ context.Context, keys []int) (map[int]string, error) {
	vals := fetchValues(keys)
	out := make(map[int]string, len(keys))
	for i, k := range keys {
		out[k] = vals[i]
	}
	return out, nil
}

func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	run := func(b *testing.B, load func(k int) (string, error)) {
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(batchGorout)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				// One shared sequence: the keys in flight are distinct, as
				// when many requests each want their own rows.
				k := int(next.Add(1) % batchKeys)
				if v, err := load(k); err != nil || v == "" {
					b.Errorf("load %d: %q %v", k, v, err)
					return
				}
			}
		})
	}
	b.Run("scalekit", func(b *testing.B) {
		l, err := batch.New(fetchMap, batch.Options{Wait: batchWait, MaxBatch: batchMax})
		if err != nil {
			b.Fatal(err)
		}
		run(b, func(k int) (string, error) { return l.Load(ctx, k) })
	})
	b.Run("dataloadgen", func(b *testing.B) {
		l := dataloadgen.NewMappedLoader(fetchMap, dataloadgen.WithWait(batchWait), dataloadgen.WithBatchCapacity(batchMax), dataloadgen.WithoutCache())
		run(b, func(k int) (string, error) { return l.Load(ctx, k) })
	})
	b.Run("graphgophers", func(b *testing.B) {
		l := dataloader.NewBatchedLoader(func(ctx context.Context, keys []int) []*dataloader.Result[string] {
			vals := fetchValues(keys)
			out := make([]*dataloader.Result[string], len(keys))
			for i := range keys {
				out[i] = &dataloader.Result[string]{Data: vals[i]}
			}
			return out
		}, dataloader.WithWait[int, string](batchWait), dataloader.WithBatchCapacity[int, string](batchMax),
			dataloader.WithCache[int, string](&dataloader.NoCache[int, string]{}))
		run(b, func(k int) (string, error) { return l.Load(ctx, k)() })
	})
}
