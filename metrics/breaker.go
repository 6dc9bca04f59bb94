package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/internal/added"
)

// circuitStates are the values of the state label of the circuits inside
// engines (cache L2, Redis limiters), as breaker.State prints them; no one
// sets those by hand.
var circuitStates = []string{breaker.Closed.String(), breaker.Open.String(), breaker.HalfOpen.String()}

// breakerStates adds the states a user's breaker can be set to by hand.
var breakerStates = slices.Concat(circuitStates,
	[]string{breaker.ForcedOpen.String(), breaker.ForcedClosed.String(), breaker.MetricsOnly.String()})

var breakerFamilies = []family[breaker.Stats]{
	stateSet("scalekit_breaker_state", "Circuit breaker state: 1 for the current state (closed, open, half-open, or one set by hand: forced-open, forced-closed, metrics-only), 0 for the others.", breakerStates, func(s breaker.Stats) string { return s.State.String() }),
	counterBy("scalekit_breaker_calls_total", "Calls through the circuit breaker by result: success, failure and ignored are recorded outcomes, rejected were refused (open, or half-open with every probe taken).", "result",
		with("success", func(s breaker.Stats) uint64 { return s.Successes }),
		with("failure", func(s breaker.Stats) uint64 { return s.Failures }),
		with("ignored", func(s breaker.Stats) uint64 { return s.Ignored }),
		with("rejected", func(s breaker.Stats) uint64 { return s.Rejected })),
	counter("scalekit_breaker_slow_calls_total", "Calls slower than the breaker's SlowCallThreshold (a subset of the recorded calls).", func(s breaker.Stats) uint64 { return s.Slow }),
	counter("scalekit_breaker_transitions_total", "Circuit breaker state changes.", func(s breaker.Stats) uint64 { return s.Transitions }),
	counter("scalekit_breaker_probe_timeouts_total", "Half-open probes that ran past HalfOpenMaxWait (hung, or an Allow never finished) and counted as failed probes.", func(s breaker.Stats) uint64 { return s.ProbeTimeouts }),
	counter("scalekit_breaker_would_trips_total", "Trips a breaker in metrics-only mode would have made (it rejects nothing).", func(s breaker.Stats) uint64 { return s.WouldTrips }),
	gauge("scalekit_breaker_consecutive_failures", "Current run of consecutive failures (closed state).", func(s breaker.Stats) int64 { return s.ConsecutiveFailures }),
	gauge("scalekit_breaker_window_calls", "Calls in the breaker's current rate window (0 without a rate threshold).", func(s breaker.Stats) int64 { return s.WindowCalls }),
	gauge("scalekit_breaker_window_failures", "Failed calls in the breaker's current rate window (0 without a rate threshold).", func(s breaker.Stats) int64 { return s.WindowFailures }),
	gauge("scalekit_breaker_window_slow_calls", "Slow calls in the breaker's current rate window (0 without a rate threshold).", func(s breaker.Stats) int64 { return s.WindowSlow }),
	gauge("scalekit_breaker_open_until_timestamp_seconds", "When an open breaker starts probing, in Unix seconds; 0 unless open.", func(s breaker.Stats) float64 { return added.UnixSeconds(s.OpenUntil) }),
}

// AddBreaker reports b's Stats under its own name (breaker.Options.Name) as
// the name label. It returns an error wrapping ErrDuplicate if a breaker of
// that name was added already.
func (c *Collector) AddBreaker(b *breaker.Breaker) error {
	if b == nil {
		return nilArg("AddBreaker", "the *breaker.Breaker")
	}
	return c.add("AddBreaker", named{"breaker", b.Name()}, func(ch chan<- prometheus.Metric) {
		st := b.Stats()
		c.breaker.collect(ch, st, st.Name)
	})
}

// AddBreakerGroup reports every breaker g holds at scrape time, each under
// its key (its Name) as the name label; a breaker the group drops leaves
// the next scrape. The keys share the name space of AddBreaker: a group key
// equal to the name of a breaker added by itself makes the registry report
// a duplicate series when it gathers.
func (c *Collector) AddBreakerGroup(g *breaker.Group) error {
	if g == nil {
		return nilArg("AddBreakerGroup", "the *breaker.Group")
	}
	return c.add("AddBreakerGroup", g, func(ch chan<- prometheus.Metric) {
		for _, st := range g.Stats() {
			c.breaker.collect(ch, st, st.Name)
		}
	})
}
