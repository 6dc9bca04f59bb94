package lane_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/lane"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/queue"
)

// comp is a test completion: its answers are counted, the first kept.
type comp struct {
	ctx     context.Context
	size    int
	answers atomic.Int32
	done    chan error
}

func newComp(ctx context.Context) *comp { return &comp{ctx: ctx, done: make(chan error, 1)} }

func (c *comp) Context() context.Context { return c.ctx }
func (c *comp) Drop(err error)           { c.answer(err) }
func (c *comp) answer(err error) {
	if c.answers.Add(1) == 1 {
		c.done <- err
	}
}

// fet is a test fetch.
type fet struct {
	ctx     context.Context
	r       queue.FetchRequest
	answers atomic.Int32
	done    chan error
}

func newFet(ctx context.Context, max int, grow func(int) int) *fet {
	return &fet{ctx: ctx, r: queue.FetchRequest{Queue: "q", Max: max, Grow: grow}, done: make(chan error, 1)}
}

func (f *fet) Context() context.Context          { return f.ctx }
func (f *fet) Drop(err error)                    { f.answer(err) }
func (f *fet) FetchRequest() *queue.FetchRequest { return &f.r }
func (f *fet) answer(err error) {
	if f.answers.Add(1) == 1 {
		f.done <- err
	}
}

// errOK is what the test rounds answer.
var errOK = errors.New("answered by a round")

// gate is a Round that answers every request with errOK, records each
// round's sizes, and, while held, blocks until released.
type gate struct {
	mu       sync.Mutex
	rounds   [][2]int // (completions, fetch 0/1) of each round
	inFlight atomic.Int32
	overlap  atomic.Bool
	hold     chan struct{} // nil: do not block
	entered  chan struct{}
}

func (g *gate) round(cs []*comp, f *fet) {
	if g.inFlight.Add(1) > 1 {
		g.overlap.Store(true)
	}
	defer g.inFlight.Add(-1)
	g.mu.Lock()
	hold := g.hold
	g.hold = nil
	nf := 0
	if f != nil {
		nf = 1
	}
	g.rounds = append(g.rounds, [2]int{len(cs), nf})
	g.mu.Unlock()
	if hold != nil {
		g.entered <- struct{}{}
		<-hold
	}
	for _, c := range cs {
		c.answer(errOK)
	}
	if f != nil {
		f.answer(errOK)
	}
}

func (g *gate) sizes() [][2]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([][2]int(nil), g.rounds...)
}

func newLane(g *gate, maxC int) *lane.Lane[*comp, *fet] {
	return lane.New(lane.Config[*comp, *fet]{MaxCompletions: maxC, MaxFetch: 256, Round: g.round})
}

// Many goroutines submit completions and fetches: each is answered
// exactly once, by a round, rounds never overlap, no round exceeds
// MaxCompletions or carries more than one fetch, and the drain stops.
func TestHammer(t *testing.T) {
	g := &gate{}
	ln := newLane(g, 7)
	const workers, each = 32, 200
	var wg sync.WaitGroup
	var comps []*comp
	var fets []*fet
	var mu sync.Mutex
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				var done chan error
				var submit func()
				mu.Lock()
				if (w+i)%3 == 0 {
					f := newFet(context.Background(), 1, nil)
					fets = append(fets, f)
					submit, done = func() { ln.Fetch(f) }, f.done
				} else {
					c := newComp(context.Background())
					comps = append(comps, c)
					submit, done = func() { ln.Complete(c) }, c.done
				}
				mu.Unlock()
				submit()
				rep, err := lane.Wait(context.Background(), done)
				if err == nil {
					err = rep
				}
				if err != errOK {
					t.Errorf("request answered %v, want %v", err, errOK)
				}
			}
		})
	}
	wg.Wait()
	total := 0
	for _, r := range g.sizes() {
		if r[0] > 7 || r[1] > 1 || r[0]+r[1] == 0 {
			t.Errorf("round of %d completions and %d fetches", r[0], r[1])
		}
		total += r[0] + r[1]
	}
	if total != workers*each {
		t.Errorf("rounds carried %d requests, want %d", total, workers*each)
	}
	if g.overlap.Load() {
		t.Error("two rounds of one lane overlapped")
	}
	if ln.Rounds() != uint64(len(g.sizes())) {
		t.Errorf("Rounds %d, ran %d", ln.Rounds(), len(g.sizes()))
	}
	poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
	for _, c := range comps {
		if n := c.answers.Load(); n != 1 {
			t.Fatalf("a completion answered %d times", n)
		}
	}
	for _, f := range fets {
		if n := f.answers.Load(); n != 1 {
			t.Fatalf("a fetch answered %d times", n)
		}
	}
}

// hold makes g's next round block until the returned release runs, and
// returns once that round has started.
func (g *gate) holdNext() (started func(), release func()) {
	ch := make(chan struct{})
	g.mu.Lock()
	g.hold = ch
	g.entered = make(chan struct{})
	entered := g.entered
	g.mu.Unlock()
	return func() { <-entered }, func() { close(ch) }
}

// completing returns once a round of one completion (first) is in flight
// on ln, held until release.
func completing(g *gate, ln *lane.Lane[*comp, *fet]) (first *comp, release func()) {
	started, release := g.holdNext()
	first = newComp(context.Background())
	ln.Complete(first)
	started()
	return first, release
}

// Requests whose ctx ended while a round was in flight are dropped: they
// get their ctx's error, exactly once, and the next round does not carry
// them.
func TestDropsEndedContexts(t *testing.T) {
	g := &gate{}
	ln := newLane(g, 10)
	first, release := completing(g, ln)
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	deadC, liveC := newComp(ended), newComp(context.Background())
	deadF, liveF := newFet(ended, 1, nil), newFet(context.Background(), 1, nil)
	ln.Complete(deadC)
	ln.Fetch(deadF)
	ln.Complete(liveC)
	ln.Fetch(liveF)
	if cs, fs := ln.Waiting(); cs != 2 || fs != 2 {
		t.Fatalf("waiting %d completions, %d fetches; want 2, 2", cs, fs)
	}
	release()
	for what, ch := range map[string]chan error{"first": first.done, "live completion": liveC.done, "live fetch": liveF.done} {
		if err := <-ch; err != errOK {
			t.Errorf("%s: %v, want %v", what, err, errOK)
		}
	}
	for what, ch := range map[string]chan error{"ended completion": deadC.done, "ended fetch": deadF.done} {
		if err := <-ch; !errors.Is(err, context.Canceled) {
			t.Errorf("%s: %v, want context.Canceled", what, err)
		}
	}
	poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
	if got := g.sizes(); len(got) != 2 || got[1] != [2]int{1, 1} {
		t.Errorf("rounds %v, want [[1 0] [1 1]]", got)
	}
	if deadC.answers.Load() != 1 || deadF.answers.Load() != 1 {
		t.Errorf("dropped requests answered %d and %d times, want once", deadC.answers.Load(), deadF.answers.Load())
	}
}

// A lane whose requests all ended runs no round: the drain stops.
func TestOnlyEndedContextsRunNoRound(t *testing.T) {
	g := &gate{}
	ln := newLane(g, 10)
	started, release := g.holdNext()
	ln.Fetch(newFet(context.Background(), 1, nil))
	started()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	c, f := newComp(ended), newFet(ended, 1, nil)
	ln.Complete(c)
	ln.Fetch(f)
	release()
	if err := <-c.done; !errors.Is(err, context.Canceled) {
		t.Errorf("completion: %v", err)
	}
	if err := <-f.done; !errors.Is(err, context.Canceled) {
		t.Errorf("fetch: %v", err)
	}
	poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
	if n := ln.Rounds(); n != 1 {
		t.Errorf("%d rounds, want 1", n)
	}
}

// The drain stops when nothing waits and the next request starts a new one.
func TestDrainStopsAndRestarts(t *testing.T) {
	g := &gate{}
	ln := newLane(g, 10)
	for i := range 3 {
		c := newComp(context.Background())
		ln.Complete(c)
		if err := <-c.done; err != errOK {
			t.Fatal(err)
		}
		poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
		if n := ln.Rounds(); n != uint64(i+1) {
			t.Fatalf("after request %d: %d rounds", i+1, n)
		}
	}
}

// Requests that come while a round is in flight leave together in the
// next one, up to MaxCompletions and one fetch a round, in order.
func TestBatchesBehindARound(t *testing.T) {
	g := &gate{}
	behind(t, g, newLane(g, 3), []int{0, 0, 0, 0, 0, 0, 0}, 2, "[[0 1] [3 1] [3 1] [1 0]]")
}

// MaxBytes bounds a round's completions by Size, but a round takes at
// least one, however big.
func TestMaxBytes(t *testing.T) {
	g := &gate{}
	ln := lane.New(lane.Config[*comp, *fet]{MaxCompletions: 100, MaxBytes: 10, Size: func(c *comp) int { return c.size },
		MaxFetch: 256, Round: g.round})
	behind(t, g, ln, []int{25, 4, 6, 1, 7}, 0, "[[0 1] [1 0] [2 0] [2 0]]")
}

// behind submits completions of sizes and fetches fetches while a round
// of one fetch is in flight, then checks the rounds g ran against want.
func behind(t *testing.T, g *gate, ln *lane.Lane[*comp, *fet], sizes []int, fetches int, want string) {
	t.Helper()
	started, release := g.holdNext()
	ln.Fetch(newFet(context.Background(), 1, nil))
	started()
	var cs []*comp
	for _, size := range sizes {
		c := newComp(context.Background())
		c.size = size
		cs = append(cs, c)
		ln.Complete(c)
	}
	var fs []*fet
	for range fetches {
		f := newFet(context.Background(), 1, nil)
		fs = append(fs, f)
		ln.Fetch(f)
	}
	release()
	for _, c := range cs {
		<-c.done
	}
	for _, f := range fs {
		<-f.done
	}
	poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
	if got := fmt.Sprint(g.sizes()); got != want {
		t.Errorf("rounds %v, want %v", got, want)
	}
}

// Grow adds to a fetch's Max up to MaxFetch, never takes away, and is not
// asked once Max reached MaxFetch.
func TestGrow(t *testing.T) {
	for _, tc := range []struct {
		max, grow, want int
		asked           bool
	}{
		{max: 10, grow: 5, want: 15, asked: true},
		{max: 10, grow: 1000, want: 256, asked: true},
		{max: 10, grow: -3, want: 10, asked: true},
		{max: 256, grow: 5, want: 256},
		{max: 300, grow: 5, want: 300},
	} {
		var free []int
		f := newFet(context.Background(), tc.max, func(n int) int { free = append(free, n); return tc.grow })
		var got int
		ln := lane.New(lane.Config[*comp, *fet]{MaxCompletions: 1, MaxFetch: 256, Round: func(_ []*comp, f *fet) {
			got = f.r.Max
			f.answer(errOK)
		}})
		ln.Fetch(f)
		<-f.done
		if got != tc.want || (len(free) > 0) != tc.asked || (tc.asked && free[0] != 256-tc.max) {
			t.Errorf("Max %d, Grow %d: round saw Max %d (Grow asked %v), want %d", tc.max, tc.grow, got, free, tc.want)
		}
	}
	// A fetch without Grow keeps its Max.
	f := newFet(context.Background(), 3, nil)
	ln := lane.New(lane.Config[*comp, *fet]{MaxCompletions: 1, MaxFetch: 256, Round: func(_ []*comp, f *fet) { f.answer(errOK) }})
	ln.Fetch(f)
	<-f.done
	if f.r.Max != 3 {
		t.Errorf("Max %d, want 3", f.r.Max)
	}
}

// Yield runs once before a round of completions only, never before one
// with a fetch; a fetch submitted by Yield rides along.
func TestYield(t *testing.T) {
	g := &gate{}
	var yields atomic.Int32
	var ln *lane.Lane[*comp, *fet]
	f := newFet(context.Background(), 1, nil)
	ln = lane.New(lane.Config[*comp, *fet]{MaxCompletions: 10, MaxFetch: 256, Round: g.round, Yield: func() {
		if yields.Add(1) == 1 {
			ln.Fetch(f)
		}
	}})
	c := newComp(context.Background())
	ln.Complete(c)
	<-c.done
	<-f.done
	poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
	if got := g.sizes(); fmt.Sprint(got) != "[[1 1]]" || yields.Load() != 1 {
		t.Errorf("rounds %v after %d yields, want [[1 1]] after 1", got, yields.Load())
	}
	// No fetch comes: one yield, then the completions go alone.
	c = newComp(context.Background())
	ln.Complete(c)
	<-c.done
	if yields.Load() != 2 {
		t.Errorf("%d yields, want 2", yields.Load())
	}
	// A fetch waiting: no yield.
	started, release := g.holdNext()
	f0 := newFet(context.Background(), 1, nil)
	ln.Fetch(f0)
	started()
	c, f = newComp(context.Background()), newFet(context.Background(), 1, nil)
	ln.Complete(c)
	ln.Fetch(f)
	release()
	<-f0.done
	<-c.done
	<-f.done
	if yields.Load() != 2 {
		t.Errorf("%d yields, want still 2", yields.Load())
	}
}

// TakeAll takes the waiting requests, not the round in flight's.
func TestTakeAll(t *testing.T) {
	g := &gate{}
	ln := newLane(g, 10)
	first, release := completing(g, ln)
	c, f := newComp(context.Background()), newFet(context.Background(), 1, nil)
	ln.Complete(c)
	ln.Fetch(f)
	cs, fs := ln.TakeAll()
	if len(cs) != 1 || cs[0] != c || len(fs) != 1 || fs[0] != f {
		t.Fatalf("TakeAll: %v %v", cs, fs)
	}
	if n, m := ln.Waiting(); n != 0 || m != 0 {
		t.Errorf("waiting after TakeAll: %d %d", n, m)
	}
	release()
	<-first.done
	poll.Until(t, 10*time.Second, "the drain to stop", func() bool { return !ln.Running() })
	if n := ln.Rounds(); n != 1 {
		t.Errorf("%d rounds, want 1", n)
	}
}

// Wait returns the reply, or ctx's error once ctx ended.
func TestWait(t *testing.T) {
	done := make(chan int, 1)
	done <- 7
	if v, err := lane.Wait(context.Background(), done); v != 7 || err != nil {
		t.Errorf("Wait: %v %v", v, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if v, err := lane.Wait(ctx, done); v != 0 || !errors.Is(err, context.Canceled) {
		t.Errorf("Wait on an ended ctx: %v %v", v, err)
	}
	errs := make(chan error, 1)
	errs <- errOK
	if err := lane.WaitErr(context.Background(), errs); err != errOK {
		t.Errorf("WaitErr: %v", err)
	}
	if err := lane.WaitErr(ctx, errs); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitErr on an ended ctx: %v", err)
	}
}
