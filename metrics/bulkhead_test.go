package metrics_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
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

// TestPacerAndShedder: a pacer's refusals and an SLO shedder's level and
// sheds, compared in exposition.
func TestPacerAndShedder(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit", `"default";r=0;t=60`)
	}))
	defer srv.Close()
	p := &retry.Pacer{Base: srv.Client().Transport}
	c := &http.Client{Transport: p}
	for range 2 {
		if resp, err := c.Get(srv.URL); err == nil {
			resp.Body.Close()
		}
	}
	clk := testclock.New()
	o := must[*slo.SLO](t)(slo.New(slo.Options{Name: "api", Target: 0.99, Clock: clk}))
	for range 100 {
		o.Record(false)
	}
	sh := must[*slo.Shedder](t)(slo.NewShedder(slo.ShedderOptions{Objectives: []*slo.SLO{o}, Clock: clk}))
	_ = sh.Do(priority.With(ctx, priority.Sheddable), ok)
	_ = sh.Do(priority.With(ctx, priority.Critical), ok)

	m := newCollector(t, metrics.Options{})
	noErr(t, m.AddRetryPacer("inventory", p))
	noErr(t, m.AddSLOShedder("api", sh))
	if err := m.AddSLOShedder("x", nil); !errors.Is(err, metrics.ErrInvalid) {
		t.Errorf("AddSLOShedder(nil) = %v", err)
	}
	expect(t, m, "scalekit_retry_pacer_", `
		# TYPE scalekit_retry_pacer_requests_total counter
		scalekit_retry_pacer_requests_total{name="inventory",result="refused"} 1
		scalekit_retry_pacer_requests_total{name="inventory",result="sent"} 1
		scalekit_retry_pacer_requests_total{name="inventory",result="waited"} 0
	`)
	expect(t, m, "scalekit_slo_shed_", `
		# TYPE scalekit_slo_shed_level gauge
		scalekit_slo_shed_level{name="api",state="default"} 1
		scalekit_slo_shed_level{name="api",state="none"} 0
		scalekit_slo_shed_level{name="api",state="sheddable"} 0
		# TYPE scalekit_slo_shed_total counter
		scalekit_slo_shed_total{class="critical",name="api"} 0
		scalekit_slo_shed_total{class="default",name="api"} 0
		scalekit_slo_shed_total{class="sheddable",name="api"} 1
	`)
}
