package console_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/queue"
)

// settable holds a Stats value a test changes between samples.
type settable[S any] struct {
	mu sync.Mutex
	s  S
}

func (x *settable[S]) Stats() S       { x.mu.Lock(); defer x.mu.Unlock(); return x.s }
func (x *settable[S]) set(f func(*S)) { x.mu.Lock(); defer x.mu.Unlock(); f(&x.s) }
func (x *workerStats) Stats() []queue.Stats {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]queue.Stats(nil), x.s...)
}

type workerStats struct {
	mu sync.Mutex
	s  []queue.Stats
}

// rowOf returns the overview's row (its HTML) holding name.
func rowOf(t *testing.T, con *console.Console, name string) string {
	t.Helper()
	body := do(t, con, "GET", "/", nil, nil).Body.String()
	for _, row := range strings.Split(body, "<tr") {
		if strings.Contains(row, ">"+name+"<") {
			return row
		}
	}
	t.Fatalf("no overview row for %q:\n%s", name, body)
	return ""
}

// Batch loaders, idempotency middlewares and queue workers have overview
// rows: green with their totals until two samples show trouble now, then
// amber (red for an idempotency Store answering 503s); green again once an
// interval passes without it.
func TestBatchIdempotencyWorkerRows(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	con := newConsole(t, console.Options{Clock: clk, Sample: 10 * time.Second})
	// A real loader whose fetch fails: its Stats count the error.
	l, err := batch.New(func(context.Context, []string) (map[string]int, error) { return nil, errors.New("db down") }, batch.Options{Wait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(context.Background(), "k"); err == nil {
		t.Fatal("the failing fetch loaded")
	}
	idem := &settable[idempotency.HTTPStats]{}
	w := &workerStats{s: []queue.Stats{{Queue: "mail", Processed: 5}, {Queue: "billing"}}}
	must(t, con.AddBatch("authors", l))
	must(t, con.AddIdempotency("payments", idem))
	must(t, con.AddQueueWorker("jobs", w))
	for _, bad := range []error{con.AddBatch("x", (*batch.Loader[string, int])(nil)), con.AddIdempotency("x", nil), con.AddQueueWorker("x", nil)} {
		if !errors.Is(bad, console.ErrInvalid) {
			t.Errorf("a nil source: %v, want ErrInvalid", bad)
		}
	}
	if err := con.AddBatch("authors", l); !errors.Is(err, console.ErrDuplicate) {
		t.Errorf("the same batch name twice: %v", err)
	}

	// Not sampled: totals, green.
	if r := rowOf(t, con, "authors"); !strings.Contains(r, "row-green") || !strings.Contains(r, "1 fetches failed since start") {
		t.Errorf("batch row before sampling: %s", r)
	}
	if r := rowOf(t, con, "jobs / mail"); !strings.Contains(r, "row-green") || !strings.Contains(r, "5 (0 failed") {
		t.Errorf("worker row: %s", r)
	}
	console.SampleNow(con)
	clk.Add(10 * time.Second)
	idem.set(func(s *idempotency.HTTPStats) { s.Unavailable, s.Executed = 3, 7 })
	w.mu.Lock()
	w.s[1].Panics, w.s[0].Paused = 2, true
	w.mu.Unlock()
	if _, err := l.Load(context.Background(), "k2"); err == nil {
		t.Fatal("the failing fetch loaded")
	}
	console.SampleNow(con)
	for name, want := range map[string][]string{
		"authors":        {"row-amber", "fetches failing: 0.1/s"},
		"payments":       {"row-red", "store failing: 0.3/s answered 503", "7 run, 0 replayed"},
		"jobs / mail":    {"row-amber", "paused: fetching nothing"},
		"jobs / billing": {"row-amber", "handlers panicking or losing leases: 0.2/s"},
	} {
		r := rowOf(t, con, name)
		for _, s := range want {
			if !strings.Contains(r, s) {
				t.Errorf("%s: no %q in %s", name, s, r)
			}
		}
	}
	// An interval without trouble: green again (but the paused queue).
	clk.Add(10 * time.Second)
	console.SampleNow(con)
	for _, name := range []string{"authors", "payments", "jobs / billing"} {
		if r := rowOf(t, con, name); !strings.Contains(r, "row-green") {
			t.Errorf("%s after a quiet interval: %s", name, r)
		}
	}
}
