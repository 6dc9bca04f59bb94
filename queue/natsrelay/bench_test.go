package natsrelay_test

import (
	"context"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/natsrelay"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

// BenchmarkRelay measures the relay's throughput against real servers:
// b.N events over 100 keys are enqueued first, then the time until every
// one is in the stream is measured; events/s is the figure to read.
func BenchmarkRelay(b *testing.B) {
	run := func(b *testing.B, backend queue.Backend) {
		nf := startNATS(b)
		keys := 100
		perKey := max(1, b.N/keys)
		n := keys * perKey
		produce(b, backend, keys, perKey)
		r := newRelay(b, natsrelay.Options{Backend: backend, Queue: relayQueue, JetStream: nf.js, Batch: 500, Concurrency: 100})
		b.ResetTimer()
		start := time.Now()
		if err := r.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		for r.Stats().Relayed < int64(n) {
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(n)/el.Seconds(), "events/s")
		r.Close()
	}
	b.Run("redis", func(b *testing.B) {
		f := testinfra.Redis(b)
		backend, err := queueredis.New(queueredis.Options{Client: f.Client, Timeout: testinfra.CallTimeout})
		if err != nil {
			b.Fatal(err)
		}
		run(b, backend)
	})
	b.Run("postgres", func(b *testing.B) {
		f := testinfra.Postgres(b)
		backend, err := queuepg.New(queuepg.Options{Pool: f.Primary})
		if err != nil {
			b.Fatal(err)
		}
		defer backend.Close()
		if err := backend.Migrate(context.Background()); err != nil {
			b.Fatal(err)
		}
		run(b, backend)
	})
}
