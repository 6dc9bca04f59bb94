package metrics

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/health"
)

// healthStatuses are the values of the status label.
var healthStatuses = []string{string(health.Pass), string(health.Warn), string(health.Fail)}

type healthDescs struct {
	runs, draining, probeStatus, checkUp, checkLatency *prometheus.Desc
}

func newHealthDescs(b *builder) healthDescs {
	return healthDescs{
		runs:         b.desc("scalekit_health_check_runs_total", "Health check executions (results reused from the cache are not runs)."),
		draining:     b.desc("scalekit_health_draining", "1 while readiness is forced to fail for a graceful shutdown, else 0."),
		probeStatus:  b.desc("scalekit_health_probe_status", "Status of a probe (liveness, readiness, startup): 1 for the current status (pass, warn, fail), 0 for the others.", "probe", "status"),
		checkUp:      b.desc("scalekit_health_check_up", "1 when a check of a probe passes, 0 when it fails (after flap damping).", "probe", "check"),
		checkLatency: b.desc("scalekit_health_check_latency_seconds", "How long the latest run of a check took.", "probe", "check"),
	}
}

// probeTimeout bounds the evaluation of the probes during a scrape: a
// check still running then is reported failing (with the ctx error, as a
// probe request that gave up would report it).
const probeTimeout = 5 * time.Second

// AddHealth reports h's Stats under name and, for each of probes, the
// probe's status and each of its checks' result, read with h.Run during the
// scrape. With health.Options.Interval that only reads the results of the
// background runs; without it, a check whose cached result is older than
// CacheTTL runs, as it would for a probe request, bounded by its Timeout.
// The probes are evaluated at once and the scrape waits for them at most
// 5s. The results are those of the probe's JSON: readiness includes a
// failing "draining" check while draining, startup a failing "started" one
// until MarkStarted. With no probes only the Stats are reported.
func (c *Collector) AddHealth(name string, h *health.Health, probes ...health.Kind) error {
	if h == nil {
		return nilArg("AddHealth", "the *health.Health")
	}
	seen := map[health.Kind]bool{}
	for _, k := range probes {
		if k < health.Readiness || k > health.Startup {
			return fmt.Errorf("%w: AddHealth: probe %v is not Readiness, Liveness or Startup", ErrInvalid, k)
		}
		if seen[k] {
			return fmt.Errorf("%w: AddHealth: probe %v is listed twice", ErrInvalid, k)
		}
		seen[k] = true
	}
	probes = slices.Clone(probes)
	d := &c.health
	return c.add("AddHealth", named{"health", name}, func(ch chan<- prometheus.Metric) {
		reports := make([]health.Report, len(probes))
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for i, k := range probes {
			wg.Go(func() { reports[i] = h.Run(ctx, k) })
		}
		wg.Wait()
		for i, k := range probes {
			probe := k.String()
			stateSet(ch, d.probeStatus, healthStatuses, string(reports[i].Status), name, probe)
			for _, r := range reports[i].Results {
				gauge(ch, d.checkUp, boolf(r.Status == health.Pass), name, probe, r.Name)
				gauge(ch, d.checkLatency, r.Latency.Seconds(), name, probe, r.Name)
			}
		}
		st := h.Stats() // after the probes, so it counts the runs they caused
		counter(ch, d.runs, st.Runs, name)
		gauge(ch, d.draining, boolf(st.Draining), name)
	})
}
