package metrics_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/metrics"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/retry"
)

// job is the args of the test jobs: Mode says what the handler does.
type job struct{ Mode string }

// handle is the handler of the test jobs.
func handle(ctx context.Context, j *queue.Job[job]) error {
	switch j.Args.Mode {
	case "flaky": // fails its first attempt
		if j.Attempt == 1 {
			return errBoom
		}
	case "failing":
		return errBoom
	case "permanent":
		return queue.Permanent(errBoom)
	case "panic":
		panic("boom")
	case "snooze": // snoozes its first run for 10s
		if j.Snoozes == 0 {
			return queue.Snooze(10 * time.Second)
		}
	case "block": // runs until its ctx ends
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// TestQueue runs a real Worker over a MemoryBackend, in a synctest bubble
// so time is exact, through every outcome: jobs that succeed, fail once,
// fail for good, panic, lose their lease to another consumer, and one
// released at shutdown. AddQueueWorker reports what the worker did,
// AddQueue what the backend holds.
func TestQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		var skew atomic.Int64 // moves the queue's clock ahead, to expire a lease
		clk := clock.Func(func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
		b := queue.NewMemoryBackend(queue.MemoryBackendOptions{Clock: clk})
		c := must[*queue.Client](t)(queue.NewClient(queue.ClientOptions{Backend: b, Clock: clk}))
		w := must[*queue.Worker](t)(queue.NewWorker(queue.WorkerOptions{Backend: b, Clock: clk, Backoff: retry.Constant{D: time.Minute},
			Queues: map[string]queue.Options{"emails": {Lease: 30 * time.Second}, "reports": {}}}))
		noErr(t, queue.Handle(w, "send", handle))
		enqueue := func(mode string, o queue.EnqueueOptions) string {
			t.Helper()
			return must[string](t)(c.Enqueue(ctx, "emails", "send", job{mode}, o))
		}
		m := newCollector(t, metrics.Options{Instance: "api-1"})
		noErr(t, m.AddQueueWorker("mailer", w))
		noErr(t, m.AddQueue("mailer", c, "emails", "reports"))

		enqueue("ok", queue.EnqueueOptions{})
		enqueue("flaky", queue.EnqueueOptions{MaxAttempts: 3})
		enqueue("permanent", queue.EnqueueOptions{})
		enqueue("panic", queue.EnqueueOptions{MaxAttempts: 1})
		enqueue("snooze", queue.EnqueueOptions{MaxAttempts: 1})
		noErr(t, w.Start(ctx))
		synctest.Wait()
		time.Sleep(time.Minute + time.Second) // flaky's retry runs
		synctest.Wait()

		// A lease lost: the clock jumps past it and another consumer takes
		// the job; the worker's next renewal finds it gone.
		stolen := enqueue("block", queue.EnqueueOptions{})
		synctest.Wait()
		expect(t, m, "scalekit_queue_in_flight", `
			# TYPE scalekit_queue_in_flight gauge
			scalekit_queue_in_flight{instance_name="api-1",name="mailer",queue="emails"} 1
			scalekit_queue_in_flight{instance_name="api-1",name="mailer",queue="reports"} 0
		`)
		skew.Store(int64(time.Hour))
		leases := must[[]*queue.Lease](t)(b.Fetch(ctx, queue.FetchRequest{Queue: "emails", Max: 1, Lease: 24 * time.Hour, Order: [3]queue.Priority{queue.High, queue.Default, queue.Low}}))
		if len(leases) != 1 || leases[0].Msg.ID != stolen {
			t.Fatalf("took %v, want the job whose lease expired", leases)
		}
		time.Sleep(10 * time.Second) // the renewal (every Lease/3)
		synctest.Wait()

		// A running job cancelled: the renewal finds its lease gone and
		// the job cancelled, which is not a lost lease.
		cancelled := enqueue("block", queue.EnqueueOptions{})
		synctest.Wait()
		noErr(t, c.Cancel(ctx, "emails", cancelled))
		time.Sleep(10 * time.Second)
		synctest.Wait()

		// One job left to retry, one running when the worker closes: it is
		// released, and waits 30s.
		enqueue("failing", queue.EnqueueOptions{MaxAttempts: 5})
		enqueue("block", queue.EnqueueOptions{})
		enqueue("ok", queue.EnqueueOptions{Delay: 6 * time.Hour})
		synctest.Wait()
		noErr(t, w.Close())
		time.Sleep(30 * time.Second)

		const want = `
# HELP scalekit_queue_cancelled_total Jobs stopped while they ran because they were cancelled (Client.Cancel) or deleted (Client.Delete): the handler was cancelled and no outcome recorded.
# TYPE scalekit_queue_cancelled_total counter
scalekit_queue_cancelled_total{instance_name="api-1",name="mailer",queue="emails"} 1
scalekit_queue_cancelled_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_dead_lettered_total Jobs that went to the dead letters: out of attempts, or failed with queue.Permanent.
# TYPE scalekit_queue_dead_lettered_total counter
scalekit_queue_dead_lettered_total{instance_name="api-1",name="mailer",queue="emails"} 2
scalekit_queue_dead_lettered_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_failed_total Failed attempts (handler errors and panics), of which retried were scheduled again and dead_lettered went to the dead letters.
# TYPE scalekit_queue_failed_total counter
scalekit_queue_failed_total{instance_name="api-1",name="mailer",queue="emails"} 4
scalekit_queue_failed_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_fetched_total Jobs the worker leased from the backend (each attempt counts).
# TYPE scalekit_queue_fetched_total counter
scalekit_queue_fetched_total{instance_name="api-1",name="mailer",queue="emails"} 11
scalekit_queue_fetched_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_handler_panics_total Handler panics (each also a failed attempt).
# TYPE scalekit_queue_handler_panics_total counter
scalekit_queue_handler_panics_total{instance_name="api-1",name="mailer",queue="emails"} 1
scalekit_queue_handler_panics_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_in_flight Jobs whose handler runs in the worker now.
# TYPE scalekit_queue_in_flight gauge
scalekit_queue_in_flight{instance_name="api-1",name="mailer",queue="emails"} 0
scalekit_queue_in_flight{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_leases_lost_total Leases that expired under the worker (another worker took the job): the handler was cancelled and no outcome recorded.
# TYPE scalekit_queue_leases_lost_total counter
scalekit_queue_leases_lost_total{instance_name="api-1",name="mailer",queue="emails"} 1
scalekit_queue_leases_lost_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_processed_total Jobs the worker completed (their handler returned nil and the backend recorded it).
# TYPE scalekit_queue_processed_total counter
scalekit_queue_processed_total{instance_name="api-1",name="mailer",queue="emails"} 3
scalekit_queue_processed_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_rate_limited_total Jobs given back unrun because the queue's Limiter refused them (the attempt not counted).
# TYPE scalekit_queue_rate_limited_total counter
scalekit_queue_rate_limited_total{instance_name="api-1",name="mailer",queue="emails"} 0
scalekit_queue_rate_limited_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_released_total Jobs given back to the backend at shutdown, due at once, the attempt not counted.
# TYPE scalekit_queue_released_total counter
scalekit_queue_released_total{instance_name="api-1",name="mailer",queue="emails"} 1
scalekit_queue_released_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_retried_total Failed attempts scheduled again after the backoff.
# TYPE scalekit_queue_retried_total counter
scalekit_queue_retried_total{instance_name="api-1",name="mailer",queue="emails"} 2
scalekit_queue_retried_total{instance_name="api-1",name="mailer",queue="reports"} 0
# HELP scalekit_queue_snoozed_total Jobs whose handler returned queue.Snooze: given back to run later, the attempt not counted.
# TYPE scalekit_queue_snoozed_total counter
scalekit_queue_snoozed_total{instance_name="api-1",name="mailer",queue="emails"} 1
scalekit_queue_snoozed_total{instance_name="api-1",name="mailer",queue="reports"} 0
`
		workerFamilies := []string{"scalekit_queue_cancelled_total", "scalekit_queue_dead_lettered_total", "scalekit_queue_failed_total", "scalekit_queue_fetched_total",
			"scalekit_queue_handler_panics_total", "scalekit_queue_in_flight", "scalekit_queue_leases_lost_total",
			"scalekit_queue_processed_total", "scalekit_queue_rate_limited_total", "scalekit_queue_released_total", "scalekit_queue_retried_total",
			"scalekit_queue_snoozed_total"}
		if err := testutil.CollectAndCompare(m, strings.NewReader(want), workerFamilies...); err != nil {
			t.Error(err)
		}

		// The backend's view: the released job pending for 30s, the stolen
		// one still active under its new holder, the failing one waiting
		// for its retry, the delayed one scheduled.
		expect(t, m, "scalekit_queue_counts_up", `
			# TYPE scalekit_queue_counts_up gauge
			scalekit_queue_counts_up{instance_name="api-1",name="mailer",queue="emails"} 1
			scalekit_queue_counts_up{instance_name="api-1",name="mailer",queue="reports"} 1
		`)
		expect(t, m, "scalekit_queue_jobs", `
			# TYPE scalekit_queue_jobs gauge
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="active"} 1
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="cancelled"} 1
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="dead"} 2
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="done"} 3
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="pending"} 1
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="retry"} 1
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="emails",state="scheduled"} 1
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="active"} 0
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="cancelled"} 0
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="dead"} 0
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="done"} 0
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="pending"} 0
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="retry"} 0
			scalekit_queue_jobs{instance_name="api-1",name="mailer",queue="reports",state="scheduled"} 0
		`)
		expect(t, m, "scalekit_queue_oldest", `
			# TYPE scalekit_queue_oldest_pending_seconds gauge
			scalekit_queue_oldest_pending_seconds{instance_name="api-1",name="mailer",queue="emails"} 30
			scalekit_queue_oldest_pending_seconds{instance_name="api-1",name="mailer",queue="reports"} 0
		`)
	})
}

// downBackend is a MemoryBackend that cannot count, as a backend that is
// down fails.
type downBackend struct{ *queue.MemoryBackend }

func (downBackend) Counts(context.Context, string) (queue.Counts, error) {
	return queue.Counts{}, errors.New("connection refused")
}

// hungBackend is a MemoryBackend whose counts never come, as a hung
// server's: Counts returns when its ctx ends.
type hungBackend struct{ *queue.MemoryBackend }

func (hungBackend) Counts(ctx context.Context, _ string) (queue.Counts, error) {
	<-ctx.Done()
	return queue.Counts{}, ctx.Err()
}

// TestQueueBackendDown: a queue whose backend fails or hangs reports
// scalekit_queue_counts_up 0 and no counts, within 2s for all its queues,
// and the scrape still succeeds with the other queues' counts.
func TestQueueBackendDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		client := func(b queue.Backend) *queue.Client {
			return must[*queue.Client](t)(queue.NewClient(queue.ClientOptions{Backend: b}))
		}
		mem := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
		must[string](t)(client(mem).Enqueue(ctx, "emails", "send", nil, queue.EnqueueOptions{}))
		m := newCollector(t, metrics.Options{})
		noErr(t, m.AddQueue("up", client(mem), "emails"))
		noErr(t, m.AddQueue("down", client(downBackend{mem}), "emails"))
		noErr(t, m.AddQueue("hung", client(hungBackend{mem}), "emails", "reports"))
		start := time.Now()
		expect(t, m, "scalekit_queue_", `
			# TYPE scalekit_queue_counts_up gauge
			scalekit_queue_counts_up{name="down",queue="emails"} 0
			scalekit_queue_counts_up{name="hung",queue="emails"} 0
			scalekit_queue_counts_up{name="hung",queue="reports"} 0
			scalekit_queue_counts_up{name="up",queue="emails"} 1
			# TYPE scalekit_queue_jobs gauge
			scalekit_queue_jobs{name="up",queue="emails",state="active"} 0
			scalekit_queue_jobs{name="up",queue="emails",state="cancelled"} 0
			scalekit_queue_jobs{name="up",queue="emails",state="dead"} 0
			scalekit_queue_jobs{name="up",queue="emails",state="done"} 0
			scalekit_queue_jobs{name="up",queue="emails",state="pending"} 1
			scalekit_queue_jobs{name="up",queue="emails",state="retry"} 0
			scalekit_queue_jobs{name="up",queue="emails",state="scheduled"} 0
			# TYPE scalekit_queue_oldest_pending_seconds gauge
			scalekit_queue_oldest_pending_seconds{name="up",queue="emails"} 0
		`)
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("the scrape took %v, want the 2s bound once for both hung queues", d)
		}
	})
}
