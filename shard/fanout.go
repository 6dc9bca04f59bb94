package shard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/shard/shardstats"
)

// ErrClusterTimeout is matched (errors.Is) by the *ClusterError of a
// cluster whose call ran past EachOptions.Timeout.
var ErrClusterTimeout = errors.New("shard: cluster call timed out")

// ErrNotRun is matched by the *ClusterError of a cluster whose call never
// started because the fan-out's ctx ended first.
var ErrNotRun = errors.New("shard: cluster call not started")

// EachOptions choose the clusters of a fan-out (Each, Gather, GatherSorted)
// and bound it.
type EachOptions struct {
	// Clusters are the clusters to call, by name. Default (with no Keys):
	// every cluster of the Router, holding virtual shards or not. A name
	// not in Options.Clusters is an error; a repeated one is called once.
	Clusters []string
	// Keys, instead of Clusters, calls only the clusters holding these
	// keys under the installed map, each once, and tells each call which
	// keys it holds (Target.Keys). Give Clusters or Keys, not both. A zero
	// Key is ErrNoShardKey.
	Keys []Key
	// Concurrency is how many clusters are called at once. Default (0):
	// all of them. At least 0.
	Concurrency int
	// Timeout bounds each cluster's call: its ctx ends after Timeout and
	// the call's error then matches ErrClusterTimeout. Default (0): only
	// the caller's ctx bounds the calls. At least 0.
	Timeout time.Duration
}

// Target is one cluster of a fan-out: its Route (Router, Cluster name, the
// map version; VShard is -1, a fan-out is per cluster; Floor is the floors
// of the cluster's moved virtual shards merged) and, with
// EachOptions.Keys, which of the keys it holds.
type Target struct {
	Route
	// Keys are the indexes in EachOptions.Keys of the keys this cluster
	// holds, ascending (so the caller picks its own IDs: ids[i] for i in
	// Keys); nil without EachOptions.Keys.
	Keys []int
}

// ClusterError is one cluster's failure in a fan-out. It wraps the
// call's error (errors.Is and errors.As see through it) and matches
// ErrClusterTimeout when the call ran past EachOptions.Timeout, ErrNotRun
// when it never started.
type ClusterError struct {
	// Cluster is the cluster's name.
	Cluster string
	// Err is what the call returned (or the ctx's error for a call never
	// started).
	Err error
	// Timeout reports that the call's ctx had reached
	// EachOptions.Timeout when it returned Err.
	Timeout bool
	// NotRun reports that the call never started: the fan-out's ctx
	// ended while it waited for a slot (EachOptions.Concurrency).
	NotRun bool
}

func (e *ClusterError) Error() string {
	switch {
	case e.NotRun:
		return fmt.Sprintf("cluster %s: not called: %v", e.Cluster, e.Err)
	case e.Timeout:
		return fmt.Sprintf("cluster %s: timed out: %v", e.Cluster, e.Err)
	}
	return fmt.Sprintf("cluster %s: %v", e.Cluster, e.Err)
}

// Unwrap returns Err.
func (e *ClusterError) Unwrap() error { return e.Err }

// Is matches ErrClusterTimeout for a timed-out call and ErrNotRun for one
// never started.
func (e *ClusterError) Is(target error) bool {
	return (target == ErrClusterTimeout && e.Timeout) || (target == ErrNotRun && e.NotRun)
}

// EachError is a fan-out in which some clusters failed: one *ClusterError
// per failed cluster, sorted by name. The other clusters' calls succeeded
// and their results stand (Gather and GatherSorted return them next to
// the error). errors.Is and errors.As look into every cluster's error.
type EachError struct {
	// Clusters is how many clusters the fan-out called.
	Clusters int
	// Failed are the failed clusters' errors, by cluster name.
	Failed []*ClusterError
}

func (e *EachError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "shard: %d of %d clusters failed: ", len(e.Failed), e.Clusters)
	for i, f := range e.Failed {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Error())
	}
	return b.String()
}

// Unwrap returns each cluster's *ClusterError, for errors.Is and errors.As.
func (e *EachError) Unwrap() []error {
	out := make([]error, len(e.Failed))
	for i, f := range e.Failed {
		out[i] = f
	}
	return out
}

// Cluster returns the error of the cluster named name, nil when it
// succeeded or was not called.
func (e *EachError) Cluster(name string) *ClusterError {
	for _, f := range e.Failed {
		if f.Cluster == name {
			return f
		}
	}
	return nil
}

// fanOut are a Router's fan-out counters.
type fanOut struct {
	fanOuts, failed atomic.Int64
	clusters        map[string]*fanCounters // fixed at New
}

// fanCounters are one cluster's fan-out counters.
type fanCounters struct {
	calls, errors, timeouts atomic.Int64
}

func (f *fanOut) init(names []string) {
	f.clusters = make(map[string]*fanCounters, len(names))
	for _, n := range names {
		f.clusters[n] = new(fanCounters)
	}
}

// fill adds the fan-out counters to s.
func (f *fanOut) fill(s *Stats) {
	s.FanOuts = f.fanOuts.Load()
	s.FanOutsFailed = f.failed.Load()
	for _, c := range f.clusters {
		s.FanOut.Calls += c.calls.Load()
		s.FanOut.Errors += c.errors.Load()
		s.FanOut.Timeouts += c.timeouts.Load()
	}
}

// FanOutStats are one cluster's fan-out counters (shardstats.FanOutStats).
type FanOutStats = shardstats.FanOutStats

// FanOutStats returns each cluster's fan-out counters, every cluster
// included; Stats().FanOut is their sum.
func (r *Router) FanOutStats() map[string]FanOutStats {
	out := make(map[string]FanOutStats, len(r.fo.clusters))
	for n, c := range r.fo.clusters {
		out[n] = FanOutStats{Calls: c.calls.Load(), Errors: c.errors.Load(), Timeouts: c.timeouts.Load()}
	}
	return out
}

// targets resolves o's clusters under the installed map, sorted by name.
func (r *Router) targets(o EachOptions) ([]Target, error) {
	switch {
	case o.Concurrency < 0:
		return nil, fmt.Errorf("shard: invalid EachOptions.Concurrency: %d, want at least 0 (0: all clusters at once)", o.Concurrency)
	case o.Timeout < 0:
		return nil, fmt.Errorf("shard: invalid EachOptions.Timeout: %v, want at least 0 (0: none)", o.Timeout)
	case o.Clusters != nil && o.Keys != nil:
		return nil, errors.New("shard: invalid EachOptions: give Clusters or Keys, not both")
	}
	st := r.cur.Load()
	route := func(i uint16) Route {
		c := &st.clusters[i]
		return Route{Router: c.r, Cluster: c.name, VShard: -1, MapVersion: st.m.Version, floor: st.cfloors[i]}
	}
	var ts []Target
	switch {
	case o.Keys != nil:
		at := make(map[uint16]int) // cluster index -> index in ts
		for i, k := range o.Keys {
			if !k.set {
				r.noKey.Add(1)
				return nil, fmt.Errorf("shard: EachOptions.Keys[%d]: %w", i, ErrNoShardKey)
			}
			ci := st.assign[int(k.h%uint64(r.n))]
			j, ok := at[ci]
			if !ok {
				j = len(ts)
				at[ci] = j
				ts = append(ts, Target{Route: route(ci)})
			}
			ts[j].Keys = append(ts[j].Keys, i)
		}
		slices.SortFunc(ts, func(a, b Target) int { return strings.Compare(a.Cluster, b.Cluster) })
	case o.Clusters != nil:
		seen := make(map[uint16]bool, len(o.Clusters))
		for i, name := range o.Clusters {
			ci, ok := r.index[name]
			if !ok {
				return nil, fmt.Errorf("shard: invalid EachOptions.Clusters[%d]: cluster %q is not in Options.Clusters (have %v)", i, name, r.names)
			}
			if !seen[ci] {
				seen[ci] = true
				ts = append(ts, Target{Route: route(ci)})
			}
		}
		slices.SortFunc(ts, func(a, b Target) int { return strings.Compare(a.Cluster, b.Cluster) })
	default:
		ts = make([]Target, len(st.clusters))
		for i := range st.clusters {
			ts[i] = Target{Route: route(uint16(i))}
		}
	}
	return ts, nil
}

// Each calls fn once for each cluster o selects (every cluster by
// default), at most o.Concurrency at a time, each call's ctx bounded by
// o.Timeout and carrying the cluster's read-your-writes session when ctx
// has them (WithSessions, HTTP): fn routes through t.Router with the ctx
// it is given. Each returns when every call has returned: fn must honour
// its ctx, and no call is left running. It returns nil when every call
// succeeded, else an *EachError listing each failed cluster's error, with
// the cluster's name (errors.Is(err, ErrClusterTimeout) for a timeout);
// the calls that succeeded did their work. A call that panics is not
// recovered. Invalid options return an error naming the field, and no
// call is made.
func (r *Router) Each(ctx context.Context, o EachOptions, fn func(ctx context.Context, t Target) error) error {
	ts, err := r.targets(o)
	if err != nil {
		return err
	}
	r.fo.fanOuts.Add(1)
	errs := make([]*ClusterError, len(ts))
	n := o.Concurrency
	if n == 0 || n > len(ts) {
		n = len(ts)
	}
	sem := make(chan struct{}, n)
	var wg sync.WaitGroup
	for i := range ts {
		if ctx.Err() == nil {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil { // no call starts once the fan-out's ctx has ended
			errs[i] = &ClusterError{Cluster: ts[i].Cluster, Err: ctx.Err(), NotRun: true}
			r.fo.clusters[ts[i].Cluster].errors.Add(1)
			continue
		}
		if i == len(ts)-1 { // the last call runs here: one goroutine and one hand-off fewer
			errs[i] = r.call(ctx, o.Timeout, ts[i], fn)
			<-sem
			break
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = r.call(ctx, o.Timeout, ts[i], fn)
		}(i)
	}
	wg.Wait()
	var failed []*ClusterError
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	if failed == nil {
		return nil
	}
	r.fo.failed.Add(1)
	return &EachError{Clusters: len(ts), Failed: failed}
}

// call runs fn for one cluster under its timeout and session, counting it.
func (r *Router) call(ctx context.Context, timeout time.Duration, t Target, fn func(context.Context, Target) error) *ClusterError {
	c := r.fo.clusters[t.Cluster]
	c.calls.Add(1)
	cctx := t.Context(ctx)
	if timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(cctx, timeout)
		defer cancel()
	}
	err := fn(cctx, t)
	if err == nil {
		return nil
	}
	c.errors.Add(1)
	e := &ClusterError{Cluster: t.Cluster, Err: err}
	if timeout > 0 && errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		e.Timeout = true
		c.timeouts.Add(1)
	}
	return e
}

// Gather is Each collecting each cluster's result: it returns the results
// of the clusters whose call succeeded, by cluster name, and Each's error
// (an *EachError naming each failed cluster, whose results are absent).
// Results are returned with the error: a caller that can use a partial
// answer checks which clusters are missing; one that cannot treats any
// error as failure.
func Gather[T any](ctx context.Context, r *Router, o EachOptions, fn func(ctx context.Context, t Target) (T, error)) (map[string]T, error) {
	var mu sync.Mutex
	out := make(map[string]T)
	err := r.Each(ctx, o, func(ctx context.Context, t Target) error {
		v, err := fn(ctx, t)
		if err != nil {
			return err
		}
		mu.Lock()
		out[t.Cluster] = v
		mu.Unlock()
		return nil
	})
	if err != nil && !errors.As(err, new(*EachError)) {
		return nil, err // invalid options: nothing ran
	}
	return out, err
}

// GatherSorted runs an ORDER BY ... LIMIT query on each cluster and merges
// the pages: fn returns the cluster's page, sorted by cmp and of at most
// limit rows (run the query with the same ORDER BY and LIMIT on each), and
// GatherSorted returns the first limit rows of all of them in cmp order
// (Merge). Rows cmp finds equal keep the order of their clusters' names,
// then their order in the page: make cmp a total order (add a unique
// column) for pages that are stable across calls. A page that is not
// sorted by cmp is that cluster's error (a missing ORDER BY is caught, not
// merged into a wrong answer). When some clusters fail, the rows of the
// others are merged and returned with the *EachError: they are not the
// true first page, since the failed clusters' rows are missing. limit is
// at least 1.
func GatherSorted[T any](ctx context.Context, r *Router, o EachOptions, limit int, cmp func(a, b T) int, fn func(ctx context.Context, t Target) ([]T, error)) ([]T, error) {
	if limit < 1 {
		return nil, fmt.Errorf("shard: GatherSorted: invalid limit %d, want at least 1", limit)
	}
	if cmp == nil {
		return nil, errors.New("shard: GatherSorted: cmp is nil, want the page's ORDER BY as a compare func")
	}
	pages, err := Gather(ctx, r, o, func(ctx context.Context, t Target) ([]T, error) {
		p, err := fn(ctx, t)
		if err != nil {
			return nil, err
		}
		for i := 1; i < len(p); i++ {
			if cmp(p[i-1], p[i]) > 0 {
				return nil, fmt.Errorf("shard: GatherSorted: the page's rows %d and %d are out of order for cmp (does the query ORDER BY what cmp compares?)", i-1, i)
			}
		}
		return p, nil
	})
	if pages == nil {
		return nil, err
	}
	names := make([]string, 0, len(pages))
	for name := range pages {
		names = append(names, name)
	}
	slices.Sort(names)
	ps := make([][]T, len(names))
	for i, name := range names {
		ps[i] = pages[name]
	}
	return Merge(cmp, limit, ps...), err
}

// Merge merges pages, each sorted by cmp, into one sorted slice of at most
// limit elements (all of them for limit < 1): the k-way merge of an ORDER
// BY ... LIMIT query run on several clusters. It is stable: elements cmp
// finds equal come in the order of their pages, then of their positions.
// A page that is not sorted gives a result that is not sorted either
// (GatherSorted checks the pages).
func Merge[T any](cmp func(a, b T) int, limit int, pages ...[]T) []T {
	total := 0
	h := mergeHeap[T]{cmp: cmp}
	for i, p := range pages {
		total += len(p)
		if len(p) > 0 {
			h.items = append(h.items, mergeHead{page: i})
		}
	}
	if limit < 1 || limit > total {
		limit = total
	}
	h.pages = pages
	for i := len(h.items)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
	out := make([]T, 0, limit)
	for len(out) < limit {
		top := &h.items[0]
		out = append(out, pages[top.page][top.pos])
		top.pos++
		if top.pos == len(pages[top.page]) {
			last := len(h.items) - 1
			h.items[0] = h.items[last]
			h.items = h.items[:last]
			if last == 0 {
				break
			}
		}
		h.down(0)
	}
	return out
}

type mergeHead struct{ page, pos int }

// mergeHeap is a min-heap of the pages' heads, ordered by cmp and then
// by page index (stability).
type mergeHeap[T any] struct {
	cmp   func(a, b T) int
	pages [][]T
	items []mergeHead
}

func (h *mergeHeap[T]) less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if c := h.cmp(h.pages[a.page][a.pos], h.pages[b.page][b.pos]); c != 0 {
		return c < 0
	}
	return a.page < b.page
}

func (h *mergeHeap[T]) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
