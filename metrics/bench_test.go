package metrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/metrics"
)

// BenchmarkGather is the cost of one scrape of a Collector holding one
// primitive of every kind (some 210 series), through a registry.
func BenchmarkGather(b *testing.B) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(everything(b, metrics.Options{Instance: "api-1"}))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollect is the Collector's own share: reading the snapshots
// and making the metrics, without the registry's encoding.
func BenchmarkCollect(b *testing.B) {
	m := everything(b, metrics.Options{Instance: "api-1"})
	ch := make(chan prometheus.Metric, 1024)
	b.ReportAllocs()
	for b.Loop() {
		m.Collect(ch)
		for len(ch) > 0 {
			<-ch
		}
	}
}
