package metrics

import (
	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

// byClass is the series of a priority.Counts, one per class.
func byClass[S any](v func(S) priority.Counts) []series[S] {
	var ss []series[S]
	for _, c := range priority.Classes {
		ss = append(ss, with(c.String(), func(s S) uint64 { return v(s).Of(c) }))
	}
	return ss
}

var bulkheadFamilies = []family[bulkhead.Stats]{
	gauge("scalekit_bulkhead_max_concurrent", "Most calls a bulkhead runs at once (Options.MaxConcurrent).", func(s bulkhead.Stats) int { return s.MaxConcurrent }),
	gauge("scalekit_bulkhead_max_waiting", "Most calls a bulkhead queues (Options.MaxWaiting).", func(s bulkhead.Stats) int { return s.MaxWaiting }),
	gauge("scalekit_bulkhead_in_flight", "Calls holding a slot of the bulkhead now.", func(s bulkhead.Stats) int { return s.InFlight }),
	gauge("scalekit_bulkhead_waiting", "Calls waiting for a slot of the bulkhead now.", func(s bulkhead.Stats) int { return s.Waiting }),
	counter("scalekit_bulkhead_admitted_total", "Calls given a slot, at once or after waiting.", func(s bulkhead.Stats) uint64 { return s.Admitted }),
	counter("scalekit_bulkhead_waited_total", "Calls given a slot after waiting in the queue.", func(s bulkhead.Stats) uint64 { return s.Waited }),
	counterBy("scalekit_bulkhead_rejections_total", "Calls rejected, by reason: queue_full (ErrQueueFull), max_wait (ErrMaxWait) or shed (ErrShed, displaced by a call of a higher priority class).", "reason",
		with("queue_full", func(s bulkhead.Stats) uint64 { return s.QueueFull }),
		with("max_wait", func(s bulkhead.Stats) uint64 { return s.MaxWait }),
		with("shed", func(s bulkhead.Stats) uint64 { return s.Shed })),
	counterBy("scalekit_bulkhead_rejections_by_class_total", "Calls rejected, by the caller's priority class: sheddable, default or critical.", "class",
		byClass(func(s bulkhead.Stats) priority.Counts { return s.Rejected })...),
	counter("scalekit_bulkhead_cancelled_total", "Waiting calls whose ctx ended before they got a slot.", func(s bulkhead.Stats) uint64 { return s.Cancelled }),
}

// AddBulkhead reports b's Stats under its Options.Name.
func (c *Collector) AddBulkhead(b *bulkhead.Bulkhead) error {
	if isNil(b) {
		return nilArg("AddBulkhead", "the *bulkhead.Bulkhead")
	}
	return addStats(c, "AddBulkhead", "the *bulkhead.Bulkhead", b, named{"bulkhead", b.Name()}, &c.bulkhead)
}

var timeoutFamilies = []family[timeout.Stats]{
	counter("scalekit_timeout_calls_total", "Calls run under the timeout.", func(s timeout.Stats) uint64 { return s.Calls }),
	counter("scalekit_timeout_timeouts_total", "Calls that failed past the timeout's deadline (a *timeout.Error returned).", func(s timeout.Stats) uint64 { return s.Timeouts }),
}

// AddTimeout reports t's Stats under name.
func (c *Collector) AddTimeout(name string, t *timeout.Timeout) error {
	return addStats(c, "AddTimeout", "the *timeout.Timeout", t, named{"timeout", name}, &c.timeout)
}

var throttleFamilies = []family[throttle.Stats]{
	counter("scalekit_throttle_calls_total", "Calls to the adaptive throttler.", func(s throttle.Stats) uint64 { return s.Calls }),
	counterBy("scalekit_throttle_throttled_total", "Calls refused locally (ErrThrottled), by the caller's priority class: sheddable, default or critical.", "class",
		byClass(func(s throttle.Stats) priority.Counts { return s.Throttled })...),
	counter("scalekit_throttle_rejected_total", "Calls the backend refused (Options.Rejected).", func(s throttle.Stats) uint64 { return s.Rejected }),
	gauge("scalekit_throttle_window_requests", "Requests counted in the sliding window now.", func(s throttle.Stats) uint64 { return s.Requests }),
	gauge("scalekit_throttle_window_accepts", "Accepts counted in the sliding window now.", func(s throttle.Stats) uint64 { return s.Accepts }),
	gauge("scalekit_throttle_probability_ratio", "Probability that a call of the default class is refused locally now.", func(s throttle.Stats) float64 { return s.Probability }),
}

// AddThrottler reports t's Stats under its Options.Name.
func (c *Collector) AddThrottler(t *throttle.Throttler) error {
	if isNil(t) {
		return nilArg("AddThrottler", "the *throttle.Throttler")
	}
	return addStats(c, "AddThrottler", "the *throttle.Throttler", t, named{"throttler", t.Name()}, &c.throttle)
}

var pacerFamilies = []family[retry.PacerStats]{
	counterBy("scalekit_retry_pacer_requests_total", "Requests through a pacer, by result: sent, waited (sent after waiting for the server's quota) or refused (not sent: the quota was spent).", "result",
		with("sent", func(s retry.PacerStats) uint64 { return s.Sent - s.Waited }),
		with("waited", func(s retry.PacerStats) uint64 { return s.Waited }),
		with("refused", func(s retry.PacerStats) uint64 { return s.Refused })),
}

// AddRetryPacer reports p's Stats under name.
func (c *Collector) AddRetryPacer(name string, p *retry.Pacer) error {
	return addStats(c, "AddRetryPacer", "the *retry.Pacer", p, named{"pacer", name}, &c.pacer)
}

var shedderFamilies = []family[slo.ShedderStats]{
	stateSet("scalekit_slo_shed_level", "What an SLO shedder sheds now: 1 for the current level (none, sheddable, default), 0 for the others.", shedLevels, func(s slo.ShedderStats) string { return s.Level.String() }),
	counterBy("scalekit_slo_shed_total", "Calls an SLO shedder shed, by priority class: sheddable, default or critical.", "class",
		byClass(func(s slo.ShedderStats) priority.Counts { return s.Shed })...),
}

// shedLevels are the values of scalekit_slo_shed_level's state label.
var shedLevels = []string{slo.ShedNone.String(), slo.ShedSheddable.String(), slo.ShedDefault.String()}

// AddSLOShedder reports s's Stats under name.
func (c *Collector) AddSLOShedder(name string, s *slo.Shedder) error {
	return addStats(c, "AddSLOShedder", "the *slo.Shedder", s, named{"slo shedder", name}, &c.shedder)
}
