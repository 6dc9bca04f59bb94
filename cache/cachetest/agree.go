package cachetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/poll"
)

// Get and GetMany run one protocol: the same sequence of events (a miss
// and its load, a hit, an early refresh, a stale read and its refresh, a
// loader error, a remembered ErrNotFound, a panic, a stale Store value
// served on a miss, a Store outage) gives the same values, errors and
// Stats through Get, through GetMany one key at a time, and through
// GetMany over every key at once (where a batch call and a Store call
// count once for all its keys).
func agree(t *testing.T, newStore StoreFactory) {
	if tracks(newStore(t)) {
		// The script compares every counter, so it needs an L1 that only
		// its events change; with a tracking Store an instance's own
		// writes drop its copies whenever their invalidation arrives. The
		// protocol compared here does not depend on the Store: the same
		// Store without tracking runs it.
		t.Skip("the Store tracks: the instance's own writes drop its L1 copies asynchronously")
	}
	const keys = 3
	for attempt := 1; ; attempt++ {
		get := script(t, newStore(t), keys, viaGet)
		each := script(t, newStore(t), keys, viaGetManyEach)
		all := script(t, newStore(t), keys, viaGetMany)
		// A Store call that failed outside the outage (a timeout on a
		// loaded machine) changes what the events do: run them again.
		if ev, ok := storeFailed(get, each, all); ok && attempt < 3 {
			t.Logf("attempt %d: a Store call failed during %q; running the events again", attempt, ev)
			continue
		}
		for i, ev := range get {
			for _, p := range append(append(ev.problems, each[i].problems...), all[i].problems...) {
				t.Errorf("%s: %s", ev.name, p)
			}
			if d := each[i].diff(ev, false); d != "" {
				t.Errorf("%s: GetMany one key at a time differs from Get: %s", ev.name, d)
			}
			if d := all[i].diff(ev, true); d != "" {
				t.Errorf("%s: GetMany of %d keys differs from Get: %s", ev.name, keys, d)
			}
		}
		return
	}
}

// storeFailed names an event, other than the outage, during which a Store
// call failed.
func storeFailed(runs ...[]outcome) (string, bool) {
	for _, run := range runs {
		for _, ev := range run {
			if ev.name != outageEvent && ev.stats["L2Errors"]+ev.stats["L2Skipped"] > 0 {
				return ev.name, true
			}
		}
	}
	return "", false
}

const outageEvent = "a miss with the Store down"

// A driver reads keys through one of the two calls: the values in the
// order of keys ("" where a key does not exist) and the first error.
type driver func(ctx context.Context, c *cache.Cache[string], keys []string, d *db) ([]string, error)

func viaGet(ctx context.Context, c *cache.Cache[string], keys []string, d *db) ([]string, error) {
	vals := make([]string, len(keys))
	var first error
	for i, k := range keys {
		v, err := c.Get(ctx, k, d.one)
		switch {
		case errors.Is(err, cache.ErrNotFound):
		case err != nil:
			if first == nil {
				first = err
			}
		default:
			vals[i] = v
		}
	}
	return vals, first
}

func viaGetManyEach(ctx context.Context, c *cache.Cache[string], keys []string, d *db) ([]string, error) {
	vals := make([]string, len(keys))
	var first error
	for i, k := range keys {
		m, err := c.GetMany(ctx, []string{k}, d.batch)
		if err != nil && first == nil {
			first = err
		}
		vals[i] = m[k]
	}
	return vals, first
}

func viaGetMany(ctx context.Context, c *cache.Cache[string], keys []string, d *db) ([]string, error) {
	m, err := c.GetMany(ctx, keys, d.batch)
	vals := make([]string, len(keys))
	for i, k := range keys {
		vals[i] = m[k]
	}
	return vals, err
}

var errLoad = errors.New("cachetest: the loader failed")

// db is the scripted database behind the loaders: each load of a key
// returns "v<n>" (its n-th load) unless mode says otherwise, and takes
// 10ms on the cache's clock (so XFetch sees a load time).
type db struct {
	clk  *clock.Manual
	mu   sync.Mutex
	mode string // "", "error", "panic", "notfound"
	n    map[string]int
}

func (d *db) setMode(m string) { d.mu.Lock(); d.mode = m; d.mu.Unlock() }

func (d *db) begin() string {
	d.clk.Add(10 * time.Millisecond)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mode == "panic" {
		panic("cachetest: the loader panicked")
	}
	return d.mode
}

func (d *db) next(id string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n[id]++
	return "v" + strconv.Itoa(d.n[id])
}

func (d *db) one(_ context.Context, id string) (string, error) {
	switch d.begin() {
	case "error":
		return "", errLoad
	case "notfound":
		return "", cache.ErrNotFound
	}
	return d.next(id), nil
}

func (d *db) batch(_ context.Context, ids []string) (map[string]string, error) {
	m := map[string]string{}
	switch d.begin() {
	case "error":
		return nil, errLoad
	case "notfound":
		return m, nil
	}
	for _, id := range ids {
		m[id] = d.next(id)
	}
	return m, nil
}

// outcome is what one event of the script gave.
type outcome struct {
	name     string
	problems []string // how the event differed from what the script expects
	vals     []string
	err      string
	stats    map[string]uint64 // the event's Stats delta, its settling reads left out
}

// diff describes how o differs from want; batched compares the counters
// of loader and Store calls as "any or none", as one batch call serves
// every key.
func (o outcome) diff(want outcome, batched bool) string {
	if !reflect.DeepEqual(o.vals, want.vals) {
		return fmt.Sprintf("values %q, Get gave %q", o.vals, want.vals)
	}
	if o.err != want.err {
		return fmt.Sprintf("error %s, Get gave %s", o.err, want.err)
	}
	for k, w := range want.stats {
		g := o.stats[k]
		if batched && callCounters[k] {
			g, w = min(g, 1), min(w, 1)
		}
		if g != w {
			return fmt.Sprintf("Stats.%s moved by %d, through Get by %d (all: %v; Get: %v)", k, g, w, o.stats, want.stats)
		}
	}
	return ""
}

// callCounters count calls (of the loader or the Store), not keys.
var callCounters = map[string]bool{"Loads": true, "LoadErrors": true, "Panics": true, "L2Errors": true, "L2Skipped": true}

// callerCounters are the counters a read of values held in the L1 moves;
// a fill running in the background moves none of them.
var callerCounters = map[string]bool{"Hits": true, "Misses": true, "NegativeHits": true, "StaleServed": true,
	"EarlyRefreshes": true, "StaleRefreshes": true, "Coalesced": true}

// counters is the uint64 fields of a Stats snapshot by name.
func counters(s cache.Stats) map[string]uint64 {
	out := map[string]uint64{}
	v := reflect.ValueOf(s)
	for i := range v.NumField() {
		if f := v.Field(i); f.Kind() == reflect.Uint64 {
			out[v.Type().Field(i).Name] = f.Uint()
		}
	}
	return out
}

// kind names an error by what a caller matches it with.
func kind(err error) string {
	var pe *cache.PanicError
	switch {
	case err == nil:
		return "none"
	case errors.Is(err, errLoad):
		return "the loader's error"
	case errors.As(err, &pe):
		return fmt.Sprintf("*PanicError{Value: %v, stack: %t}", pe.Value, len(pe.Stack) > 0)
	}
	return err.Error()
}

// script runs the events through drive on a fresh cache over store and
// returns what each gave.
func script(t *testing.T, store cache.Store, n int, drive driver) []outcome {
	ctx := context.Background()
	const ttl, staleFor = time.Minute, time.Hour
	clk := clock.NewManual(time.Now())
	d := &db{clk: clk, n: map[string]int{}}
	out := &Outage{Store: store}
	br, err := breaker.New(breaker.Options{ConsecutiveFailures: 1 << 20}) // the outage stays visible as Store errors
	if err != nil {
		t.Fatal(err)
	}
	o := cache.Options{TTL: ttl, StaleFor: staleFor, L1TTL: ttl, NoJitter: true, Beta: 1e30, Clock: clk, Breaker: br}
	c := Instances(t, 1, out, o)[0]
	o.Breaker = nil
	writer := Instances(t, 1, store, o)[0] // another instance, filling the Store
	keys := make([]string, n)
	for i := range keys {
		keys[i] = Key(t, strconv.Itoa(i))
	}
	var res []outcome
	// step runs one event: read once, check the values, then (settle)
	// read until the background refresh the event started has landed.
	step := func(name, want, wantErr, settle string) {
		t.Helper()
		before := counters(c.Stats())
		vals, err := drive(ctx, c, keys, d)
		var problems []string
		for i, v := range vals {
			if v != want {
				problems = append(problems, fmt.Sprintf("key %d = %q (error %v), want %q", i, v, err, want))
			}
		}
		if kind(err) != wantErr {
			problems = append(problems, fmt.Sprintf("error %v, want %s", err, wantErr))
		}
		reads := map[string]uint64{} // what the settling reads moved
		if settle != "" {
			poll.Until(t, 10*time.Second, name+": the refresh lands", func() bool {
				s0 := counters(c.Stats())
				got, _ := drive(ctx, c, keys, d)
				s1 := counters(c.Stats())
				for k := range callerCounters {
					reads[k] += s1[k] - s0[k]
				}
				for _, v := range got {
					if v != settle {
						return false
					}
				}
				return true
			})
		}
		after := counters(c.Stats())
		delta := map[string]uint64{}
		for k := range after {
			delta[k] = after[k] - before[k] - reads[k]
		}
		res = append(res, outcome{name: name, problems: problems, vals: vals, err: kind(err), stats: delta})
	}
	past := func(dur time.Duration) { clk.Add(dur + time.Second) }

	const none, loadErr, panicked = "none", "the loader's error", "*PanicError{Value: cachetest: the loader panicked, stack: true}"
	step("a miss loads", "v1", none, "")
	step("a hit", "v1", none, "")
	clk.Add(ttl - 2*time.Second) // inside the early window (5% of TTL)
	step("an early refresh", "v1", none, "v2")
	past(ttl)
	step("a stale read refreshes", "v2", none, "v3")
	past(ttl + staleFor)
	d.setMode("error")
	step("a loader error", "", loadErr, "")
	d.setMode("")
	step("errors are not cached", "v4", none, "")
	past(ttl + staleFor)
	d.setMode("notfound")
	step("a key that does not exist", "", none, "")
	step("a remembered ErrNotFound", "", none, "")
	past(10 * time.Second) // the default NegativeTTL
	d.setMode("panic")
	step("a loader panic", "", panicked, "")
	d.setMode("")
	if _, err := viaGet(ctx, writer, keys, d); err != nil {
		t.Fatal(err)
	}
	past(ttl)
	step("a miss serves a stale Store value", "v5", none, "v6")
	past(ttl + staleFor)
	out.Down.Store(true)
	step(outageEvent, "v7", none, "")
	out.Down.Store(false)
	return res
}
