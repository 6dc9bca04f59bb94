package ratelimitredis

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/ratelimitx"
	"github.com/scalekit-go/scalekit/internal/redisx"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/ratelimit"
)

// gcraManyScript decides for several limiter keys in one call, each as
// gcraScript (a hash) or gcra1Script (a plain string, nl = 1, with
// gcra1Script's loop written out: it is the hot path) decides for one, in
// the order of KEYS: a key named twice sees its first decision's write.
//
// KEYS: the keys (one slot on a Cluster). ARGV: now µs and ns (as
// gcraScript), the number of limits nl, per limit its field, tolerance µs
// and ns, then per key and limit n*interval µs and ns. Reply: per key, as
// gcraScript's reply, one after the other.
var gcraManyScript = redis.NewScript(gcraLib + gcraManyBody)

// gcraManyBody is gcraManyScript after gcraLib.
const gcraManyBody = `
local nowus, nowns = now_us_ns(ARGV[1], ARGV[2])
local nl = tonumber(ARGV[3])
local fields, tus, tns = {}, {}, {}
for i = 1, nl do
  local a = 1 + 3 * i
  fields[i], tus[i], tns[i] = ARGV[a], tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
end
local base = 4 + 3 * nl
local reply, r = {}, 0
if nl == 1 then
  -- one limit, a string per key: gcra1Script's decision in a loop
  local tu, tn = tus[1], tns[1]
  for k = 1, #KEYS do
    local K, A = KEYS[k], base + 2 * k - 2
` + gcra1Decide + `
    reply[r + 1], reply[r + 2], reply[r + 3] = ok, us, ns
    r = r + 3
  end
  return reply
end
for k = 1, #KEYS do
  local stored = redis.call('HMGET', KEYS[k], unpack(fields))
  local set, ttlus, ttlns, ok = {}, 0, 0, 1
  for i = 1, nl do
    local us, ns = readtat(stored[i])
    us, ns = us - nowus, ns - nowns
    if ns < 0 then us, ns = us - 1, ns + 1000 end
    if us < 0 then us, ns = 0, 0 end
    local a = base + 2 * ((k - 1) * nl + i - 1)
    local aus, ans = us + tonumber(ARGV[a]), ns + tonumber(ARGV[a + 1])
    if ans >= 1000 then aus, ans = aus + 1, ans - 1000 end
    if aus > tus[i] or (aus == tus[i] and ans > tns[i]) then ok = 0 end
    reply[r + 2 * i], reply[r + 2 * i + 1] = us, ns
    set[2 * i - 1], set[2 * i] = fields[i], absolute(nowus, nowns, aus, ans)
    if aus > ttlus or (aus == ttlus and ans > ttlns) then ttlus, ttlns = aus, ans end
  end
  reply[r + 1] = ok
  if ok == 1 then
    redis.call('HSET', KEYS[k], unpack(set))
    redis.call('PEXPIRE', KEYS[k], ttlms(ttlus, ttlns))
  end
  r = r + 1 + 2 * nl
end
return reply
`

// gcraNodeScript is gcraManyScript for the keys of several hash slots
// held by one Cluster node: one call decides a whole batch's keys on that
// node, where gcraManyScript needs one call per slot. The keys go in
// ARGV, not KEYS (Redis refuses declared keys of several slots with
// CROSSSLOT before running anything); the allow-cross-slot-keys flag
// (Redis 7) lets the script use them, and Redis still refuses a key this
// node does not serve (moved, or migrating and already gone) with a "non
// local key" error. So that such an error writes nothing, the script
// touches every key (EXISTS) before deciding any.
//
// ARGV: the number of keys nk, the nk keys, then gcraManyScript's ARGV.
// Reply: gcraManyScript's.
var gcraNodeScript = redis.NewScript(`#!lua flags=allow-cross-slot-keys
local nk = tonumber(ARGV[1])
local KEYS, ARGV = {unpack(ARGV, 2, nk + 1)}, {unpack(ARGV, nk + 2)}
for k = 1, nk do redis.call('EXISTS', KEYS[k]) end
` + gcraLib + gcraManyBody)

// maxScriptKeys is the most keys one gcraManyScript call decides: a
// larger batch is several calls in one pipeline, so that no single script
// holds Redis for long.
const maxScriptKeys = 128

// item is one key's decision in a batch: the key, its n, and what Redis
// decided when ok.
type item struct {
	key string
	n   int
	d   ratelimit.Decision
	ok  bool
	rk  string // the Redis key, once rkey made it
}

// rkey is it's Redis key, made once however many times a batch's grouping
// and its script call ask for it.
func (l *Limiter) rkey(it *item) string {
	if it.rk == "" {
		it.rk = l.b.key(it.key, l.suffix)
	}
	return it.rk
}

// AllowMany decides for n events of each key in one round trip (on a
// Cluster, one per master holding the keys, in parallel, each one script
// per 128 keys whatever their slots: see the package doc). decisions[i] is
// keys[i]'s Decision, exactly the one AllowN(ctx, keys[i], n) would have
// made at that moment; a key named twice is decided twice, in order. While
// Redis (or one Cluster node) is unavailable, the keys it could not decide
// get the degraded decision AllowN gives (Options.Fallback, else the
// failure mode) and no error. AllowMany is exact whatever Options.Coalesce
// and Options.Lease say: it is its own round trip and spends no lease. It
// returns an error for bad arguments (an empty key, naming its index;
// n < 1; n above the smallest burst) and ctx's error when ctx ends first.
func (l *Limiter) AllowMany(ctx context.Context, keys []string, n int) ([]ratelimit.Decision, error) {
	items := make([]item, len(keys))
	ptrs := make([]*item, len(keys))
	for i, k := range keys {
		if err := ratelimitx.CheckArgs(ratelimit.ErrInvalid, l.maxBurst, k, n); err != nil {
			return nil, fmt.Errorf("keys[%d]: %w", i, err)
		}
		items[i] = item{key: k, n: n}
		ptrs[i] = &items[i]
	}
	if len(keys) == 0 {
		return nil, nil
	}
	deadline := time.Now().Add(l.b.timeout)
	err := l.decideItems(ctx, ptrs, deadline)
	if err != nil && !unavailable(ctx, err) {
		return nil, ctx.Err()
	}
	out := make([]ratelimit.Decision, len(items))
	for i := range items {
		if items[i].ok {
			l.count(items[i].d)
			out[i] = items[i].d
			continue
		}
		d, derr := l.degradedOne(ctx, items[i].key, items[i].n)
		if derr != nil {
			return nil, derr
		}
		out[i] = d
	}
	return out, nil
}

// count adds a Decision Redis made to the counters.
func (l *Limiter) count(d ratelimit.Decision) {
	if d.Allowed {
		l.allowed.Add(1)
	} else {
		l.denied.Add(1)
	}
}

// decideItems decides items against Redis in one round trip (per node),
// through the circuit and no later than deadline, and counts the batch.
// Items Redis decided have ok set; the error is the first failure, after
// which the others are left undecided. A failed batch counts once in
// Stats.Errors (and once in the circuit), whatever its size.
func (l *Limiter) decideItems(ctx context.Context, items []*item, deadline time.Time) error {
	err := l.b.br.Do(ctx, func(ctx context.Context) error {
		l.trips.Add(1)
		l.batches.Add(1)
		l.batched.Add(uint64(len(items)))
		tctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		err := l.runItems(tctx, items)
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("ratelimitredis: Redis did not answer within %v: %w", l.b.timeout, err)
		}
		return err
	})
	if unavailable(ctx, err) {
		l.b.fail(ctx, err, len(items))
	}
	return err
}

// runItems sends the scripts deciding items: one gcraManyScript for a
// single Redis; on a Cluster one gcraNodeScript per master holding keys
// (runNodes), else one gcraManyScript per hash slot; one call per key on
// any other client. At most maxScriptKeys keys a call, pipelined. A group
// of one key runs the one-key script.
func (l *Limiter) runItems(ctx context.Context, items []*item) error {
	var groups [][]*item
	switch c := l.b.client.(type) {
	case *redis.Client:
		groups = chunks(items)
	case *redis.ClusterClient:
		if len(items) > 1 && !l.perSlot.Load() {
			return l.runNodes(ctx, c, items)
		}
		groups = l.bySlot(items)
	default:
		for _, it := range items {
			groups = append(groups, []*item{it})
		}
	}
	return l.runGroups(ctx, l.b.client, groups, false)
}

// chunks cuts items into groups of at most maxScriptKeys.
func chunks(items []*item) [][]*item {
	var groups [][]*item
	for len(items) > 0 {
		m := min(len(items), maxScriptKeys)
		groups = append(groups, items[:m])
		items = items[m:]
	}
	return groups
}

// bySlot groups items by hash slot, at most maxScriptKeys a group.
func (l *Limiter) bySlot(items []*item) [][]*item {
	var groups [][]*item
	bySlot := map[int]int{} // slot -> index in groups
	for _, it := range items {
		s := redisx.Slot(l.rkey(it))
		g, ok := bySlot[s]
		if !ok || len(groups[g]) == maxScriptKeys {
			g = len(groups)
			bySlot[s] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], it)
	}
	return groups
}

// runNodes decides items on a Cluster with one gcraNodeScript call per
// master (per maxScriptKeys keys), the masters in parallel, each on its
// own connection. The master of a key is the client's view of the
// Cluster: when a node refuses a key it no longer serves (a slot moved or
// migrating), or a group at all (a Redis before 7 does not know the
// script's flag; then every later batch goes by slot), that node's items
// are decided by slot through the Cluster client, which follows the
// redirections.
func (l *Limiter) runNodes(ctx context.Context, cc *redis.ClusterClient, items []*item) error {
	type node struct {
		c     *redis.Client
		items []*item
		err   error
	}
	var nodes []*node
	byNode := map[*redis.Client]*node{}
	for _, it := range items {
		c, err := cc.MasterForKey(ctx, l.rkey(it))
		if err != nil {
			return err
		}
		n := byNode[c]
		if n == nil {
			n = &node{c: c}
			byNode[c] = n
			nodes = append(nodes, n)
		}
		n.items = append(n.items, it)
	}
	var wg sync.WaitGroup
	for _, n := range nodes[1:] {
		wg.Go(func() { n.err = l.runGroups(ctx, n.c, chunks(n.items), true) })
	}
	nodes[0].err = l.runGroups(ctx, nodes[0].c, chunks(nodes[0].items), true)
	wg.Wait()
	var first error
	var again []*item
	for _, n := range nodes {
		switch {
		case n.err == nil:
		case refusedKeys(n.err):
			if scriptUnknown(n.err) {
				l.perSlot.Store(true)
			}
			for _, it := range n.items {
				if !it.ok {
					again = append(again, it)
				}
			}
		case first == nil:
			first = n.err
		}
	}
	if first != nil || len(again) == 0 {
		return first
	}
	return l.runGroups(ctx, cc, l.bySlot(again), false)
}

// refusedKeys reports whether err is a Cluster node refusing keys it does
// not serve (or a script it cannot run), as opposed to Redis failing:
// those keys are decided again by slot.
func refusedKeys(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) {
		return false
	}
	for _, p := range []string{"MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return strings.Contains(err.Error(), "non local key") || scriptUnknown(err)
}

// scriptUnknown reports whether err is a Redis that cannot run
// gcraNodeScript at all (before 7.0: no shebang, no cross-slot flag).
func scriptUnknown(err error) bool {
	m := err.Error()
	return strings.Contains(m, "compiling script") || strings.Contains(m, "shebang") || strings.Contains(m, "allow-cross-slot-keys")
}

// runGroups decides each group with one script call on client (node:
// gcraNodeScript for groups of several keys), pipelined when there are
// several, loading the scripts and sending again what Redis refused with
// NOSCRIPT.
func (l *Limiter) runGroups(ctx context.Context, client redis.UniversalClient, groups [][]*item, node bool) error {
	nowUS, nowNS := serverclock.MicrosNanos(l.b.clk)
	calls := make([]scriptCall, len(groups))
	for i, g := range groups {
		calls[i] = l.call(g, nowUS, nowNS, node)
	}
	if len(calls) == 1 {
		vals, err := calls[0].script.Run(ctx, client, calls[0].keys, calls[0].argv...).Slice()
		if err != nil {
			return err
		}
		return l.fill(groups[0], vals)
	}
	todo := make([]int, len(calls))
	for i := range todo {
		todo[i] = i
	}
	for attempt := 0; ; attempt++ {
		cmds := make([]*redis.Cmd, len(todo))
		_, _ = client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for j, i := range todo {
				cmds[j] = calls[i].script.EvalSha(ctx, p, calls[i].keys, calls[i].argv...)
			}
			return nil
		})
		var first error
		var again []int
		for j, i := range todo {
			vals, err := cmds[j].Slice()
			if v, ok := cmds[j].Val().([]any); err != nil && ok {
				// A Cluster pipeline whose retry of one node is cut
				// short by ctx sets that error on every command, those
				// the other nodes answered too; an answer read stays in
				// Val, and it is a decision Redis made (and counted).
				vals, err = v, nil
			}
			if err == nil {
				err = l.fill(groups[i], vals)
			}
			if err != nil && attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				again = append(again, i)
				continue
			}
			if err != nil && first == nil {
				first = err
			}
		}
		if len(again) == 0 || first != nil {
			return first
		}
		// A SCRIPT FLUSH, restart or failover dropped the scripts: load
		// them (on every master of a Cluster) and send what was refused.
		for _, sc := range []*redis.Script{gcraManyScript, gcraNodeScript, l.script} {
			if sc == gcraNodeScript && !node {
				continue
			}
			if err := sc.Load(ctx, client).Err(); err != nil {
				return err
			}
		}
		todo = again
	}
}

// scriptCall is one script call: the script, its keys and arguments.
type scriptCall struct {
	script *redis.Script
	keys   []string
	argv   []any
}

// call makes the script call deciding group: l.script for one key (the
// one-key scripts skip the batch script's setup, so a Cluster batch of
// keys in distinct slots costs no more than separate calls), else
// gcraManyScript. Both reply alike for each key.
func (l *Limiter) call(group []*item, nowUS, nowNS int64, node bool) scriptCall {
	if len(group) == 1 {
		return scriptCall{script: l.script, keys: []string{l.rkey(group[0])}, argv: l.argv(group[0].n, nowUS, nowNS)}
	}
	nl := len(l.p)
	c := scriptCall{script: gcraManyScript, keys: make([]string, len(group)), argv: make([]any, 0, 3+3*nl+2*nl*len(group))}
	if node {
		// gcraNodeScript: the keys lead ARGV, none is declared.
		c.script = gcraNodeScript
		c.argv = make([]any, 0, 1+len(group)+3+3*nl+2*nl*len(group))
		c.argv = append(c.argv, len(group))
		for _, it := range group {
			c.argv = append(c.argv, l.rkey(it))
		}
		c.keys = nil
	}
	c.argv = append(c.argv, nowUS, nowNS, nl)
	for i := range l.p {
		a := l.args[5*i:]
		c.argv = append(c.argv, a[0], a[3], a[4])
	}
	for k, it := range group {
		if !node {
			c.keys[k] = l.rkey(it)
		}
		for _, iv := range l.iv {
			t := int64(it.n) * iv
			c.argv = append(c.argv, t/1000, t%1000)
		}
	}
	return c
}

// fill reads a gcraManyScript reply into group's items.
func (l *Limiter) fill(group []*item, vals []any) error {
	per := 1 + 2*len(l.p)
	if len(vals) != per*len(group) {
		return fmt.Errorf("ratelimitredis: script reply has %d elements, want %d", len(vals), per*len(group))
	}
	for k, it := range group {
		d, err := l.decision(vals[k*per:(k+1)*per], it.n)
		if err != nil {
			return err
		}
		it.d, it.ok = d, true
	}
	return nil
}
