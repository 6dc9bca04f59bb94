package added

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/internal/queuex"
	"github.com/scalekit-go/scalekit/queue"
)

// The primitives below are read with I/O or probes at collection time,
// not only from a Stats snapshot; both collectors read them the same
// way, with the same bounds. The Check functions validate an Add
// method's arguments; their errors carry no sentinel: the caller wraps
// its own ErrInvalid and method name around them.

// ProbeTimeout bounds the evaluation of the probes during a collection:
// a check still running then is reported failing (with the ctx error, as
// a probe request that gave up would report it).
const ProbeTimeout = 5 * time.Second

// HealthRead is what a collection of a Health reads: the report of each
// probe, then the Stats.
type HealthRead struct {
	Probes  []health.Kind
	Reports []health.Report // one per probe
	Stats   health.Stats
}

// CheckProbes accepts probes listing each of Readiness, Liveness and
// Startup at most once, and returns a copy of them.
func CheckProbes(probes []health.Kind) ([]health.Kind, error) {
	seen := map[health.Kind]bool{}
	for _, k := range probes {
		if k < health.Readiness || k > health.Startup {
			return nil, fmt.Errorf("probe %v is not Readiness, Liveness or Startup", k)
		}
		if seen[k] {
			return nil, fmt.Errorf("probe %v is listed twice", k)
		}
		seen[k] = true
	}
	return slices.Clone(probes), nil
}

// ReadHealth runs h's probes at once, bounded by ProbeTimeout, then
// reads its Stats (so they count the runs the probes caused).
func ReadHealth(h *health.Health, probes []health.Kind) HealthRead {
	s := HealthRead{Probes: probes, Reports: make([]health.Report, len(probes))}
	ctx, cancel := context.WithTimeout(context.Background(), ProbeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, k := range probes {
		wg.Go(func() { s.Reports[i] = h.Run(ctx, k) })
	}
	wg.Wait()
	s.Stats = h.Stats()
	return s
}

// CountsTimeout bounds the backend reads of one collection of a queue
// client (all its queues at once).
const CountsTimeout = 2 * time.Second

// QueueCount is a queue's counts as a collection read them, or the error
// that kept it from reading them.
type QueueCount struct {
	Queue string
	queue.Counts
	Err error
}

// CheckQueues accepts at least one valid queue name, each listed once,
// and returns a copy of them.
func CheckQueues(queues []string) ([]string, error) {
	if len(queues) == 0 {
		return nil, errors.New("name at least one queue to count")
	}
	for i, q := range queues {
		if err := queuex.CheckName(queue.ErrInvalid, "queue", q); err != nil {
			return nil, err
		}
		if slices.Contains(queues[:i], q) {
			return nil, fmt.Errorf("queue %q is listed twice", q)
		}
	}
	return slices.Clone(queues), nil
}

// ReadCounts counts each of queues through c, all at once, bounded by
// CountsTimeout.
func ReadCounts(c *queue.Client, queues []string) []QueueCount {
	counts := make([]QueueCount, len(queues))
	ctx, cancel := context.WithTimeout(context.Background(), CountsTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for i, q := range queues {
		counts[i].Queue = q
		wg.Go(func() { counts[i].Counts, counts[i].Err = c.Counts(ctx, q) })
	}
	wg.Wait()
	return counts
}

// CheckReplicaNames accepts replicas whose names are valid UTF-8 and
// distinct (else their series would collide).
func CheckReplicaNames(replicas []routerstats.ReplicaStats) error {
	seen := map[string]int{}
	for i, rep := range replicas {
		if !utf8.ValidString(rep.Name) {
			return fmt.Errorf("replica %d's name %q is not valid UTF-8", i, rep.Name)
		}
		if j, dup := seen[rep.Name]; dup {
			return fmt.Errorf("replicas %d and %d are both named %q; name them with dbrouter.Options.ReplicaNames", j, i, rep.Name)
		}
		seen[rep.Name] = i
	}
	return nil
}

// Boolf is b as a sample value: 1 or 0.
func Boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// UnixSeconds is t in Unix seconds as a sample value, 0 for the zero
// time.
func UnixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
