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

// healthScrape is what a scrape of AddHealth reads: the report of each
// probe, then the Stats.
type healthScrape struct {
	probes  []health.Kind
	reports []health.Report // one per probe
	stats   health.Stats
}

var healthFamilies = []family[healthScrape]{
	counter("scalekit_health_check_runs_total", "Health check executions (results reused from the cache are not runs).", func(s healthScrape) uint64 { return s.stats.Runs }),
	gauge("scalekit_health_draining", "1 while readiness is forced to fail for a graceful shutdown, else 0.", func(s healthScrape) float64 { return boolf(s.stats.Draining) }),
	gaugeFunc("scalekit_health_probe_status", "Status of a probe (liveness, readiness, startup): 1 for the current status (pass, warn, fail), 0 for the others.", []string{"probe", "status"},
		func(o out, s healthScrape) {
			for i, k := range s.probes {
				o.stateSet(healthStatuses, string(s.reports[i].Status), k.String())
			}
		}),
	gaugeFunc("scalekit_health_check_up", "1 when a check of a probe passes, 0 when it fails (after flap damping).", []string{"probe", "check"},
		func(o out, s healthScrape) {
			for i, k := range s.probes {
				for _, r := range s.reports[i].Results {
					o.send(boolf(r.Status == health.Pass), k.String(), r.Name)
				}
			}
		}),
	gaugeFunc("scalekit_health_check_latency_seconds", "How long the latest run of a check took.", []string{"probe", "check"},
		func(o out, s healthScrape) {
			for i, k := range s.probes {
				for _, r := range s.reports[i].Results {
					o.send(r.Latency.Seconds(), k.String(), r.Name)
				}
			}
		}),
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
	return c.add("AddHealth", named{"health", name}, func(ch chan<- prometheus.Metric) {
		s := healthScrape{probes: probes, reports: make([]health.Report, len(probes))}
		ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
		defer cancel()
		var wg sync.WaitGroup
		for i, k := range probes {
			wg.Go(func() { s.reports[i] = h.Run(ctx, k) })
		}
		wg.Wait()
		s.stats = h.Stats() // after the probes, so it counts the runs they caused
		c.health.collect(ch, s, name)
	})
}
