package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
	"unsafe"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func newLocal(t testing.TB, o LocalOptions) *Local {
	t.Helper()
	l, err := NewLocal(o)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestLocalBurstRetryAndKeys(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 2, Burst: 3}}, Clock: clk})
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if d, err := l.Allow(ctx, "a"); err != nil || !d.Allowed {
			t.Fatalf("burst %d: %+v %v", i, d, err)
		}
	}
	d, _ := l.Allow(ctx, "a")
	if d.Allowed || d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("4th: %+v, want denied retry 500ms", d)
	}
	if d, _ := l.Allow(ctx, "b"); !d.Allowed || d.Remaining != 2 {
		t.Fatalf("other key: %+v, want its own fresh bucket", d)
	}
	clk.Add(499 * time.Millisecond)
	if d, _ := l.Allow(ctx, "a"); d.Allowed {
		t.Fatal("admitted 1ms before RetryAfter")
	}
	clk.Add(time.Millisecond)
	if d, _ := l.Allow(ctx, "a"); !d.Allowed {
		t.Fatalf("denied at RetryAfter: %+v", d)
	}
	st := l.Stats()
	if st.Allowed != 5 || st.Denied != 2 || st.Keys != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLocalOptionsErrors(t *testing.T) {
	for _, c := range []struct {
		o    LocalOptions
		want string
	}{
		{LocalOptions{}, "Limits must hold at least one"},
		{LocalOptions{Limits: Policy{{Rate: 1}}, MaxKeys: -1}, "LocalOptions.MaxKeys must be >= 1"},
		{LocalOptions{Limits: Policy{{Rate: 1}}, Shards: 5000}, "LocalOptions.Shards must be 1..4096"},
		{LocalOptions{Limits: Policy{{Rate: 1}}, SweepInterval: -1}, "LocalOptions.SweepInterval must be > 0"},
	} {
		if _, err := NewLocal(c.o); !errors.Is(err, ErrInvalid) || !contains(err.Error(), c.want) {
			t.Errorf("NewLocal(%+v) = %v, want %q", c.o, err, c.want)
		}
	}
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Burst: 2}}})
	if _, err := l.AllowN(context.Background(), "", 1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := l.AllowN(context.Background(), "k", 3); !errors.Is(err, ErrInvalid) {
		t.Fatalf("n above burst: %v", err)
	}
}

func TestLocalMemoryIsBounded(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Period: time.Minute}}, MaxKeys: 1000, Shards: 4, Clock: clk})
	ctx := context.Background()
	for i := 0; i < 5000; i++ {
		if _, err := l.Allow(ctx, fmt.Sprint("k", i)); err != nil {
			t.Fatal(err)
		}
	}
	st := l.Stats()
	if st.Keys > 1000 || st.Evicted == 0 {
		t.Fatalf("after 5000 active keys with MaxKeys 1000: %+v, want <= 1000 keys and evictions", st)
	}
	// Once their buckets are full again the keys go without loss.
	clk.Add(2 * time.Minute)
	for i := 0; i < 10; i++ {
		l.Allow(ctx, fmt.Sprint("new", i))
	}
	st2 := l.Stats()
	if st2.Swept == 0 || st2.Evicted != st.Evicted {
		t.Fatalf("after refill: %+v, want sweeps and no more evictions", st2)
	}
}

func TestLocalSweepIsLossless(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 10, Burst: 2}}, Shards: 1, SweepInterval: time.Second, Clock: clk})
	ctx := context.Background()
	l.Allow(ctx, "a")
	l.Allow(ctx, "a")
	clk.Add(1100 * time.Millisecond) // full again; the next new key sweeps "a"
	l.Allow(ctx, "b")
	if st := l.Stats(); st.Swept != 1 || st.Keys != 1 {
		t.Fatalf("stats %+v, want a swept", st)
	}
	for i := 0; i < 2; i++ {
		if d, _ := l.Allow(ctx, "a"); !d.Allowed {
			t.Fatal("a swept key lost its full burst")
		}
	}
	if d, _ := l.Allow(ctx, "a"); d.Allowed {
		t.Fatal("a swept key got more than its burst")
	}
}

func TestLocalHotPathAllocatesNothing(t *testing.T) {
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1_000_000_000 / 2}, {Rate: 1000, Period: time.Millisecond, Name: "b"}}})
	ctx := context.Background()
	l.Allow(ctx, "hot")
	if a := testing.AllocsPerRun(1000, func() { l.Allow(ctx, "hot") }); a != 0 {
		t.Fatalf("Allow on a held key: %v allocs, want 0", a)
	}
}

func TestLocalHammer(t *testing.T) {
	// 64 goroutines on one key at a frozen time: exactly Burst admitted.
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 10, Burst: 100}}, Clock: clk})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if d, _ := l.Allow(context.Background(), "one"); d.Allowed {
					admitted.Add(1)
				}
				l.Allow(context.Background(), fmt.Sprint("k", i%7))
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 100 {
		t.Fatalf("admitted %d, want exactly the burst 100", admitted.Load())
	}
}

func TestLocalWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 10, Burst: 1}}})
		ctx := context.Background()
		l.Allow(ctx, "k")
		start := time.Now()
		if _, err := l.Wait(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 100*time.Millisecond {
			t.Fatalf("waited %v, want 100ms", waited)
		}
		// The next slot is 100ms away; a 50ms deadline fails at once.
		dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start = time.Now()
		_, err := l.Wait(dctx, "k")
		var le *LimitedError
		if !errors.Is(err, ErrLimited) || !errors.As(err, &le) || le.Decision.RetryAfter != 100*time.Millisecond {
			t.Fatalf("Wait past deadline: %v, want *LimitedError with RetryAfter 100ms", err)
		}
		if time.Since(start) != 0 {
			t.Fatalf("Wait slept %v before failing", time.Since(start))
		}
		// Cancellation while waiting returns ctx.Err().
		cctx, cancel2 := context.WithCancel(ctx)
		go func() { time.Sleep(10 * time.Millisecond); cancel2() }()
		if _, err := l.Wait(cctx, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Wait: %v", err)
		}
	})
}

// TestLocalStaleClockNeverGoesBack: a caller whose time was read before it
// waited for the lock decides with the newest time the shard has used, so
// it can neither be denied for being "early" nor admit against an old TAT.
func TestLocalStaleClockNeverGoesBack(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 10, Burst: 1}}, Shards: 1, Clock: clk})
	ctx := context.Background()
	l.Allow(ctx, "k")
	clk.Add(time.Second)
	if d, _ := l.Allow(ctx, "k"); !d.Allowed {
		t.Fatal("denied after a full refill")
	}
	clk.Add(-900 * time.Millisecond) // a stale reading: 900ms in the past
	d, _ := l.Allow(ctx, "k")
	if d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("stale time: %+v, want denied with RetryAfter 100ms measured from the newest time", d)
	}
}

// A new key in a full limiter looks at no more than fullSample held keys
// of its shard: a flood of new keys cannot make every decision sweep the
// whole shard under its lock (before, each one did: 1,000 new keys in a
// full shard of 1,000 looked at 1,000,000 keys).
func TestLocalFullInsertIsBounded(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Period: time.Minute}}, MaxKeys: 1000, Shards: 1, Clock: clk})
	ctx := context.Background()
	scanned := func() uint64 {
		l.shards[0].mu.Lock()
		defer l.shards[0].mu.Unlock()
		return l.shards[0].scanned
	}
	for i := range 1000 {
		l.Allow(ctx, fmt.Sprint("held", i))
	}
	before := scanned()
	for i := range 1000 {
		if d, _ := l.Allow(ctx, fmt.Sprint("new", i)); !d.Allowed {
			t.Fatal("a new key was denied")
		}
	}
	st := l.Stats()
	if got := scanned() - before; got > 1000*fullSample {
		t.Fatalf("1000 new keys in a full limiter looked at %d held keys, want at most %d", got, 1000*fullSample)
	}
	if st.Keys != 1000 || st.Evicted != 1000 || st.Swept != 0 {
		t.Fatalf("stats %+v, want 1000 keys held and 1000 evicted", st)
	}
}

// When the limiter is full and no key it looks at has a full bucket, it
// evicts the one nearest to full: the key that can over-admit least
// once it is forgotten.
func TestLocalEvictsNearestToFull(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Period: time.Minute, Burst: 10}}, MaxKeys: 4, Shards: 1, Clock: clk})
	ctx := context.Background()
	take := func(key string, n int) (allowed int) {
		for range n {
			if d, _ := l.Allow(ctx, key); d.Allowed {
				allowed++
			}
		}
		return allowed
	}
	take("a", 5)
	take("b", 1) // nearest to full
	take("c", 3)
	take("d", 4)
	take("e", 2) // evicts b
	if st := l.Stats(); st.Keys != 4 || st.Evicted != 1 {
		t.Fatalf("stats %+v, want one eviction", st)
	}
	if got := take("c", 10); got != 7 {
		t.Fatalf("c, which used 3 of 10, got %d more, want 7: it must still be held", got)
	}
	if got := take("a", 10); got != 5 {
		t.Fatalf("a, which used 5 of 10, got %d more, want 5: it must still be held", got)
	}
	if got := take("b", 10); got != 10 {
		t.Fatalf("b got %d of a fresh burst of 10: it should have been evicted", got)
	}
}

// TestShardLayout: a shard fills whole cache lines, its lock and the
// fields every decision touches in the first two (see localShard).
func TestShardLayout(t *testing.T) {
	var s localShard
	if size := unsafe.Sizeof(s); size != 192 {
		t.Errorf("localShard is %d bytes, want 192", size)
	}
	if off := unsafe.Offsetof(s.tats) + unsafe.Sizeof(s.tats); off > 128 {
		t.Errorf("the hot fields end at byte %d, past the second cache line", off)
	}
}

// checkTable checks shard s's key table (locked): every held key is found
// at its slot, the table holds one entry per held key and no other, and
// held counts them.
func checkTable(t *testing.T, l *Local, s *localShard) {
	t.Helper()
	var held int
	for i, k := range s.keys {
		if k == "" {
			continue
		}
		held++
		if got, ok := s.find(maphash.String(l.seed, k), k); !ok || got != int32(i) {
			t.Fatalf("key %q of slot %d: find returns %d, %v", k, i, got, ok)
		}
	}
	var entries int
	for _, e := range s.idx {
		if e.slot1 != 0 {
			entries++
			if k := s.keys[e.slot1-1]; k == "" || maphash.String(l.seed, k) != e.h {
				t.Fatalf("entry %+v names slot of key %q", e, k)
			}
		}
	}
	if held != s.held || entries != held || len(s.keys)-len(s.free) != held {
		t.Fatalf("%d keys in slots, %d entries, held %d, %d slots of which %d free", held, entries, s.held, len(s.keys), len(s.free))
	}
}

// TestLocalKeyTable: keys come and go (evicted when full, swept when their
// buckets refill) in a few small shards, so the table grows, probes wrap
// and entries are shifted back on removal; after every step each held key
// is still found, every dropped one is new again, and Stats.Keys counts
// the held ones.
func TestLocalKeyTable(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Period: time.Second, Burst: 2}}, MaxKeys: 300, Shards: 4, SweepInterval: 3 * time.Second, Clock: clk})
	ctx := context.Background()
	r := rand.New(rand.NewPCG(3, 4))
	for step := range 20_000 {
		key := fmt.Sprint("k", r.IntN(1000))
		if _, err := l.Allow(ctx, key); err != nil {
			t.Fatal(err)
		}
		if r.IntN(50) == 0 {
			clk.Add(time.Duration(r.IntN(1000)) * time.Millisecond)
		}
		if step%97 == 0 {
			for i := range l.shards {
				checkTable(t, l, &l.shards[i])
			}
		}
	}
	st := l.Stats()
	if st.Keys > 300 || st.Evicted == 0 || st.Swept == 0 {
		t.Fatalf("stats %+v: want at most 300 keys, some evicted and some swept", st)
	}
	var held int
	for i := range l.shards {
		checkTable(t, l, &l.shards[i])
		held += l.shards[i].held
	}
	if held != st.Keys || int64(held) != l.keys.Load() {
		t.Fatalf("shards hold %d keys, Stats %d, count %d", held, st.Keys, l.keys.Load())
	}
}

// TestLocalKeyTableHammer (run with -race): goroutines decide on 2,000
// keys of a limiter holding at most 1,000, so keys are inserted and
// evicted while others are found: Stats counts every decision and the
// tables are whole at the end. Then, at a frozen time, goroutines that
// also insert other keys admit exactly one key's burst.
func TestLocalKeyTableHammer(t *testing.T) {
	clk := testclock.New()
	l := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Period: time.Hour, Burst: 3}}, MaxKeys: 1000, Shards: 8, Clock: clk})
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for i := range 4000 {
				d, err := l.Allow(ctx, fmt.Sprint("k", (i*7+g*131)%2000))
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	st := l.Stats()
	if st.Allowed != uint64(allowed.Load()) || st.Allowed+st.Denied != 16*4000 {
		t.Fatalf("stats %+v, %d admitted", st, allowed.Load())
	}
	for i := range l.shards {
		checkTable(t, l, &l.shards[i])
	}
	// Inserts racing in different shards each saw room for one more key
	// (1,002 held here before the place was reserved with a
	// compare-and-swap); every shard holds keys, so the cap is exact.
	if st.Keys > 1000 || st.Evicted == 0 {
		t.Fatalf("stats %+v: want keys evicted and at most 1000 held", st)
	}
	// 16 goroutines on one fresh key once the limiter has room.
	l2 := newLocal(t, LocalOptions{Limits: Policy{{Rate: 1, Period: time.Hour, Burst: 3}}, MaxKeys: 1000, Shards: 8, Clock: clk})
	var one atomic.Int64
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				if d, _ := l2.Allow(context.Background(), "one"); d.Allowed {
					one.Add(1)
				}
				l2.Allow(context.Background(), fmt.Sprint("o", i))
			}
		}()
	}
	wg.Wait()
	if one.Load() != 3 {
		t.Fatalf("one key admitted %d, want exactly its burst 3", one.Load())
	}
}
