package dbrouter

import (
	"context"
	"testing"
)

// BenchmarkRoute is the router's own cost per read, without the query:
// one ctx lookup, the healthy set, and the balance.
func BenchmarkRoute(b *testing.B) {
	for _, c := range []struct {
		name string
		o    Options
		tok  bool
	}{
		{"least-in-flight", Options{}, false},
		{"round-robin", Options{Balance: RoundRobin}, false},
		{"token", Options{}, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, _ := newFake(b, c.o, 3)
			defer r.Close()
			ctx := context.Background()
			if c.tok {
				ctx = WithToken(ctx, Token{LSN: 50})
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					rep, _ := r.route(ctx)
					rep.acquire()
					rep.release()
				}
			})
		})
	}
}
