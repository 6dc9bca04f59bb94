package metrics_test

import (
	"context"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/queue"
)

// TestScheduler: two instances of one schedule; the exported counters say
// which enqueued the tick and which found it there, and when the next is
// due.
func TestScheduler(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC))
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk})
	sc := []queue.Schedule{{Name: "refresh", Every: time.Minute, Queue: "q", Kind: "k"}}
	a := must[*queue.Scheduler](t)(queue.NewScheduler(queue.SchedulerOptions{Backend: b, Clock: clk, Schedules: sc}))
	other := must[*queue.Scheduler](t)(queue.NewScheduler(queue.SchedulerOptions{Backend: b, Clock: clk, Schedules: sc}))
	defer a.Close()
	defer other.Close()
	noErr(t, a.RunDue(ctx))
	noErr(t, other.RunDue(ctx))
	clk.Add(time.Minute)
	noErr(t, a.RunDue(ctx))
	noErr(t, other.RunDue(ctx))
	m := newCollector(t, metrics.Options{Instance: "api-1"})
	noErr(t, m.AddScheduler("cron", a))
	noErr(t, m.AddScheduler("cron-2", other))
	expect(t, m, "scalekit_queue_periodic", `
		# TYPE scalekit_queue_periodic_next_tick_timestamp_seconds gauge
		scalekit_queue_periodic_next_tick_timestamp_seconds{instance_name="api-1",name="cron",schedule="refresh"} 1.76722572e+09
		scalekit_queue_periodic_next_tick_timestamp_seconds{instance_name="api-1",name="cron-2",schedule="refresh"} 1.76722572e+09
		# TYPE scalekit_queue_periodic_ticks_total counter
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron",outcome="duplicate",schedule="refresh"} 0
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron",outcome="emitted",schedule="refresh"} 1
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron",outcome="failed",schedule="refresh"} 0
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron",outcome="missed",schedule="refresh"} 1
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron",outcome="overlapped",schedule="refresh"} 0
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron-2",outcome="duplicate",schedule="refresh"} 1
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron-2",outcome="emitted",schedule="refresh"} 0
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron-2",outcome="failed",schedule="refresh"} 0
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron-2",outcome="missed",schedule="refresh"} 1
		scalekit_queue_periodic_ticks_total{instance_name="api-1",name="cron-2",outcome="overlapped",schedule="refresh"} 0
	`)
	if err := m.AddScheduler("nil", (*queue.Scheduler)(nil)); err == nil {
		t.Fatal("AddScheduler(nil) accepted")
	}
}
