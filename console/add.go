package console

import (
	"cmp"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/health"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/slo"
)

// A source is one Add call: read returns its items now. io marks reads
// that do I/O (queue counts): the overview runs those concurrently.
type source struct {
	kind string // the items' Kind
	read func(v *view) []item
	io   bool
	// sample returns the numbers Start records for the charts (nil: none).
	sample func() []metric
}

type breakerRef struct {
	b *breaker.Breaker
}

type named struct{ kind, name string }

func (n named) AddedAs() (kind, name string) { return n.kind, n.name }

func (c *Console) add(method string, key any, s source) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.seen.Add(ErrDuplicate, method, key); err != nil {
		return err
	}
	c.sources = append(c.sources, s)
	return nil
}

func nilArg(method, what string) error {
	return fmt.Errorf("%w: %s: %s is nil", ErrInvalid, method, what)
}

// AddBreaker shows b under its own name (breaker.Options.Name); its
// breakers-page row has its last transitions (breaker.Transitions) and
// the actions (unless ReadOnly). It returns an error
// wrapping ErrDuplicate if a breaker of that name was added already.
func (c *Console) AddBreaker(b *breaker.Breaker) error {
	if b == nil {
		return nilArg("AddBreaker", "the *breaker.Breaker")
	}
	if err := c.add("AddBreaker", named{"breaker", b.Name()}, source{kind: "breaker", read: func(v *view) []item {
		it := v.breakerItem(b.Stats(), true)
		for _, tr := range b.Transitions() {
			it.Transitions = append(it.Transitions, transition{From: tr.From.String(), To: tr.To.String(), When: v.at("", tr.At)})
		}
		return []item{it}
	}}); err != nil {
		return err
	}
	c.mu.Lock()
	c.breakers[b.Name()] = breakerRef{b}
	c.mu.Unlock()
	return nil
}

// AddBreakerGroup shows every breaker g holds when a page renders, each
// under its name. They have no actions: a group creates a breaker on
// lookup, so the console does not look them up.
func (c *Console) AddBreakerGroup(g *breaker.Group) error {
	if g == nil {
		return nilArg("AddBreakerGroup", "the *breaker.Group")
	}
	return c.add("AddBreakerGroup", g, source{kind: "breaker", read: func(v *view) []item {
		sts := g.Stats()
		slices.SortFunc(sts, func(a, b breaker.Stats) int { return cmp.Compare(a.Name, b.Name) })
		items := make([]item, len(sts))
		for i, st := range sts {
			items[i] = v.breakerItem(st, false)
		}
		return items
	}})
}

// AddCache shows cc's Stats under name: red while the circuit around its
// Store is open, amber while half-open or while invalidations wait for
// the Store.
func (c *Console) AddCache(name string, cc interface{ Stats() cache.Stats }) error {
	if added.IsNil(cc) {
		return nilArg("AddCache", "the cache")
	}
	return c.add("AddCache", named{"cache", name}, source{kind: "cache", read: func(v *view) []item {
		return []item{v.cacheItem(name, cc.Stats())}
	}, sample: func() []metric { return cacheMetrics(name, cc.Stats()) }})
}

// AddQueue shows, under name, each of queues as the backend behind cl
// counts it when a page renders (I/O: one Client.Counts per queue, all at
// once, bounded by 2s; the queue clients of a page are read concurrently).
// A queue with dead jobs shows amber; one whose count failed, red.
// queues must name at least one valid queue, each once.
func (c *Console) AddQueue(name string, cl *queue.Client, queues ...string) error {
	if cl == nil {
		return nilArg("AddQueue", "the *queue.Client")
	}
	queues, err := added.CheckQueues(queues)
	if err != nil {
		return fmt.Errorf("%w: AddQueue: %v", ErrInvalid, err)
	}
	if err := c.add("AddQueue", named{"queue client", name}, source{kind: "queue", io: true, read: func(v *view) []item {
		counts := added.ReadCounts(cl, queues)
		items := make([]item, len(counts))
		for i, n := range counts {
			items[i] = v.queueItem(name, n)
		}
		return items
	}, sample: func() []metric {
		var ms []metric
		for _, n := range added.ReadCounts(cl, queues) {
			ms = append(ms, queueMetrics(name, n)...)
		}
		return ms
	}}); err != nil {
		return err
	}
	ref := queueRef{name: name, cl: cl, queues: queues}
	c.mu.Lock()
	c.queueRefs = append(c.queueRefs, ref)
	c.queueClients[name] = ref
	c.mu.Unlock()
	return nil
}

// AddDBRouter shows r's Stats under name (a *dbrouter.Router): red when
// the primary is down or every replica is ejected, amber when a replica is
// ejected or lags by Options.LagAmber or more. Connection strings are
// never shown; passwords in error texts are masked.
func (c *Console) AddDBRouter(name string, r interface{ Stats() routerstats.Stats }) error {
	if added.IsNil(r) {
		return nilArg("AddDBRouter", "the *dbrouter.Router")
	}
	return c.add("AddDBRouter", named{"dbrouter", name}, source{kind: "dbrouter", read: func(v *view) []item {
		return []item{v.routerItem(name, r.Stats())}
	}, sample: func() []metric { return routerMetrics(name, r.Stats()) }})
}

// AddSLO shows s under its own name (slo.Options.Name): red when a
// page-severity alert fires (burning fast) or the budget is blown, amber
// when a ticket-severity alert fires. Reading Stats evaluates the alert
// rules, so OnAlert hooks may fire while a page renders.
func (c *Console) AddSLO(s *slo.SLO) error {
	if s == nil {
		return nilArg("AddSLO", "the *slo.SLO")
	}
	return c.add("AddSLO", named{"SLO", s.Name()}, source{kind: "SLO", read: func(v *view) []item {
		return []item{v.sloItem(s.Stats())}
	}, sample: func() []metric { return sloMetrics(s.Stats()) }})
}

// AddSLOTracker shows every objective t tracks when a page renders, as
// AddSLO would.
func (c *Console) AddSLOTracker(t *slo.Tracker) error {
	if t == nil {
		return nilArg("AddSLOTracker", "the *slo.Tracker")
	}
	return c.add("AddSLOTracker", t, source{kind: "SLO", read: func(v *view) []item {
		var items []item
		for _, s := range t.SLOs() {
			items = append(items, v.sloItem(s.Stats()))
		}
		return items
	}, sample: func() []metric {
		var ms []metric
		for _, s := range t.SLOs() {
			ms = append(ms, sloMetrics(s.Stats())...)
		}
		return ms
	}})
}

// AddHealth shows, under name, each of probes as h.Run reports it when
// a page renders (checks whose cached result is older than CacheTTL run,
// bounded by their Timeout and by 5s in all; the health sources of a page
// are read concurrently): red when the probe fails, amber when it warns (an
// optional check failed). probes must list each of Readiness, Liveness
// and Startup at most once; with none, nothing is shown.
func (c *Console) AddHealth(name string, h *health.Health, probes ...health.Kind) error {
	if h == nil {
		return nilArg("AddHealth", "the *health.Health")
	}
	probes, err := added.CheckProbes(probes)
	if err != nil {
		return fmt.Errorf("%w: AddHealth: %v", ErrInvalid, err)
	}
	return c.add("AddHealth", named{"health", name}, source{kind: "health", io: true, read: func(v *view) []item {
		rd := added.ReadHealth(h, probes)
		items := make([]item, len(rd.Probes))
		for i, k := range rd.Probes {
			items[i] = v.healthItem(name, k, rd.Reports[i], rd.Stats)
		}
		return items
	}})
}

// read collects every source's items, in the order they were added; the
// sources doing I/O run concurrently.
func (c *Console) read(now time.Time) []item { return c.readKind(now, "") }

// readKind is read for the sources of kind only ("": all): a detail page
// runs no other source's I/O or probes.
func (c *Console) readKind(now time.Time, kind string) []item {
	c.mu.RLock()
	srcs := slices.Clone(c.sources)
	c.mu.RUnlock()
	if kind != "" {
		srcs = slices.DeleteFunc(srcs, func(s source) bool { return s.kind != kind })
	}
	v := c.newView(now)
	parts := make([][]item, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		if s.io {
			wg.Go(func() { parts[i] = s.read(v) })
		} else {
			parts[i] = s.read(v)
		}
	}
	wg.Wait()
	return slices.Concat(parts...)
}
