package queueredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// holdTurns marks every turn of queue q's Enqueues taken, as if scripts
// were in flight, so that the Enqueues that come wait; the returned func
// ends those turns, sending what waits.
func holdTurns(b *Backend, q string) (release func()) {
	l := b.enqueueLane(q)
	for range enqueueTurns {
		if _, alone := l.turns.Go(func() *pendingEnqueue { panic("a turn was taken") }); !alone {
			panic("a turn was taken")
		}
	}
	return func() {
		for range enqueueTurns {
			if batch := l.turns.Next(); batch != nil {
				go b.drainEnqueues(l, batch)
			}
		}
	}
}

// waiting is how many Enqueues of queue q wait for a turn.
func waiting(b *Backend, q string) int {
	_, n := b.enqueueLane(q).turns.Out()
	return n
}

// Enqueues that come while the queue's turns are taken leave together in
// one script, each with its own job's result as if sent alone, in any
// order: of three with one unique key one is stored and the others get
// the DuplicateError naming it; the same job twice is stored once; two
// different jobs with one id give one ErrInvalid; one whose ctx ended
// before its batch is not stored.
func TestWaitingEnqueuesLeaveInOneScript(t *testing.T) {
	r := testinfra.Redis(t)
	calls := &scriptCalls{}
	client := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true})
	defer client.Close()
	client.AddHook(calls)
	b := newBackend(t, Options{Client: client, Prefix: "turns"})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	// Registers the queue and loads the scripts (a NOSCRIPT reply would
	// cost another call).
	if _, err := c.EnqueueMany(ctx, queue.EnqueueRequest{Queue: "q", Kind: "warm"}); err != nil {
		t.Fatal(err)
	}
	release := holdTurns(b, "q")
	type result struct {
		name, id string
		err      error
	}
	results := make(chan result, 64)
	var wg sync.WaitGroup
	enqueue := func(ctx context.Context, name string, args any, o queue.EnqueueOptions) {
		wg.Go(func() {
			id, err := c.Enqueue(ctx, "q", "k", args, o)
			results <- result{name, id, err}
		})
	}
	for i := range 30 {
		enqueue(ctx, fmt.Sprint("plain", i), i, queue.EnqueueOptions{})
	}
	for i := range 3 {
		enqueue(ctx, fmt.Sprint("unique", i), i, queue.EnqueueOptions{UniqueKey: "u"})
	}
	enqueue(ctx, "same", "x", queue.EnqueueOptions{ID: "same"})
	enqueue(ctx, "same", "x", queue.EnqueueOptions{ID: "same"})
	enqueue(ctx, "clash", "a", queue.EnqueueOptions{ID: "clash"})
	enqueue(ctx, "clash", "b", queue.EnqueueOptions{ID: "clash"})
	gone, cancel := context.WithCancel(ctx)
	enqueue(gone, "gone", "g", queue.EnqueueOptions{ID: "gone"})
	waitFor(t, "38 Enqueues waiting", func() bool { return waiting(b, "q") == 38 })
	cancel()
	waitFor(t, "the cancelled Enqueue returning", func() bool { return len(results) == 1 })
	before := calls.n.Load()
	release()
	wg.Wait()
	close(results)
	if n := calls.n.Load() - before; n != 1 {
		t.Errorf("38 waiting Enqueues took %d scripts, want 1", n)
	}
	var uniqueOK, uniqueDup, clashOK, clashBad int
	var uniqueID string
	var dups []*queue.DuplicateError
	for res := range results {
		switch {
		case strings.HasPrefix(res.name, "plain") || res.name == "same":
			if res.err != nil {
				t.Errorf("%s: %v", res.name, res.err)
			}
		case strings.HasPrefix(res.name, "unique"):
			var d *queue.DuplicateError
			if errors.As(res.err, &d) {
				uniqueDup++
				dups = append(dups, d)
			} else if res.err == nil {
				uniqueOK++
				uniqueID = res.id
			} else {
				t.Errorf("%s: %v", res.name, res.err)
			}
		case res.name == "clash":
			if errors.Is(res.err, queue.ErrInvalid) {
				clashBad++
			} else if res.err == nil {
				clashOK++
			} else {
				t.Errorf("clash: %v", res.err)
			}
		case res.name == "gone":
			if !errors.Is(res.err, context.Canceled) {
				t.Errorf("the Enqueue whose ctx ended before its batch: %v, want context.Canceled", res.err)
			}
		}
	}
	if uniqueOK != 1 || uniqueDup != 2 {
		t.Errorf("three Enqueues with one unique key: %d stored, %d duplicates; want 1 and 2", uniqueOK, uniqueDup)
	}
	for _, d := range dups {
		if d.ID != uniqueID {
			t.Errorf("DuplicateError names %q, the stored job is %q", d.ID, uniqueID)
		}
	}
	if clashOK != 1 || clashBad != 1 {
		t.Errorf("two jobs with one id: %d stored, %d ErrInvalid; want 1 and 1", clashOK, clashBad)
	}
	if _, err := b.Job(ctx, "q", "gone"); !errors.Is(err, queue.ErrNotFound) {
		t.Errorf("the cancelled Enqueue's job: %v, want ErrNotFound", err)
	}
	counts, err := c.Counts(ctx, "q")
	if err != nil || counts.Pending != 1+30+1+1+1 {
		t.Errorf("Counts = %+v, %v; want 34 pending (warm-up, 30, unique, same, clash)", counts, err)
	}
	// The turn is freed after its batch is answered.
	waitFor(t, "the turns freed, none waiting", func() bool {
		out, waiting := b.enqueueLane("q").turns.Out()
		return out == 0 && waiting == 0
	})
}

// Many goroutines enqueue at once (run with -race), some with unique keys
// shared across goroutines: every Enqueue gets an answer, each key holds
// one stored job, every stored job is there, and the Enqueues shared
// scripts.
func TestConcurrentEnqueues(t *testing.T) {
	r := testinfra.Redis(t)
	calls := &scriptCalls{}
	client := redis.NewClient(&redis.Options{Addr: r.Addr(), ContextTimeoutEnabled: true, PoolSize: 64})
	defer client.Close()
	client.AddHook(calls)
	b := newBackend(t, Options{Client: client, Prefix: "hammer"})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	const goroutines, each = 32, 60
	var stored, dup atomic.Int64
	holders := sync.Map{} // unique key -> id stored
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				var o queue.EnqueueOptions
				if i%3 == 0 {
					o.UniqueKey = fmt.Sprint("k", i) // shared by every goroutine
				}
				id, err := c.Enqueue(ctx, "q", "k", g*each+i, o)
				var d *queue.DuplicateError
				switch {
				case err == nil:
					stored.Add(1)
					if o.UniqueKey != "" {
						if prev, loaded := holders.LoadOrStore(o.UniqueKey, id); loaded {
							t.Errorf("unique key %s stored twice: %v and %s", o.UniqueKey, prev, id)
						}
					}
				case errors.As(err, &d):
					dup.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if want := int64(goroutines * each); stored.Load()+dup.Load() != want {
		t.Fatalf("%d stored + %d duplicates, want %d answers", stored.Load(), dup.Load(), want)
	}
	if want := int64(each / 3); dup.Load() != want*(goroutines-1) {
		t.Errorf("%d duplicates, want %d (%d keys, each stored once by %d goroutines)", dup.Load(), want*(goroutines-1), want, goroutines)
	}
	counts, err := c.Counts(ctx, "q")
	if err != nil || int64(counts.Pending) != stored.Load() {
		t.Errorf("Counts = %+v, %v; want %d pending", counts, err, stored.Load())
	}
	t.Logf("%d Enqueues, %d scripts", goroutines*each, calls.n.Load())
	if calls.n.Load() >= goroutines*each {
		t.Errorf("%d Enqueues from %d goroutines took %d scripts: none shared one", goroutines*each, goroutines, calls.n.Load())
	}
}

// On a paused Redis, the Enqueues waiting behind the ones in flight fail
// with them within Timeout, not one Timeout after another.
func TestWaitingEnqueuesFailWithTheTurn(t *testing.T) {
	r := testinfra.Redis(t)
	const timeout = 500 * time.Millisecond // waiting behind the turns that fail, then failing in a batch: 2 x Timeout
	b := newBackend(t, Options{Client: r.Client, Timeout: timeout, Prefix: "pausedturns"})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	if _, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{}); err != nil {
		t.Fatal(err)
	}
	r.Pause()
	defer r.Resume()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 20 {
		wg.Go(func() {
			_, err := c.Enqueue(ctx, "q", "k", nil, queue.EnqueueOptions{})
			if err == nil || !strings.Contains(err.Error(), "did not answer within") {
				t.Errorf("Enqueue on a paused Redis: %v, want a timeout error", err)
				return
			}
			failed.Add(1)
		})
	}
	wg.Wait()
	if d := time.Since(start); d > timeout+300*time.Millisecond {
		t.Errorf("20 Enqueues on a paused Redis took %v, Timeout is %v", d, timeout)
	}
	if failed.Load() != 20 {
		t.Errorf("%d of 20 Enqueues failed", failed.Load())
	}
}
