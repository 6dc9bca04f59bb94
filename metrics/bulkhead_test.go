package metrics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// TestBulkheadAndTimeout fills a bulkhead, rejects a sheddable call, and
// times one call out, then compares the exposition.
func TestBulkheadAndTimeout(t *testing.T) {
	ctx := context.Background()
	bh := must[*bulkhead.Bulkhead](t)(bulkhead.New(bulkhead.Options{Name: "inventory", MaxConcurrent: 1, NoQueue: true}))
	release := must[func()](t)(bh.Acquire(ctx))
	if err := bh.Do(priority.With(ctx, priority.Sheddable), ok); !errors.Is(err, bulkhead.ErrQueueFull) {
		t.Fatalf("full bulkhead: %v", err)
	}
	tm := must[*timeout.Timeout](t)(timeout.New(timeout.Options{Timeout: time.Millisecond}))
	_ = tm.Do(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	_ = tm.Do(ctx, ok)

	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddBulkhead(bh))
	noErr(t, m.AddTimeout("inventory-attempt", tm))
	if err := m.AddBulkhead(nil); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("AddBulkhead(nil) = %v", err)
	}
	if err := m.AddTimeout("x", nil); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("AddTimeout(nil) = %v", err)
	}
	if err := m.AddBulkhead(bh); !errors.Is(err, metrics.ErrDuplicate) {
		t.Errorf("AddBulkhead twice = %v", err)
	}
	expect(t, m, "scalekit_bulkhead_", `
		# TYPE scalekit_bulkhead_admitted_total counter
		scalekit_bulkhead_admitted_total{name="inventory"} 1
		# TYPE scalekit_bulkhead_cancelled_total counter
		scalekit_bulkhead_cancelled_total{name="inventory"} 0
		# TYPE scalekit_bulkhead_in_flight gauge
		scalekit_bulkhead_in_flight{name="inventory"} 1
		# TYPE scalekit_bulkhead_max_concurrent gauge
		scalekit_bulkhead_max_concurrent{name="inventory"} 1
		# TYPE scalekit_bulkhead_max_waiting gauge
		scalekit_bulkhead_max_waiting{name="inventory"} 0
		# TYPE scalekit_bulkhead_rejections_by_class_total counter
		scalekit_bulkhead_rejections_by_class_total{class="critical",name="inventory"} 0
		scalekit_bulkhead_rejections_by_class_total{class="default",name="inventory"} 0
		scalekit_bulkhead_rejections_by_class_total{class="sheddable",name="inventory"} 1
		# TYPE scalekit_bulkhead_rejections_total counter
		scalekit_bulkhead_rejections_total{name="inventory",reason="max_wait"} 0
		scalekit_bulkhead_rejections_total{name="inventory",reason="queue_full"} 1
		scalekit_bulkhead_rejections_total{name="inventory",reason="shed"} 0
		# TYPE scalekit_bulkhead_waited_total counter
		scalekit_bulkhead_waited_total{name="inventory"} 0
		# TYPE scalekit_bulkhead_waiting gauge
		scalekit_bulkhead_waiting{name="inventory"} 0
	`)
	expect(t, m, "scalekit_timeout_", `
		# TYPE scalekit_timeout_calls_total counter
		scalekit_timeout_calls_total{name="inventory-attempt"} 2
		# TYPE scalekit_timeout_timeouts_total counter
		scalekit_timeout_timeouts_total{name="inventory-attempt"} 1
	`)
	release()

	clk := testclock.New()
	th := must[*throttle.Throttler](t)(throttle.New(throttle.Options{Name: "inventory", Clock: clk}))
	for range 3 {
		_ = th.Do(ctx, fail)
	}
	_ = th.Do(ctx, ok)
	noErr(t, m.AddThrottler(th))
	if err := m.AddThrottler(nil); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("AddThrottler(nil) = %v", err)
	}
	// Which calls were refused locally depends on the draw; the counts
	// of calls and of the window's requests do not.
	expect(t, m, "scalekit_throttle_calls_", `
		# TYPE scalekit_throttle_calls_total counter
		scalekit_throttle_calls_total{name="inventory"} 4
	`)
	expect(t, m, "scalekit_throttle_window_requests", `
		# TYPE scalekit_throttle_window_requests gauge
		scalekit_throttle_window_requests{name="inventory"} 4
	`)
	if s := th.Stats(); s.Rejected+s.Throttled.Default != 3+boolToUint(s.Accepts == 0) {
		t.Errorf("throttler Stats %+v: the 3 failures are either rejected or throttled", s)
	}
}

func boolToUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
