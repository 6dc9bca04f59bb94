package stripe

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestCounterHammer(t *testing.T) {
	var c Counter
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10_000; i++ {
				c.Add(1)
			}
		}()
	}
	wg.Wait()
	c.Add(5)
	if got := c.Load(); got != 640_005 {
		t.Fatalf("Load = %d, want 640005", got)
	}
	if a := testing.AllocsPerRun(1000, func() { c.Add(1) }); a != 0 {
		t.Fatalf("Add: %v allocs", a)
	}
}

func BenchmarkCounter(b *testing.B) {
	b.Run("stripe", func(b *testing.B) {
		var c Counter
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
	b.Run("atomic", func(b *testing.B) {
		var c atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				c.Add(1)
			}
		})
	})
}
