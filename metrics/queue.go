package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
)

var queueWorkerFamilies = []family[queue.Stats]{
	counter("scalekit_queue_fetched_total", "Jobs the worker leased from the backend (each attempt counts).", func(s queue.Stats) uint64 { return s.Fetched }),
	counter("scalekit_queue_processed_total", "Jobs the worker completed (their handler returned nil and the backend recorded it).", func(s queue.Stats) uint64 { return s.Processed }),
	counter("scalekit_queue_failed_total", "Failed attempts (handler errors and panics), of which retried were scheduled again and dead_lettered went to the dead letters.", func(s queue.Stats) uint64 { return s.Failed }),
	counter("scalekit_queue_retried_total", "Failed attempts scheduled again after the backoff.", func(s queue.Stats) uint64 { return s.Retried }),
	counter("scalekit_queue_dead_lettered_total", "Jobs that went to the dead letters: out of attempts, or failed with queue.Permanent.", func(s queue.Stats) uint64 { return s.Dead }),
	counter("scalekit_queue_released_total", "Jobs given back to the backend at shutdown, due at once, the attempt not counted.", func(s queue.Stats) uint64 { return s.Released }),
	counter("scalekit_queue_leases_lost_total", "Leases that expired under the worker (another worker took the job): the handler was cancelled and no outcome recorded.", func(s queue.Stats) uint64 { return s.Lost }),
	counter("scalekit_queue_cancelled_total", "Jobs stopped while they ran because they were cancelled (Client.Cancel) or deleted (Client.Delete): the handler was cancelled and no outcome recorded.", func(s queue.Stats) uint64 { return s.Cancelled }),
	counter("scalekit_queue_handler_panics_total", "Handler panics (each also a failed attempt).", func(s queue.Stats) uint64 { return s.Panics }),
	counter("scalekit_queue_rate_limited_total", "Jobs given back unrun because the queue's Limiter refused them (the attempt not counted).", func(s queue.Stats) uint64 { return s.Limited }),
	counter("scalekit_queue_snoozed_total", "Jobs whose handler returned queue.Snooze: given back to run later, the attempt not counted.", func(s queue.Stats) uint64 { return s.Snoozed }),
	gauge("scalekit_queue_in_flight", "Jobs whose handler runs in the worker now.", func(s queue.Stats) int64 { return s.InFlight }),
}

// AddQueueWorker reports w's Stats under name, one series per queue the
// worker consumes (the queue label). The counters are this worker's; the
// state of a queue across every worker is AddQueue's.
func (c *Collector) AddQueueWorker(name string, w *queue.Worker) error {
	if w == nil {
		return nilArg("AddQueueWorker", "the *queue.Worker")
	}
	return c.add("AddQueueWorker", named{"queue worker", name}, func(ch chan<- prometheus.Metric) {
		for _, st := range w.Stats() {
			c.queueWorker.collect(ch, st, name, st.Queue)
		}
	})
}

// queueCount is a queue's counts as a scrape of AddQueue read them, or
// the error that kept it from reading them.
type queueCount = added.QueueCount

var queueCountFamilies = []family[queueCount]{
	gauge("scalekit_queue_counts_up", "1 when the backend answered the scrape's count of the queue's jobs, 0 when the count failed or ran out of its 2s; the queue's jobs and oldest_pending series are then left out.", func(n queueCount) float64 { return added.Boolf(n.Err == nil) }),
	gaugeFunc("scalekit_queue_jobs", "Jobs of the queue in the backend, by state: pending, scheduled, active, retry, dead, done, cancelled (done jobs for the backend's retention, dead and cancelled ones for its dead retention).", []string{"state"},
		func(o out, n queueCount) {
			if n.Err != nil {
				return
			}
			o.send(float64(n.Pending), string(queue.Pending))
			o.send(float64(n.Scheduled), string(queue.Scheduled))
			o.send(float64(n.Active), string(queue.Active))
			o.send(float64(n.Retry), string(queue.Retry))
			o.send(float64(n.Dead), string(queue.Dead))
			o.send(float64(n.Done), string(queue.Done))
			o.send(float64(n.Cancelled), string(queue.Cancelled))
		}),
	gaugeFunc("scalekit_queue_oldest_pending_seconds", "Age of the oldest job due to run and not yet taken (the queue's lag); 0 when none waits.", nil,
		func(o out, n queueCount) {
			if n.Err == nil {
				o.send(n.OldestPending.Seconds())
			}
		}),
}

// AddQueue reports, under name, each of queues as the backend behind c
// counts it: jobs per state and the age of the oldest pending job. These
// are the queue's numbers across every worker and producer, unlike
// AddQueueWorker's.
//
// Unlike the other Add methods but AddHealth, this one does I/O during
// the scrape: one Client.Counts per queue (a query on queuepg, a script on
// queueredis), all at once, with a ctx that ends after 2s. A queue whose
// count fails or times out gets scalekit_queue_counts_up 0 and no jobs or
// oldest_pending series for that scrape, rather than a failed scrape or
// made-up zeros; alert on scalekit_queue_counts_up == 0. The backend must
// honour the ctx (the scalekit backends do). The Collector reads its
// primitives one after another, so each AddQueue may add up to 2s to a
// scrape: list a backend's queues in one call.
//
// queues must name at least one queue, each a valid queue name (1 to 100
// letters, digits, '_', '.', ':' or '-') listed once.
func (c *Collector) AddQueue(name string, cl *queue.Client, queues ...string) error {
	if cl == nil {
		return nilArg("AddQueue", "the *queue.Client")
	}
	queues, err := added.CheckQueues(queues)
	if err != nil {
		return fmt.Errorf("%w: AddQueue: %v", ErrInvalid, err)
	}
	return c.add("AddQueue", named{"queue client", name}, func(ch chan<- prometheus.Metric) {
		for _, n := range added.ReadCounts(cl, queues) {
			c.queueCounts.collect(ch, n, name, n.Queue)
		}
	})
}

var schedulerFamilies = []family[queue.ScheduleStats]{
	counterBy("scalekit_queue_periodic_ticks_total", "Ticks of a periodic schedule this scheduler handled, by outcome: emitted (it enqueued the job), duplicate (the job was already enqueued, by another instance), overlapped (skipped: the previous run was not finished), missed (let go: nobody enqueued it before the start, or it passed while the scheduler was held up), failed (enqueue attempts that failed, each retried).", "outcome",
		with("emitted", func(s queue.ScheduleStats) uint64 { return s.Emitted }),
		with("duplicate", func(s queue.ScheduleStats) uint64 { return s.Duplicates }),
		with("overlapped", func(s queue.ScheduleStats) uint64 { return s.Overlapped }),
		with("missed", func(s queue.ScheduleStats) uint64 { return s.Missed }),
		with("failed", func(s queue.ScheduleStats) uint64 { return s.Failed })),
	gaugeFunc("scalekit_queue_periodic_next_tick_timestamp_seconds", "When the schedule's next tick is due (Unix time); a value in the past means the scheduler is behind.", nil,
		func(o out, s queue.ScheduleStats) {
			if !s.Next.IsZero() {
				o.send(float64(s.Next.UnixNano()) / 1e9)
			}
		}),
}

// AddScheduler reports s's Stats under name: one series per registered
// schedule (the schedule label), read at scrape time. Every instance of
// a fleet counts the ticks it saw, so sum emitted across instances for
// the jobs enqueued.
func (c *Collector) AddScheduler(name string, s interface{ Stats() queue.SchedulerStats }) error {
	if isNil(s) {
		return nilArg("AddScheduler", "the scheduler")
	}
	return c.add("AddScheduler", named{"scheduler", name}, func(ch chan<- prometheus.Metric) {
		for _, st := range s.Stats().Schedules {
			c.scheduler.collect(ch, st, name, st.Name)
		}
	})
}
