package slo

import "testing"

func BenchmarkRecord(b *testing.B) {
	s, _ := New(Options{Name: "api", Target: 0.999})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.Record(i%100 != 0)
			i++
		}
	})
}
