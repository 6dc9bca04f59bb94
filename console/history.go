package console

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

// DefaultSample is Options.Sample's default.
const DefaultSample = 10 * time.Second

// DefaultHistory is Options.History's default.
const DefaultHistory = 3 * time.Hour

// maxPoints bounds the points a series keeps, whatever History/Sample.
const maxPoints = 4096

// metric is one sampled number of a primitive: a gauge, or a counter
// (charted as a rate from consecutive samples).
type metric struct {
	key string
	v   float64
}

// skey is the history key of a primitive's metric.
func skey(kind, name, metric string) string { return kind + "\x00" + name + "\x00" + metric }

type point struct {
	t int64 // unix ns
	v float64
}

// ring is a series' last len(pts) points.
type ring struct {
	pts  []point
	next int
	full bool
}

func (r *ring) add(p point) {
	r.pts[r.next] = p
	r.next++
	if r.next == len(r.pts) {
		r.next, r.full = 0, true
	}
}

// points returns a copy, oldest first.
func (r *ring) points() []point {
	if !r.full {
		return slices.Clone(r.pts[:r.next])
	}
	return slices.Concat(r.pts[r.next:], r.pts[:r.next])
}

func (r *ring) last() point {
	i := r.next - 1
	if i < 0 {
		i = len(r.pts) - 1
	}
	return r.pts[i]
}

// history is every series sampled, each bounded to size points; a
// series not sampled for keep (its primitive gone, a replica removed) is
// dropped.
type history struct {
	mu     sync.RWMutex
	size   int
	keep   time.Duration
	series map[string]*ring
}

func newHistory(keep, every time.Duration) *history {
	return &history{size: min(maxPoints, int(keep/every)+1), keep: keep, series: map[string]*ring{}}
}

func (h *history) record(now time.Time, ms []metric) {
	t := now.UnixNano()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range ms {
		r := h.series[m.key]
		if r == nil {
			r = &ring{pts: make([]point, h.size)}
			h.series[m.key] = r
		}
		r.add(point{t, m.v})
	}
	for k, r := range h.series {
		if t-r.last().t > int64(h.keep) {
			delete(h.series, k)
		}
	}
}

// get returns a copy of the series key, oldest first (nil when none).
func (h *history) get(key string) []point {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if r := h.series[key]; r != nil {
		return r.points()
	}
	return nil
}

// lastRate is the counter key's rate per second over its last two
// samples; ok is false with fewer than two.
func (h *history) lastRate(key string) (rate float64, ok bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r := h.series[key]
	if r == nil || (!r.full && r.next < 2) {
		return 0, false
	}
	b := r.last()
	i := r.next - 2
	if i < 0 {
		i += len(r.pts)
	}
	a := r.pts[i]
	return max(0, b.v-a.v) / (float64(b.t-a.t) / 1e9), b.t > a.t
}

// Start samples every primitive's numbers every Options.Sample (the first
// sample before it returns) into an in-memory history of Options.History, which the
// pages chart, until Close or until ctx is done. Without Start the pages
// show the numbers of the moment only. Sampling costs what a page render
// costs: the Stats of every primitive, one Counts per queue added with
// AddQueue (I/O, bounded by 2s). Health probes are not sampled. It returns
// an error wrapping ErrInvalid if Start was called before.
func (c *Console) Start(ctx context.Context) error {
	c.runMu.Lock()
	defer c.runMu.Unlock()
	if c.done != nil {
		return fmt.Errorf("%w: the console is started already", ErrInvalid)
	}
	c.sample()
	ctx, c.stop = context.WithCancel(ctx)
	c.done = make(chan struct{})
	c.started.Store(true)
	go c.sampleLoop(ctx, c.done)
	return nil
}

// Close stops the sampling Start began and waits for it to end; the
// history is kept and the pages still serve. It is safe to call more than
// once, and without Start.
func (c *Console) Close() error {
	c.runMu.Lock()
	stop, done := c.stop, c.done
	c.runMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	return nil
}

func (c *Console) sampleLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	t := time.NewTicker(c.o.Sample)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.sample()
		}
	}
}

// sample records one sample of every source's metrics, at the clock's now;
// the sources doing I/O run concurrently.
func (c *Console) sample() {
	now := clock.Now(c.o.Clock)
	c.mu.RLock()
	srcs := slices.Clone(c.sources)
	c.mu.RUnlock()
	parts := make([][]metric, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		switch {
		case s.sample == nil:
		case s.io:
			wg.Go(func() { parts[i] = s.sample() })
		default:
			parts[i] = s.sample()
		}
	}
	wg.Wait()
	c.hist.record(now, slices.Concat(parts...))
}

// newView is what a render at now needs: the history when sampling runs.
func (c *Console) newView(now time.Time) *view {
	v := &view{now: now, lagAmber: c.o.LagAmber, h: c.hist}
	if c.started.Load() {
		v.span = c.o.History
	}
	return v
}
