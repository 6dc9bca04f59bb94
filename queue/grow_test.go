package queue

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
)

// growingBackend is a MemoryBackend whose Fetch, like queueredis's,
// grows each request by FetchRequest.Grow before it leases, from
// another goroutine. It keeps every Grow, to call them again once the
// fetches returned (as a backend whose caller left would): they must
// give 0.
type growingBackend struct {
	*MemoryBackend
	grown atomic.Int64
	mu    sync.Mutex
	grows []func(int) int
}

func (g *growingBackend) Fetch(ctx context.Context, r FetchRequest) ([]*Lease, error) {
	if r.Grow != nil {
		done := make(chan int)
		go func() { done <- r.Grow(1000) }()
		n := <-done
		g.grown.Add(int64(n))
		r.Max += n
		g.mu.Lock()
		g.grows = append(g.grows, r.Grow)
		g.mu.Unlock()
	}
	return g.MemoryBackend.Fetch(ctx, r)
}

// A Worker's FetchRequest.Grow hands the backend only the slots that are
// free, from any goroutine, and nothing once the fetch returned: with
// many goroutines completing and fetching (run with -race), no more
// handlers run at once than the queue's Concurrency, and every job runs.
func TestWorkerFetchGrow(t *testing.T) {
	b := &growingBackend{MemoryBackend: NewMemoryBackend(MemoryBackendOptions{})}
	c, _ := NewClient(ClientOptions{Backend: b})
	ctx := context.Background()
	const n, conc = 2000, 6
	for i := 0; i < n; i++ {
		if _, err := c.Enqueue(ctx, "g", "k", i, EnqueueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	w, err := NewWorker(WorkerOptions{Backend: b, FetchWait: 10 * time.Millisecond, Queues: map[string]Options{"g": {Concurrency: conc}}})
	if err != nil {
		t.Fatal(err)
	}
	var running, peak, done atomic.Int64
	Handle(w, "k", func(ctx context.Context, j *Job[int]) error {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		running.Add(-1)
		done.Add(1)
		return nil
	})
	w.Start(ctx)
	poll.Until(t, 20*time.Second, "every job done", func() bool { cnt, _ := c.Counts(ctx, "g"); return cnt.Done == n })
	w.Close()
	if peak.Load() > conc {
		t.Fatalf("%d handlers ran at once, Concurrency is %d", peak.Load(), conc)
	}
	for _, grow := range b.grows {
		if got := grow(1000); got != 0 {
			t.Fatalf("Grow after its fetch returned took %d slots", got)
		}
	}
	if done.Load() != n {
		t.Fatalf("%d handler runs, want %d", done.Load(), n)
	}
	t.Logf("Grow added %d slots to the fetches", b.grown.Load())
}

// growth takes free slots only, and none once closed.
func TestGrowth(t *testing.T) {
	sem := make(chan struct{}, 4)
	sem <- struct{}{}
	g := &growth{sem: sem}
	if got := g.grow(2); got != 2 {
		t.Fatalf("grow(2) with 3 free: %d", got)
	}
	if got := g.grow(5); got != 1 {
		t.Fatalf("grow(5) with 1 free: %d", got)
	}
	if got := g.close(); got != 3 {
		t.Fatalf("close: %d taken, want 3", got)
	}
	<-sem
	if got := g.grow(1); got != 0 || len(sem) != 3 {
		t.Fatalf("grow after close took %d (sem %d)", got, len(sem))
	}
}
