package shard

import (
	"encoding/binary"
	"testing"

	"github.com/scalekit-go/scalekit/dbrouter"
)

var sinkRouter *dbrouter.Router

// BenchmarkShardRoute is For(key) plus the routing decision: hash the key,
// load the map, pick the cluster.
func BenchmarkShardRoute(b *testing.B) {
	r := mustNew(b, Options{Map: EvenMap(1, 1024, "a", "b", "c"), Clusters: fakeClusters("a", "b", "c")})
	b.Run("int64", func(b *testing.B) {
		b.ReportAllocs()
		for i := range b.N {
			rt, _ := r.For(Int64(int64(i)))
			sinkRouter = rt.Router
		}
	})
	b.Run("string", func(b *testing.B) {
		b.ReportAllocs()
		s := "tenant-0123456789"
		for range b.N {
			rt, _ := r.For(String(s))
			sinkRouter = rt.Router
		}
	})
	b.Run("uuid", func(b *testing.B) {
		b.ReportAllocs()
		ids := make([][16]byte, 1024) // keys read from memory, as from rows
		for i := range ids {
			binary.BigEndian.PutUint64(ids[i][8:], uint64(i)*0x9e3779b97f4a7c15)
			ids[i][6] = 0x40
		}
		for i := range b.N {
			rt, _ := r.For(UUID(ids[i&1023]))
			sinkRouter = rt.Router
		}
	})
	// The baseline the issue warns against: id % clusters into a slice,
	// no hash and no map (and every key moves when a cluster is added).
	b.Run("baseline-modulo", func(b *testing.B) {
		b.ReportAllocs()
		cs := []*dbrouter.Router{new(dbrouter.Router), new(dbrouter.Router), new(dbrouter.Router)}
		for i := range b.N {
			sinkRouter = cs[uint64(i)%uint64(len(cs))]
		}
	})
	b.Run("int64-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var i int64
			var s *dbrouter.Router
			for pb.Next() {
				i++
				rt, _ := r.For(Int64(i))
				s = rt.Router
			}
			_ = s
		})
	})
}
