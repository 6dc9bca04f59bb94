package breaker

import (
	"sync/atomic"
	"time"
)

// window counts recent outcomes for the rate trips. Its methods are
// lock-free; a reset racing with adds may lose a count, which only delays a
// rate trip by one call.
type window interface {
	// add records one outcome and returns the window's counts after it.
	add(failed, slow bool) (calls, fails, slows int64)
	counts() (calls, fails, slows int64)
	reset()
}

const (
	slotCall uint32 = 1 << iota
	slotFail
	slotSlow
)

// countWindow is the last n calls: a ring of slots, each holding one
// outcome's bits, and running totals adjusted by what each write replaces.
type countWindow struct {
	slots               []atomic.Uint32
	pos                 atomic.Uint64
	calls, fails, slows atomic.Int64
}

func newCountWindow(n int) *countWindow { return &countWindow{slots: make([]atomic.Uint32, n)} }

func bit(v, b uint32) int64 {
	if v&b != 0 {
		return 1
	}
	return 0
}

func (w *countWindow) add(failed, slow bool) (int64, int64, int64) {
	v := slotCall
	if failed {
		v |= slotFail
	}
	if slow {
		v |= slotSlow
	}
	i := (w.pos.Add(1) - 1) % uint64(len(w.slots))
	old := w.slots[i].Swap(v)
	calls := w.calls.Add(1 - bit(old, slotCall))
	fails := w.fails.Add(bit(v, slotFail) - bit(old, slotFail))
	slows := w.slows.Add(bit(v, slotSlow) - bit(old, slotSlow))
	return calls, fails, slows
}

func (w *countWindow) counts() (int64, int64, int64) {
	return w.calls.Load(), w.fails.Load(), w.slows.Load()
}

func (w *countWindow) reset() {
	for i := range w.slots {
		w.slots[i].Store(0)
	}
	w.calls.Store(0)
	w.fails.Store(0)
	w.slows.Store(0)
}

const buckets = 10

// timeWindow is the calls of the last d, in buckets of d/10 stamped with
// the bucket number they count for; a stale bucket is reset on first use.
type timeWindow struct {
	width int64
	now   func() time.Time
	b     [buckets]struct {
		epoch               atomic.Int64
		calls, fails, slows atomic.Int64
	}
}

func newTimeWindow(d time.Duration, now func() time.Time) *timeWindow {
	w := &timeWindow{width: int64(d) / buckets, now: now}
	for i := range w.b {
		w.b[i].epoch.Store(-1)
	}
	return w
}

func (w *timeWindow) add(failed, slow bool) (int64, int64, int64) {
	e := w.now().UnixNano() / w.width
	bk := &w.b[e%buckets]
	if old := bk.epoch.Load(); old != e && old < e && bk.epoch.CompareAndSwap(old, e) {
		bk.calls.Store(0)
		bk.fails.Store(0)
		bk.slows.Store(0)
	}
	bk.calls.Add(1)
	if failed {
		bk.fails.Add(1)
	}
	if slow {
		bk.slows.Add(1)
	}
	return w.sum(e)
}

func (w *timeWindow) sum(e int64) (calls, fails, slows int64) {
	for i := range w.b {
		bk := &w.b[i]
		if ep := bk.epoch.Load(); ep > e-buckets && ep <= e {
			calls += bk.calls.Load()
			fails += bk.fails.Load()
			slows += bk.slows.Load()
		}
	}
	return
}

func (w *timeWindow) counts() (int64, int64, int64) { return w.sum(w.now().UnixNano() / w.width) }

func (w *timeWindow) reset() {
	for i := range w.b {
		w.b[i].epoch.Store(-1)
		w.b[i].calls.Store(0)
		w.b[i].fails.Store(0)
		w.b[i].slows.Store(0)
	}
}
