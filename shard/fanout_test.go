package shard

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func fanRouter(t testing.TB, names ...string) *Router {
	t.Helper()
	return mustNew(t, Options{VirtualShards: 64, Map: EvenMap(1, 64, names...), Clusters: fakeClusters(names...)})
}

// Each calls every cluster once, never more than Concurrency at a time,
// and reports each failed cluster by name while the others' work stands.
func TestEachConcurrencyAndErrors(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	r := fanRouter(t, names...)
	boom := errors.New("boom")
	var inFlight, most atomic.Int32
	var mu sync.Mutex
	called := map[string]int{}
	err := r.Each(context.Background(), EachOptions{Concurrency: 2}, func(ctx context.Context, tg Target) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		mu.Lock()
		called[tg.Cluster]++
		mu.Unlock()
		if tg.VShard != -1 || tg.MapVersion != 1 || tg.Keys != nil {
			t.Errorf("target %+v: want VShard -1, MapVersion 1, no Keys", tg)
		}
		time.Sleep(time.Millisecond) // let calls overlap if the bound leaks
		if tg.Cluster == "b" || tg.Cluster == "e" {
			return fmt.Errorf("query on %s: %w", tg.Cluster, boom)
		}
		return nil
	})
	if most.Load() > 2 {
		t.Errorf("%d calls in flight with Concurrency 2", most.Load())
	}
	for _, n := range names {
		if called[n] != 1 {
			t.Errorf("cluster %s called %d times, want once", n, called[n])
		}
	}
	var ee *EachError
	if !errors.As(err, &ee) || ee.Clusters != 6 || len(ee.Failed) != 2 || ee.Failed[0].Cluster != "b" || ee.Failed[1].Cluster != "e" {
		t.Fatalf("err = %#v, want an *EachError of b and e among 6", err)
	}
	if !errors.Is(err, boom) || errors.Is(err, ErrClusterTimeout) || ee.Cluster("e") == nil || ee.Cluster("a") != nil {
		t.Errorf("errors.Is / Cluster through %v", err)
	}
	if !strings.Contains(err.Error(), "cluster b: query on b: boom") {
		t.Errorf("message %q does not name cluster b", err)
	}
	st := r.Stats()
	if st.FanOuts != 1 || st.FanOutsFailed != 1 || st.FanOut.Calls != 6 || st.FanOut.Errors != 2 || st.FanOut.Timeouts != 0 {
		t.Errorf("stats %+v", st)
	}
	if fs := r.FanOutStats(); fs["b"].Errors != 1 || fs["a"].Errors != 0 || fs["a"].Calls != 1 {
		t.Errorf("per-cluster stats %+v", fs)
	}
}

// A call that outlives Timeout is reported as that cluster's timeout; the
// others succeed. A ctx that ends while calls wait for a slot reports the
// waiting clusters as not run.
func TestEachTimeoutAndNotRun(t *testing.T) {
	r := fanRouter(t, "a", "b", "c")
	err := r.Each(context.Background(), EachOptions{Timeout: 20 * time.Millisecond}, func(ctx context.Context, tg Target) error {
		if tg.Cluster == "b" {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	var ee *EachError
	if !errors.As(err, &ee) || len(ee.Failed) != 1 || !ee.Failed[0].Timeout || !errors.Is(err, ErrClusterTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want b's timeout", err)
	}
	if fs := r.FanOutStats(); fs["b"].Timeouts != 1 || fs["a"].Timeouts != 0 {
		t.Errorf("per-cluster stats %+v", fs)
	}

	ctx, cancel := context.WithCancel(context.Background())
	err = r.Each(ctx, EachOptions{Concurrency: 1}, func(ctx context.Context, tg Target) error {
		cancel() // the first call ends the fan-out's ctx
		return nil
	})
	if !errors.As(err, &ee) || len(ee.Failed) != 2 || !errors.Is(err, ErrNotRun) || errors.Is(err, ErrClusterTimeout) {
		t.Fatalf("err = %v, want b and c not run", err)
	}
}

// Keys select the clusters holding them, each told which keys are its.
func TestEachKeys(t *testing.T) {
	r := fanRouter(t, "a", "b", "c")
	keys := []Key{Int64(1), Int64(2), Int64(3), Int64(4), Int64(5), Int64(6)}
	var mu sync.Mutex
	got := map[int]string{}
	err := r.Each(context.Background(), EachOptions{Keys: keys}, func(ctx context.Context, tg Target) error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.IsSorted(tg.Keys) || len(tg.Keys) == 0 {
			t.Errorf("cluster %s keys %v", tg.Cluster, tg.Keys)
		}
		for _, i := range tg.Keys {
			got[i] = tg.Cluster
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		rt, _ := r.For(k)
		if got[i] != rt.Cluster {
			t.Errorf("key %d given to %q, For says %q", i, got[i], rt.Cluster)
		}
	}

	sub := map[string]bool{}
	if err := r.Each(context.Background(), EachOptions{Clusters: []string{"c", "a", "c"}}, func(ctx context.Context, tg Target) error {
		mu.Lock()
		sub[tg.Cluster] = true
		mu.Unlock()
		return nil
	}); err != nil || len(sub) != 2 || !sub["a"] || !sub["c"] {
		t.Fatalf("Clusters subset: %v, %v", sub, err)
	}
}

func TestEachBadOptions(t *testing.T) {
	r := fanRouter(t, "a", "b")
	never := func(context.Context, Target) error { t.Error("called"); return nil }
	for _, c := range []struct {
		o    EachOptions
		want string
	}{
		{EachOptions{Concurrency: -1}, "Concurrency"},
		{EachOptions{Timeout: -time.Second}, "Timeout"},
		{EachOptions{Clusters: []string{"a"}, Keys: []Key{Int64(1)}}, "not both"},
		{EachOptions{Clusters: []string{"zz"}}, `Clusters[0]: cluster "zz"`},
		{EachOptions{Keys: []Key{Int64(1), {}}}, "Keys[1]"},
	} {
		err := r.Each(context.Background(), c.o, never)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.o, err, c.want)
		}
		if _, err := Gather(context.Background(), r, c.o, func(context.Context, Target) (int, error) { return 0, nil }); err == nil {
			t.Errorf("Gather %+v: no error", c.o)
		}
	}
	if !errors.Is(r.Each(context.Background(), EachOptions{Keys: []Key{{}}}, never), ErrNoShardKey) {
		t.Error("zero key: want ErrNoShardKey")
	}
	if r.Stats().FanOuts != 0 {
		t.Error("refused fan-outs counted")
	}
}

// Gather returns the successful clusters' results next to the error.
func TestGatherPartial(t *testing.T) {
	r := fanRouter(t, "a", "b", "c")
	got, err := Gather(context.Background(), r, EachOptions{}, func(ctx context.Context, tg Target) (string, error) {
		if tg.Cluster == "b" {
			return "", errors.New("down")
		}
		return "rows of " + tg.Cluster, nil
	})
	var ee *EachError
	if !errors.As(err, &ee) || ee.Cluster("b") == nil || len(got) != 2 || got["a"] != "rows of a" || got["c"] != "rows of c" {
		t.Fatalf("Gather = %v, %v", got, err)
	}
}

type row struct {
	at   int
	page int
	pos  int
}

// Merge equals sorting everything (stably, page by page) and cutting at
// limit, for random pages with many ties.
func TestMergeMatchesSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	byAt := func(a, b row) int { return cmp.Compare(a.at, b.at) }
	for range 2000 {
		pages := make([][]row, rng.IntN(6))
		var all []row
		for p := range pages {
			for i := range rng.IntN(8) {
				pages[p] = append(pages[p], row{at: rng.IntN(10), page: p, pos: i})
			}
			slices.SortStableFunc(pages[p], byAt)
			for i := range pages[p] {
				pages[p][i].pos = i
			}
			all = append(all, pages[p]...)
		}
		slices.SortStableFunc(all, byAt) // all is in page order: stable = page, then position
		limit := rng.IntN(12)
		want := all
		if limit > 0 && limit < len(all) {
			want = all[:limit]
		}
		got := Merge(byAt, limit, pages...)
		if !slices.Equal(got, want) {
			t.Fatalf("Merge(limit %d, %v) = %v, want %v", limit, pages, got, want)
		}
	}
}

// GatherSorted merges the pages; a page out of order is its cluster's
// error, not a wrong answer.
func TestGatherSorted(t *testing.T) {
	r := fanRouter(t, "a", "b", "c")
	pages := map[string][]int{"a": {1, 4, 7}, "b": {2, 5, 8}, "c": {0, 3, 9}}
	got, err := GatherSorted(context.Background(), r, EachOptions{}, 5, cmp.Compare[int], func(ctx context.Context, tg Target) ([]int, error) {
		return pages[tg.Cluster], nil
	})
	if err != nil || !slices.Equal(got, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("GatherSorted = %v, %v", got, err)
	}
	pages["b"] = []int{5, 2}
	got, err = GatherSorted(context.Background(), r, EachOptions{}, 5, cmp.Compare[int], func(ctx context.Context, tg Target) ([]int, error) {
		return pages[tg.Cluster], nil
	})
	var ee *EachError
	if !errors.As(err, &ee) || ee.Cluster("b") == nil || !strings.Contains(err.Error(), "out of order") || !slices.Equal(got, []int{0, 1, 3, 4, 7}) {
		t.Fatalf("unsorted page of b: %v, %v", got, err)
	}
	if _, err := GatherSorted(context.Background(), r, EachOptions{}, 0, cmp.Compare[int], nil); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("limit 0: %v", err)
	}
}

// Many goroutines fan out at once over a router whose map changes: every
// fan-out calls each cluster once and the counters add up.
func TestEachHammer(t *testing.T) {
	r := fanRouter(t, "a", "b", "c", "d")
	var wg sync.WaitGroup
	var calls atomic.Int64
	const G, N = 16, 50
	for g := range G {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range N {
				if g == 0 && i%10 == 0 {
					_ = r.SetMap(EvenMap(int64(2+i), 64, "d", "c", "b", "a"))
				}
				res, err := Gather(context.Background(), r, EachOptions{Concurrency: 1 + i%3, Timeout: time.Minute}, func(ctx context.Context, tg Target) (string, error) {
					calls.Add(1)
					return tg.Cluster, nil
				})
				if err != nil || len(res) != 4 {
					t.Errorf("Gather = %v, %v", res, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st := r.Stats()
	if st.FanOuts != G*N || st.FanOut.Calls != calls.Load() || calls.Load() != G*N*4 {
		t.Fatalf("stats %+v, calls %d", st, calls.Load())
	}
}
