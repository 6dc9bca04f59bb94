package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/internal/added"
)

// healthStatuses are the values of the status label.
var healthStatuses = []string{string(health.Pass), string(health.Warn), string(health.Fail)}

// healthScrape is what a scrape of AddHealth reads.
type healthScrape = added.HealthRead

var healthFamilies = []family[healthScrape]{
	counter("scalekit_health_check_runs_total", "Health check executions (results reused from the cache are not runs).", func(s healthScrape) uint64 { return s.Stats.Runs }),
	gauge("scalekit_health_draining", "1 while readiness is forced to fail for a graceful shutdown, else 0.", func(s healthScrape) float64 { return added.Boolf(s.Stats.Draining) }),
	gaugeFunc("scalekit_health_probe_status", "Status of a probe (liveness, readiness, startup): 1 for the current status (pass, warn, fail), 0 for the others.", []string{"probe", "status"},
		func(o out, s healthScrape) {
			for i, k := range s.Probes {
				o.stateSet(healthStatuses, string(s.Reports[i].Status), k.String())
			}
		}),
	gaugeFunc("scalekit_health_check_up", "1 when a check of a probe passes, 0 when it fails (after flap damping).", []string{"probe", "check"},
		func(o out, s healthScrape) {
			for i, k := range s.Probes {
				for _, r := range s.Reports[i].Results {
					o.send(added.Boolf(r.Status == health.Pass), k.String(), r.Name)
				}
			}
		}),
	gaugeFunc("scalekit_health_check_latency_seconds", "How long the latest run of a check took.", []string{"probe", "check"},
		func(o out, s healthScrape) {
			for i, k := range s.Probes {
				for _, r := range s.Reports[i].Results {
					o.send(r.Latency.Seconds(), k.String(), r.Name)
				}
			}
		}),
}

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
	probes, err := added.CheckProbes(probes)
	if err != nil {
		return fmt.Errorf("%w: AddHealth: %v", ErrInvalid, err)
	}
	return c.add("AddHealth", named{"health", name}, func(ch chan<- prometheus.Metric) {
		c.health.collect(ch, added.ReadHealth(h, probes), name)
	})
}
