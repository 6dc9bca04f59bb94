package turns

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/poll"
)

type call struct {
	id   int
	size int
	left bool
	done chan int // the batch's number
}

func newTurns(max, batch, bytes int) *Turns[*call] {
	return New(Config[*call]{Max: max, MaxBatch: batch, MaxBytes: bytes,
		Size: func(c *call) int { return c.size }, Drop: func(c *call) bool { return c.left }})
}

func ids(cs []*call) []int {
	var out []int
	for _, c := range cs {
		out = append(out, c.id)
	}
	return out
}

// Max calls go alone; the next ones wait, and leave in batches bounded
// by MaxBatch and MaxBytes, in arrival order, the dropped ones left out;
// the last turn to find nothing waiting is freed.
func TestBatches(t *testing.T) {
	tu := newTurns(2, 3, 10)
	for i := range 2 {
		if _, alone := tu.Go(func() *call { t.Fatal("made a call for a free turn"); return nil }); !alone {
			t.Fatalf("call %d waited with a turn free", i)
		}
	}
	sizes := []int{1, 1, 1, 1, 8, 4, 1}
	for i, s := range sizes {
		w, alone := tu.Go(func() *call { return &call{id: i, size: s, left: i == 1} })
		if alone || w.id != i {
			t.Fatalf("call %d: alone %v with both turns out", i, alone)
		}
	}
	if n, w := tu.Out(); n != 2 || w != len(sizes) {
		t.Fatalf("Out = %d turns, %d waiting; want 2, %d", n, w, len(sizes))
	}
	// 0, (1 dropped), 2, 3: three calls; then 4 (8 bytes; 5 would pass 10); then 5, 6.
	want := [][]int{{0, 2, 3}, {4}, {5, 6}}
	for i, w := range want {
		if got := ids(tu.Next()); !slices.Equal(got, w) {
			t.Fatalf("batch %d = %v, want %v", i, got, w)
		}
	}
	for range 2 { // both turns end
		if b := tu.Next(); b != nil {
			t.Fatalf("batch %v with nothing waiting", ids(b))
		}
	}
	if n, w := tu.Out(); n != 0 || w != 0 {
		t.Fatalf("Out = %d, %d after both turns ended, want 0, 0", n, w)
	}
	if _, alone := tu.Go(func() *call { return &call{} }); !alone {
		t.Fatal("no turn free after they ended")
	}
}

// A queue of dropped calls only frees the turn; TakeAll empties the queue.
func TestDroppedAndTakeAll(t *testing.T) {
	tu := newTurns(1, 4, 100)
	tu.Go(func() *call { return nil })
	for i := range 6 {
		tu.Go(func() *call { return &call{id: i, left: true} })
	}
	if b := tu.Next(); b != nil {
		t.Fatalf("batch %v of dropped calls", ids(b))
	}
	if n, w := tu.Out(); n != 0 || w != 0 {
		t.Fatalf("Out = %d, %d, want 0, 0", n, w)
	}
	tu.Go(func() *call { return nil })
	tu.Go(func() *call { return &call{id: 7} })
	tu.Go(func() *call { return &call{id: 8} })
	if got := ids(tu.TakeAll()); !slices.Equal(got, []int{7, 8}) {
		t.Fatalf("TakeAll = %v", got)
	}
	if tu.Next() != nil {
		t.Fatal("a batch after TakeAll")
	}
}

// Many goroutines (run with -race): every call is sent exactly once, alone
// or in one batch, and never more than Max sends are out at once.
func TestHammer(t *testing.T) {
	const max, goroutines, each = 3, 32, 200
	tu := newTurns(max, 16, 1<<20)
	var out, most, sent atomic.Int64
	var batches sync.Map
	send := func(n int64) {
		o := out.Add(1)
		for m := most.Load(); o > m && !most.CompareAndSwap(m, o); m = most.Load() {
		}
		sent.Add(n)
		out.Add(-1)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				c, alone := tu.Go(func() *call { return &call{id: g*each + i, done: make(chan int, 1)} })
				if !alone {
					<-c.done
					continue
				}
				send(1)
				if batch := tu.Next(); batch != nil {
					go func() {
						for k := 0; batch != nil; batch, k = tu.Next(), k+1 {
							send(int64(len(batch)))
							for _, c := range batch {
								if _, dup := batches.LoadOrStore(c.id, true); dup {
									t.Errorf("call %d sent twice", c.id)
								}
								c.done <- k
							}
						}
					}()
				}
			}
		})
	}
	wg.Wait()
	if sent.Load() != goroutines*each || most.Load() > max {
		t.Fatalf("%d calls sent of %d, at most %d out at once (Max %d)", sent.Load(), goroutines*each, most.Load(), max)
	}
	// The last turn is freed just after its batch is answered.
	poll.Until(t, 10*time.Second, "every turn freed, none waiting", func() bool { n, w := tu.Out(); return n == 0 && w == 0 })
}

// Drain sends a batch, yields, then sends the next: a call queued during
// the yield leaves in the batch after, not alone; the turn is free once
// none waits.
func TestDrainYieldsBetweenBatches(t *testing.T) {
	var tt *Turns[*call]
	yields := 0
	tt = New(Config[*call]{Max: 1, MaxBatch: 8, Yield: func() {
		if yields++; yields == 1 {
			if _, alone := tt.Go(func() *call { return &call{id: 2} }); alone {
				t.Error("a call made during the yield went alone: the turn was free")
			}
		}
	}})
	if _, alone := tt.Go(func() *call { return &call{id: 0} }); !alone {
		t.Fatal("the first call did not go alone")
	}
	tt.Go(func() *call { return &call{id: 1} })
	var sent [][]int
	tt.Drain(tt.Next(), func(b []*call) { sent = append(sent, ids(b)) })
	if !slices.EqualFunc(sent, [][]int{{1}, {2}}, slices.Equal) || yields != 2 {
		t.Fatalf("sent %v with %d yields, want [[1] [2]] with 2 (one after each batch)", sent, yields)
	}
	if out, waiting := tt.Out(); out != 0 || waiting != 0 {
		t.Fatalf("after Drain: %d turns out, %d waiting; want 0, 0", out, waiting)
	}
}
