package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// recorder is a fetch that records its batches and returns "v<key>" for
// every key but those in missing.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	missing map[int]bool
	delay   time.Duration
}

func (r *recorder) fetch(ctx context.Context, keys []int) (map[int]string, error) {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(keys))
	r.mu.Unlock()
	if r.delay > 0 {
		time.Sleep(r.delay)
	}
	out := map[int]string{}
	for _, k := range keys {
		if !r.missing[k] {
			out[k] = fmt.Sprint("v", k)
		}
	}
	return out, nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

func newLoader(t *testing.T, fetch func(context.Context, []int) (map[int]string, error), o Options) *Loader[int, string] {
	t.Helper()
	l, err := New(fetch, o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCoalescesIntoCeilUniqueOverMaxBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{delay: 5 * time.Millisecond} // a query takes time
		l := newLoader(t, rec.fetch, Options{MaxBatch: 10, Wait: 5 * time.Millisecond})
		// 100 goroutines ask for keys 0..24 (overlapping): 25 unique keys.
		// A key already being fetched is joined, not fetched again.
		var wg sync.WaitGroup
		for g := 0; g < 100; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				k := g % 25
				v, err := l.Load(context.Background(), k)
				if err != nil || v != fmt.Sprint("v", k) {
					t.Errorf("Load(%d) = %q, %v", k, v, err)
				}
			}()
		}
		wg.Wait()
		if got := rec.count(); got != 3 { // ceil(25/10)
			t.Fatalf("%d fetches for 25 unique keys with MaxBatch 10, want 3: %v", got, rec.batches)
		}
		seen := map[int]int{}
		for _, b := range rec.batches {
			if len(b) > 10 {
				t.Fatalf("batch of %d keys exceeds MaxBatch", len(b))
			}
			for _, k := range b {
				seen[k]++
			}
		}
		for k := 0; k < 25; k++ {
			if seen[k] != 1 {
				t.Fatalf("key %d fetched %d times, want once", k, seen[k])
			}
		}
		st := l.Stats()
		if st.Loads != 100 || st.Deduped != 75 || st.Batches != 3 || st.Keys != 25 {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestWaitWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		l := newLoader(t, rec.fetch, Options{Wait: 10 * time.Millisecond})
		start := time.Now()
		go l.Load(context.Background(), 1)
		time.Sleep(6 * time.Millisecond)
		go l.Load(context.Background(), 2) // joins the open batch
		time.Sleep(3 * time.Millisecond)
		synctest.Wait()
		if rec.count() != 0 {
			t.Fatal("fetched before the window closed")
		}
		v, err := l.Load(context.Background(), 3)
		if err != nil || v != "v3" {
			t.Fatal(v, err)
		}
		if el := time.Since(start); el != 10*time.Millisecond {
			t.Fatalf("batch fetched after %v, want exactly Wait = 10ms", el)
		}
		if len(rec.batches) != 1 || len(rec.batches[0]) != 3 {
			t.Fatalf("batches %v, want one of 3 keys", rec.batches)
		}
	})
}

func TestIdleFlushesWhenCallersGoQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		l := newLoader(t, rec.fetch, Options{Wait: 50 * time.Millisecond, Idle: 2 * time.Millisecond})
		start := time.Now()
		go l.Load(context.Background(), 1)
		time.Sleep(time.Millisecond)
		if _, err := l.Load(context.Background(), 2); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el != 3*time.Millisecond {
			t.Fatalf("flushed after %v, want 3ms (2ms after the last key)", el)
		}
		// A steady trickle (a key every 1ms, never idle for 2ms) still flushes
		// by Wait: keys at t=0..10ms, then t=11..19ms.
		rec2 := &recorder{}
		l2 := newLoader(t, rec2.fetch, Options{Wait: 10*time.Millisecond + 500*time.Microsecond, Idle: 2 * time.Millisecond})
		var wg sync.WaitGroup
		for i := 0; i < 20; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); l2.Load(context.Background(), i) }()
			time.Sleep(time.Millisecond)
		}
		wg.Wait()
		if len(rec2.batches) != 2 || len(rec2.batches[0]) != 11 || len(rec2.batches[1]) != 9 {
			t.Fatalf("trickle batches %v, want 11 keys cut at Wait, then 9", rec2.batches)
		}
	})
}

func TestMaxBatchFlushesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		l := newLoader(t, rec.fetch, Options{Wait: time.Hour, MaxBatch: 3})
		start := time.Now()
		vals, errs := l.LoadMany(context.Background(), []int{1, 2, 3})
		if time.Since(start) != 0 || vals[2] != "v3" || errs[0] != nil {
			t.Fatalf("LoadMany of MaxBatch keys: %v %v after %v, want at once", vals, errs, time.Since(start))
		}
	})
}

func TestNotFoundErrorsAndPanics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{missing: map[int]bool{2: true}}
		l := newLoader(t, rec.fetch, Options{})
		vals, errs := l.LoadMany(context.Background(), []int{1, 2, 3, 1})
		if vals[0] != "v1" || !errors.Is(errs[1], ErrNotFound) || vals[3] != "v1" || errs[2] != nil {
			t.Fatalf("LoadMany = %q %v", vals, errs)
		}

		boom := errors.New("db down")
		failing := newLoader(t, func(context.Context, []int) (map[int]string, error) { return nil, boom }, Options{})
		_, errs = failing.LoadMany(context.Background(), []int{1, 2})
		if !errors.Is(errs[0], boom) || !errors.Is(errs[1], boom) {
			t.Fatalf("fetch error: %v, want it for every key", errs)
		}

		panicky := newLoader(t, func(context.Context, []int) (map[int]string, error) { panic("bug") }, Options{})
		var wg sync.WaitGroup
		var got atomic.Int32
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := panicky.Load(context.Background(), i)
				var pe *PanicError
				if errors.As(err, &pe) && pe.Value == "bug" && strings.Contains(string(pe.Stack), "batch") {
					got.Add(1)
				}
			}()
		}
		wg.Wait() // a hung waiter would deadlock the bubble and fail the test
		if got.Load() != 10 || panicky.Stats().Panics != 1 {
			t.Fatalf("%d of 10 waiters got the *PanicError; stats %+v", got.Load(), panicky.Stats())
		}

		per, _ := NewWithResults(func(_ context.Context, keys []int) (map[int]Result[string], error) {
			return map[int]Result[string]{1: {Value: "one"}, 2: {Err: boom}}, nil
		}, Options{})
		vals, errs = per.LoadMany(context.Background(), []int{1, 2, 3})
		if vals[0] != "one" || !errors.Is(errs[1], boom) || !errors.Is(errs[2], ErrNotFound) {
			t.Fatalf("per-key results: %q %v", vals, errs)
		}
	})
}

func TestCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fetchCtx := make(chan context.Context, 1)
		release := make(chan struct{})
		l := newLoader(t, func(ctx context.Context, keys []int) (map[int]string, error) {
			fetchCtx <- ctx
			select {
			case <-release:
				return map[int]string{1: "v1"}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}, Options{Wait: time.Millisecond})

		ctxA, cancelA := context.WithCancel(context.Background())
		ctxB, cancelB := context.WithCancel(context.Background())
		errA := make(chan error, 1)
		resB := make(chan string, 1)
		go func() { _, err := l.Load(ctxA, 1); errA <- err }()
		go func() { v, _ := l.Load(ctxB, 1); resB <- v }()
		fctx := <-fetchCtx
		cancelA()
		if err := <-errA; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: %v", err)
		}
		synctest.Wait()
		if fctx.Err() != nil {
			t.Fatal("the fetch was cancelled while another caller still waited")
		}
		close(release)
		if v := <-resB; v != "v1" {
			t.Fatalf("remaining caller got %q", v)
		}
		cancelB()

		// When every caller leaves, the fetch's ctx is cancelled.
		release2 := make(chan struct{})
		l2 := newLoader(t, func(ctx context.Context, keys []int) (map[int]string, error) {
			fetchCtx <- ctx
			<-release2
			return nil, nil
		}, Options{Wait: time.Millisecond})
		ctxC, cancelC := context.WithCancel(context.Background())
		go l2.Load(ctxC, 5)
		fctx = <-fetchCtx
		cancelC()
		synctest.Wait()
		if fctx.Err() == nil {
			t.Fatal("fetch ctx not cancelled after its only caller left")
		}
		close(release2)
	})
}

func TestFetchCtxCarriesCallerValues(t *testing.T) {
	type k struct{}
	var got any
	l := newLoader(t, func(ctx context.Context, keys []int) (map[int]string, error) {
		got = ctx.Value(k{})
		return nil, nil
	}, Options{})
	l.Load(context.WithValue(context.Background(), k{}, "trace-1"), 1)
	if got != "trace-1" {
		t.Fatalf("fetch ctx value = %v", got)
	}
}

func TestMemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{missing: map[int]bool{9: true}}
		l := newLoader(t, rec.fetch, Options{})
		ctx := WithMemo(context.Background())
		for i := 0; i < 3; i++ {
			if v, _ := l.Load(ctx, 1); v != "v1" {
				t.Fatal(v)
			}
			l.Load(ctx, 9)
		}
		if rec.count() != 2 { // key 1, then key 9 (ErrNotFound is memoized too)
			t.Fatalf("%d fetches in one request, want 2", rec.count())
		}
		// Without the memo every Load fetches: it is not a cache.
		l.Load(context.Background(), 1)
		if rec.count() != 3 {
			t.Fatalf("a Load without memo did not fetch")
		}
		l.Clear(ctx, 1)
		l.Load(ctx, 1)
		if rec.count() != 4 {
			t.Fatal("Clear did not forget the key")
		}
		if !l.Prime(ctx, 7, "primed") {
			t.Fatal("Prime with a memo returned false")
		}
		if v, _ := l.Load(ctx, 7); v != "primed" || rec.count() != 4 {
			t.Fatalf("primed Load = %q after %d fetches", v, rec.count())
		}
		if l.Prime(context.Background(), 7, "x") {
			t.Fatal("Prime without a memo returned true")
		}

		// Transient errors are not memoized.
		calls := 0
		flaky := newLoader(t, func(_ context.Context, keys []int) (map[int]string, error) {
			calls++
			if calls == 1 {
				return nil, errors.New("timeout")
			}
			return map[int]string{1: "ok"}, nil
		}, Options{})
		ctx2 := WithMemo(context.Background())
		flaky.Load(ctx2, 1)
		if v, err := flaky.Load(ctx2, 1); v != "ok" || err != nil {
			t.Fatalf("after a transient error: %q %v, want a fresh fetch", v, err)
		}
	})
}

// TestMemoInterfaceValueType: with V an interface type, a memoized
// ErrNotFound and a Prime of nil hold a nil interface; answering them from
// the memo must return the zero V, not panic on the type assertion.
func TestMemoInterfaceValueType(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fetches := 0
		l, err := New(func(_ context.Context, keys []int) (map[int]io.Reader, error) {
			fetches++
			out := map[int]io.Reader{}
			for _, k := range keys {
				if k != 9 {
					out[k] = strings.NewReader(fmt.Sprint(k))
				}
			}
			return out, nil
		}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		ctx := WithMemo(context.Background())
		for i := 0; i < 2; i++ { // the second round is answered by the memo
			if v, err := l.Load(ctx, 9); v != nil || !errors.Is(err, ErrNotFound) {
				t.Fatalf("round %d: Load(9) = %v, %v; want nil, ErrNotFound", i, v, err)
			}
			vals, errs := l.LoadMany(ctx, []int{1, 9})
			if vals[0] == nil || errs[0] != nil || vals[1] != nil || !errors.Is(errs[1], ErrNotFound) {
				t.Fatalf("round %d: LoadMany = %v, %v", i, vals, errs)
			}
		}
		if fetches != 2 {
			t.Fatalf("%d fetches, want 2 (the memo answers the second round)", fetches)
		}
		if !l.Prime(ctx, 5, nil) {
			t.Fatal("Prime with a memo returned false")
		}
		if v, err := l.Load(ctx, 5); v != nil || err != nil {
			t.Fatalf("Load of a key primed with nil = %v, %v; want nil, nil", v, err)
		}
		vals, errs := l.LoadMany(ctx, []int{5})
		if vals[0] != nil || errs[0] != nil {
			t.Fatalf("LoadMany of a key primed with nil = %v, %v", vals, errs)
		}
		if fetches != 2 {
			t.Fatalf("a primed key was fetched (%d fetches)", fetches)
		}
	})
}

func TestPartition(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		type tenant struct{}
		rec := &recorder{}
		l := newLoader(t, rec.fetch, Options{Partition: func(ctx context.Context) string { s, _ := ctx.Value(tenant{}).(string); return s }})
		var wg sync.WaitGroup
		for i := 0; i < 6; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx := context.WithValue(context.Background(), tenant{}, []string{"a", "b"}[i%2])
				l.Load(ctx, i)
			}()
		}
		wg.Wait()
		if rec.count() != 2 {
			t.Fatalf("%d fetches for 2 tenants, want 2: %v", rec.count(), rec.batches)
		}
		for _, b := range rec.batches {
			for _, k := range b[1:] {
				if k%2 != b[0]%2 {
					t.Fatalf("batch %v mixes tenants", b)
				}
			}
		}
	})
}

func TestMaxConcurrent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var running, peak atomic.Int32
		l := newLoader(t, func(_ context.Context, keys []int) (map[int]string, error) {
			n := running.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(10 * time.Millisecond)
			running.Add(-1)
			return nil, nil
		}, Options{MaxBatch: 1, MaxConcurrent: 2})
		var wg sync.WaitGroup
		for i := 0; i < 10; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); l.Load(context.Background(), i) }()
		}
		wg.Wait()
		if peak.Load() != 2 {
			t.Fatalf("peak concurrent fetches %d, want 2", peak.Load())
		}
	})
}

func TestOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Wait: -1}, "Options.Wait must be >= 0"},
		{Options{Wait: time.Millisecond, Idle: time.Second}, "Options.Idle must be in [0, Wait=1ms]"},
		{Options{MaxBatch: -2}, "Options.MaxBatch must be >= 1"},
		{Options{MaxConcurrent: -1}, "Options.MaxConcurrent must be >= 1"},
	} {
		if _, err := New((&recorder{}).fetch, c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
	if _, err := New[int, string](nil, Options{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil fetch: %v", err)
	}
}

func TestHammer(t *testing.T) {
	rec := &recorder{missing: map[int]bool{13: true}}
	l := newLoader(t, rec.fetch, Options{Wait: 100 * time.Microsecond, MaxBatch: 16, MaxConcurrent: 4})
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				k := (g*7 + i) % 50
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%3)*time.Millisecond+time.Millisecond)
				v, err := l.Load(ctx, k)
				cancel()
				switch {
				case errors.Is(err, context.DeadlineExceeded):
				case k == 13 && !errors.Is(err, ErrNotFound):
					t.Errorf("key 13: %v", err)
				case k != 13 && (err != nil || v != fmt.Sprint("v", k)):
					t.Errorf("Load(%d) = %q, %v", k, v, err)
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	if st.Loads != 64*200 {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("hammer: %d loads in %d batches (%d keys), %d deduped, %d cancelled", st.Loads, st.Batches, st.Keys, st.Deduped, st.Cancelled)
}

func TestFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, part := range []func(context.Context) string{nil, func(context.Context) string { return "p" }} {
			rec := &recorder{}
			l := newLoader(t, rec.fetch, Options{Wait: time.Hour, Partition: part})
			l.Flush() // nothing open: a no-op
			start := time.Now()
			var wg sync.WaitGroup
			for k := 1; k <= 3; k++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if v, err := l.Load(context.Background(), k); err != nil || v != fmt.Sprint("v", k) {
						t.Errorf("Load(%d) = %q, %v", k, v, err)
					}
				}()
			}
			synctest.Wait()
			l.Flush()
			wg.Wait()
			if time.Since(start) != 0 || rec.count() != 1 || len(rec.batches[0]) != 3 {
				t.Fatalf("Flush: batches %v after %v, want one of 3 keys at once", rec.batches, time.Since(start))
			}
			l.Flush() // the flushed batch is gone: a no-op again
		}
	})
}

// TestWaitAfterFullBatch: a batch opened while the timer is set for an
// earlier (filled) batch still gets its whole Wait.
func TestWaitAfterFullBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		l := newLoader(t, rec.fetch, Options{Wait: 10 * time.Millisecond, MaxBatch: 2})
		l.LoadMany(context.Background(), []int{1, 2}) // full: fetched at once
		time.Sleep(4 * time.Millisecond)
		for i := 0; i < 3; i++ {
			start := time.Now()
			if v, err := l.Load(context.Background(), 3); err != nil || v != "v3" {
				t.Fatal(v, err)
			}
			if el := time.Since(start); el != 10*time.Millisecond {
				t.Fatalf("round %d: batch fetched %v after its first key, want Wait = 10ms", i, el)
			}
			time.Sleep(time.Duration(i+1) * time.Millisecond)
		}
		if rec.count() != 4 {
			t.Fatalf("batches %v", rec.batches)
		}
	})
}

// TestFetchCtx: each batch's fetch ctx has its first caller's values, no
// deadline and its own cancellation, and works as a parent.
func TestFetchCtx(t *testing.T) {
	type k struct{}
	l := newLoader(t, func(ctx context.Context, keys []int) (map[int]string, error) {
		if _, ok := ctx.Deadline(); ok || ctx.Err() != nil || context.Cause(ctx) != nil {
			return nil, fmt.Errorf("fetch ctx: deadline %v, err %v, cause %v", ok, ctx.Err(), context.Cause(ctx))
		}
		child, cancel := context.WithTimeout(ctx, time.Hour)
		defer cancel()
		return map[int]string{keys[0]: fmt.Sprint(child.Value(k{}))}, nil
	}, Options{MaxBatch: 1})
	for i := 0; i < 5; i++ { // batches made ahead (spares) too
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), k{}, i), time.Hour)
		v, err := l.Load(ctx, i)
		cancel()
		if err != nil || v != fmt.Sprint(i) {
			t.Fatalf("batch %d: %q, %v", i, v, err)
		}
	}
}

// TestBatchesNotReused: a fetch may keep its keys and a caller its result:
// no later batch writes over either.
func TestBatchesNotReused(t *testing.T) {
	var mu sync.Mutex
	type kept struct{ keys, clone []int }
	var all []kept
	l := newLoader(t, func(_ context.Context, keys []int) (map[int]string, error) {
		mu.Lock()
		all = append(all, kept{keys, slices.Clone(keys)})
		mu.Unlock()
		out := map[int]string{}
		for _, k := range keys {
			out[k] = fmt.Sprint("v", k)
		}
		return out, nil
	}, Options{Wait: 50 * time.Microsecond, MaxBatch: 7})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var got []string
			var want []string
			for i := 0; i < 300; i++ {
				k := g*1000 + i
				v, _ := l.Load(context.Background(), k)
				got, want = append(got, v), append(want, fmt.Sprint("v", k))
			}
			if !slices.Equal(got, want) {
				t.Errorf("goroutine %d: results changed after the fact", g)
			}
		}()
	}
	wg.Wait()
	for _, b := range all {
		if !slices.Equal(b.keys, b.clone) {
			t.Fatalf("keys given to a fetch were overwritten: %v, was %v", b.keys, b.clone)
		}
	}
}

// TestStaleSlotsSwept: the keys of done batches are not joined, and their
// slots do not pile up.
func TestStaleSlotsSwept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		l := newLoader(t, rec.fetch, Options{MaxBatch: 10})
		for i := 0; i < 50; i++ {
			keys := make([]int, 10)
			for j := range keys {
				keys[j] = i*10 + j
			}
			l.LoadMany(context.Background(), keys)
			l.LoadMany(context.Background(), keys) // done: fetched again, not joined
		}
		if rec.count() != 100 || l.Stats().Deduped != 0 {
			t.Fatalf("%d fetches, stats %+v; want 100, none deduped", rec.count(), l.Stats())
		}
		if n := len(l.one.where); n > minSweep {
			t.Fatalf("%d slots for 5000 keys of done batches, want at most %d", n, minSweep)
		}
		for i := 0; i < 5*minSweep; i++ {
			l.Load(context.Background(), 1000+i)
		}
		if n := len(l.one.where); n > minSweep {
			t.Fatalf("%d slots after %d distinct keys, want at most %d", n, 5*minSweep, minSweep)
		}
	})
}

func TestLoadManyOverMaxBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{missing: map[int]bool{7: true}}
		l := newLoader(t, rec.fetch, Options{Wait: time.Hour, MaxBatch: 3})
		keys := []int{0, 1, 2, 3, 4, 5, 6, 7, 8}
		start := time.Now()
		for _, ctx := range []context.Context{context.Background(), t.Context()} {
			vals, errs := l.LoadMany(ctx, keys)
			for i, k := range keys {
				if k == 7 && !errors.Is(errs[i], ErrNotFound) || k != 7 && (errs[i] != nil || vals[i] != fmt.Sprint("v", k)) {
					t.Fatalf("key %d: %q, %v", k, vals[i], errs[i])
				}
			}
		}
		if time.Since(start) != 0 || rec.count() != 6 {
			t.Fatalf("%d fetches after %v, want 6 at once", rec.count(), time.Since(start))
		}
	})
}

// TestHammerPartitionsIdleFlush runs every path at once: partitions, Idle,
// Flush, cancellations, joins and LoadMany.
func TestHammerPartitionsIdleFlush(t *testing.T) {
	type tenant struct{}
	rec := &recorder{missing: map[int]bool{13: true}}
	l := newLoader(t, rec.fetch, Options{
		Wait: 200 * time.Microsecond, Idle: 50 * time.Microsecond, MaxBatch: 8, MaxConcurrent: 2,
		Partition: func(ctx context.Context) string { s, _ := ctx.Value(tenant{}).(string); return s },
	})
	check := func(k int, v string, err error) {
		switch {
		case errors.Is(err, context.DeadlineExceeded):
		case k == 13 && !errors.Is(err, ErrNotFound):
			t.Errorf("key 13: %v", err)
		case k != 13 && (err != nil || v != fmt.Sprint("v", k)):
			t.Errorf("Load(%d) = %q, %v", k, v, err)
		}
	}
	stop := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Microsecond):
				l.Flush()
			}
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			base := context.WithValue(context.Background(), tenant{}, []string{"a", "b", "c"}[g%3])
			for i := 0; i < 150; i++ {
				k := (g*5 + i) % 40
				ctx, cancel := base, context.CancelFunc(func() {})
				if i%4 != 0 {
					ctx, cancel = context.WithTimeout(base, time.Duration(i%3)*time.Millisecond+300*time.Microsecond)
				}
				if i%5 == 0 {
					keys := []int{k, k + 1, k, k + 2}
					vals, errs := l.LoadMany(ctx, keys)
					for j := range keys {
						check(keys[j], vals[j], errs[j])
					}
				} else {
					v, err := l.Load(ctx, k)
					check(k, v, err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-flushed
	if st := l.Stats(); st.Loads == 0 || st.Batches == 0 {
		t.Fatalf("stats %+v", st)
	}
}
