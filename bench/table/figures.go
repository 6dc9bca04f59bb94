package main

import (
	"fmt"
	"math"
	"strings"
)

// A figure is one row of the table: scalekit's benchmark, the peers (or
// the baseline) it is compared with, the ceiling its throughput is a share
// of, and the goal.
type figure struct {
	label   string
	sk      string   // scalekit's benchmark
	peers   []string // the best of them (highest throughput) is the row's peer
	ceiling string   // the BenchmarkCeiling sub-benchmark; "" = n/a
	goal    goal
}

// A goal holds every condition it sets (zero = none); met is all of them.
type goal struct {
	minRatio    float64 // throughput ratio scalekit / best peer >=
	maxSrv      float64 // scalekit's server CPU µs per op <=
	maxTrips    float64 // scalekit's round trips per op <=
	maxNs       float64 // scalekit's ns/op <=
	maxSrvRatio float64 // scalekit's server CPU per op / the peer's <=
	text        string  // how the issue says it
}

func (g goal) set() bool {
	return g.minRatio > 0 || g.maxSrv > 0 || g.maxTrips > 0 || g.maxNs > 0 || g.maxSrvRatio > 0
}

// Ceilings: the BenchmarkCeiling sub-benchmarks.
const (
	ceilRedisGet     = "Ceiling/redis-get"
	ceilRedisLimit   = "Ceiling/redis-limit"
	ceilRedisEnqueue = "Ceiling/redis-enqueue"
	ceilRedisQueue   = "Ceiling/redis-queue"
	ceilPGEnqueue    = "Ceiling/pg-enqueue"
	ceilPGQueue      = "Ceiling/pg-queue"
)

// A family is one `go test -bench` invocation of the run.
type family struct {
	pattern   string
	benchtime string
}

// families are the benchmarks behind the figures, each with a benchtime
// that keeps the whole run (-count 3) within ~25 minutes on 2 cores.
var families = []family{
	{`^BenchmarkCeiling$`, "1s"},
	{`^BenchmarkQueueThroughput$/^(scalekit-pg|scalekit-pg-history-1k|scalekit-pg-history-100k|river|scalekit-redis|asynq)$`, "5000x"},
	{`^BenchmarkEnqueue$/^(pg|redis)$/^(scalekit-pg|river|scalekit-redis|asynq|script-floor)$`, "1x"},
	{`^Benchmark(RedisGet|CacheHitL2)$`, "1s"},
	{`^Benchmark(CacheHitTracked|CacheHitL1|CacheHitL1Large|CacheGetManyL1)$/^(scalekit|scalekit-into|otter|loop|rueidis)$`, "1s"},
	{`^Benchmark(RedisAllow|RedisClusterAllow)$`, "1s"},
	{`^BenchmarkLocalKeys$`, "1s"},
}

// figures are issue 19's figures, in its order.
var figures = func() []figure {
	var fs []figure
	add := func(f figure) { fs = append(fs, f) }
	pgGoal := goal{minRatio: 2, maxSrv: 120, text: ">= 2x River; server CPU <= 120 µs/job"}
	add(figure{"PG queue, 8 workers", "QueueThroughput/scalekit-pg", []string{"QueueThroughput/river"}, ceilPGQueue, pgGoal})
	add(figure{"PG queue, 32 workers", "QueueThroughput/scalekit-pg/w32", []string{"QueueThroughput/river/w32"}, ceilPGQueue, pgGoal})
	add(figure{"PG queue after 100k jobs of history (peer: after 1k), 8 workers", "QueueThroughput/scalekit-pg-history-100k",
		[]string{"QueueThroughput/scalekit-pg-history-1k"}, ceilPGQueue, goal{maxSrvRatio: 1.1, text: "server CPU/job within 10% of 1k's"}})
	for _, g := range []string{"1", "16"} {
		add(figure{"PG enqueue one by one, " + g + " goroutine" + plural(g), "Enqueue/pg/scalekit-pg/" + g, []string{"Enqueue/pg/river/" + g},
			ceilPGEnqueue, goal{minRatio: 2.5, text: ">= 2.5x River"}})
	}
	redisGoal := goal{minRatio: 2, maxSrv: 25, maxTrips: 0.3, text: ">= 2x asynq; <= 25 µs/job; <= 0.3 trips/job"}
	for _, w := range []string{"8", "32"} {
		add(figure{"Redis queue, " + w + " workers", "QueueThroughput/scalekit-redis/w" + w, []string{"QueueThroughput/asynq/w" + w}, ceilRedisQueue, redisGoal})
	}
	for _, g := range []string{"1", "16"} {
		add(figure{"Redis enqueue one by one, " + g + " goroutine" + plural(g), "Enqueue/redis/scalekit-redis/" + g, []string{"Enqueue/redis/asynq/" + g},
			ceilRedisEnqueue, goal{minRatio: 1.5, text: ">= 1.5x asynq"}})
		add(figure{"Redis one trivial script per job (the floor of a one-script enqueue), " + g + " goroutine" + plural(g),
			"Enqueue/redis/script-floor/" + g, nil, ceilRedisEnqueue, goal{}})
	}
	add(figure{"Cache L2 hit, 32 goroutines (vs go-redis/cache)", "CacheHitL2/scalekit",
		[]string{"CacheHitL2/gorediscache", "CacheHitL2/gorediscache-json"}, ceilRedisGet, goal{minRatio: 1, text: ">= 1.0x go-redis/cache"}})
	add(figure{"Cache L2 hit, 32 goroutines (vs rueidis, reference)", "CacheHitL2/scalekit", []string{"CacheHitL2/rueidis"}, ceilRedisGet, goal{}})
	add(figure{"Redis GET floor (go-redis, parallel)", "RedisGet/goredis", nil, ceilRedisGet, goal{}})
	add(figure{"Cache tracked hit (vs rueidis DoCache)", "CacheHitTracked/scalekit", []string{"CacheHitTracked/rueidis"}, "",
		goal{maxNs: 5000, text: "<= 5 µs"}})
	add(figure{"Cache L1 hit, 1k keys (vs otter)", "CacheHitL1/scalekit", []string{"CacheHitL1/otter"}, "",
		goal{minRatio: 1 / 1.3, text: "<= 1.3x otter's time"}})
	add(figure{"Cache L1 hit, 1M keys (vs otter)", "CacheHitL1Large/scalekit", []string{"CacheHitL1Large/otter"}, "",
		goal{minRatio: 1 / 1.3, text: "<= 1.3x otter's time"}})
	add(figure{"Cache GetMany of 100 L1 keys (vs a loop of Gets)", "CacheGetManyL1/scalekit", []string{"CacheGetManyL1/loop"}, "",
		goal{minRatio: 1, text: ">= 1.0x the loop"}})
	add(figure{"Cache GetManyInto of 100 L1 keys (vs a loop of Gets)", "CacheGetManyL1/scalekit-into", []string{"CacheGetManyL1/loop"}, "",
		goal{minRatio: 1, text: ">= 1.0x the loop"}})
	for _, cluster := range []bool{false, true} {
		name, gs, ceil := "RedisAllow", []string{"1", "32", "256"}, ceilRedisLimit
		if cluster {
			name, gs, ceil = "RedisClusterAllow", []string{"32", "256"}, ""
		}
		for _, g := range gs {
			at := fmt.Sprintf("%s/g%s/", name, g)
			where := "Redis limiter"
			if cluster {
				where = "Redis Cluster limiter"
			}
			peer := []string{at + "redis_rate"}
			who := g + " goroutines"
			if g == "1" {
				who = "1 goroutine"
			}
			exact := goal{}
			if g != "1" {
				exact = goal{minRatio: 2, text: ">= 2x redis_rate (exact)"}
			}
			add(figure{fmt.Sprintf("%s, %s, one script per decision", where, who), at + "scalekit", peer, ceil, goal{}})
			add(figure{fmt.Sprintf("%s, %s, Coalesce", where, who), at + "scalekit-coalesce", peer, ceil, exact})
			add(figure{fmt.Sprintf("%s, %s, AllowMany of 32", where, who), at + "scalekit-many", peer, ceil, exact})
			lease := goal{}
			if g != "1" {
				lease = goal{minRatio: 10, text: ">= 10x redis_rate (over-admission: TestLeaseOverAdmissionCluster)"}
			}
			add(figure{fmt.Sprintf("%s, %s, Lease 64", where, who), at + "scalekit-lease", peer, "", lease})
		}
	}
	for _, n := range []string{"1", "1000", "1000000"} {
		add(figure{"Local limiter, " + n + " key" + plural(n) + " (vs sync.Map of x/time/rate)", "LocalKeys/" + n + "/scalekit",
			[]string{"LocalKeys/" + n + "/syncmap-xrate"}, "", goal{minRatio: 1, text: ">= 1.0x"}})
	}
	return fs
}()

// plural is "s" unless n is "1".
func plural(n string) string {
	if n == "1" {
		return ""
	}
	return "s"
}

// row is a figure's cells, measured.
type row struct {
	figure, scalekit, peer, ratio, srv, cli, trips, share, goal, met string
}

// header is the table's header, in row's order.
var header = []string{"figure", "scalekit", "best peer", "ratio (throughput)", "server CPU µs/op (scalekit / peer)",
	"client CPU µs/op (scalekit / peer)", "round trips/op (scalekit / peer)", "share of the ceiling", "goal", "met?"}

// measure fills f's cells from res.
func measure(f figure, res results) row {
	r := row{figure: f.label, goal: f.goal.text, ratio: "–", peer: "–", share: "n/a", met: ""}
	sk, unit, ok := res.rate(f.sk)
	if !ok {
		r.scalekit = "not run"
		if f.goal.set() {
			r.met = "?"
		}
		return r
	}
	r.scalekit = rateCell(sk, unit, res, f.sk)
	peerName, peer, hasPeer := res.best(f.peers)
	ratio := math.NaN()
	if hasPeer {
		_, punit, _ := res.rate(peerName)
		r.peer = shortName(peerName, f.sk) + " " + rateCell(peer, punit, res, peerName)
		ratio = sk / peer
		r.ratio = fmt.Sprintf("%.2fx", ratio)
	}
	skSrv, okS := res.get(f.sk, srvUnits...)
	peerSrv, okPS := res.get(peerName, srvUnits...)
	r.srv = pair(skSrv, okS, peerSrv, okPS && hasPeer, "%.1f")
	skCli, okC := res.get(f.sk, cliUnits...)
	peerCli, okPC := res.get(peerName, cliUnits...)
	r.cli = pair(skCli, okC, peerCli, okPC && hasPeer, "%.1f")
	skTrips, okT := res.get(f.sk, tripUnits...)
	peerTrips, okPT := res.get(peerName, tripUnits...)
	r.trips = pair(skTrips, okT, peerTrips, okPT && hasPeer, "%.3g")
	if f.ceiling != "" {
		if c, ok := res.peak(f.ceiling); ok && c > 0 {
			r.share = fmt.Sprintf("%.0f%% of %s", 100*sk/c, number(c))
		} else {
			r.share = "ceiling not run"
		}
	}
	if f.goal.set() {
		r.met = verdict(f.goal, ratio, res, f.sk, skSrv, okS, peerSrv, okPS && hasPeer, skTrips, okT)
	}
	return r
}

// verdict is "yes" when every condition of g holds, "no" when one fails,
// "?" when a value it needs is missing.
func verdict(g goal, ratio float64, res results, sk string, srv float64, okS bool, peerSrv float64, okPS bool, trips float64, okT bool) string {
	known, met := true, true
	check := func(have bool, cond bool) {
		if !have {
			known = false
		} else if !cond {
			met = false
		}
	}
	if g.minRatio > 0 {
		check(!math.IsNaN(ratio), ratio >= g.minRatio)
	}
	if g.maxSrv > 0 {
		check(okS, srv <= g.maxSrv)
	}
	if g.maxTrips > 0 {
		check(okT, trips <= g.maxTrips)
	}
	if g.maxNs > 0 {
		ns, ok := res.get(sk, "ns/op")
		check(ok, ns <= g.maxNs)
	}
	if g.maxSrvRatio > 0 {
		check(okS && okPS && peerSrv > 0, srv/peerSrv <= g.maxSrvRatio)
	}
	switch {
	case !met:
		return "no"
	case !known:
		return "?"
	}
	return "yes"
}

// rateCell is a benchmark's throughput with its unit, and its ns/op when
// the throughput was derived from it.
func rateCell(v float64, unit string, res results, name string) string {
	if unit == "ops/s" {
		ns, _ := res.get(name, "ns/op")
		return fmt.Sprintf("%s ns/op", number(ns))
	}
	return number(v) + " " + unit
}

// pair is "a / b", "a" without b, "–" without a.
func pair(a float64, okA bool, b float64, okB bool, format string) string {
	switch {
	case !okA:
		return "–"
	case !okB:
		return fmt.Sprintf(format, a)
	}
	return fmt.Sprintf(format+" / "+format, a, b)
}

// shortName is peer without the leading path elements it shares with
// scalekit's benchmark sk ("Enqueue/pg/river/16" beside
// "Enqueue/pg/scalekit-pg/16" -> "river/16").
func shortName(peer, sk string) string {
	p, s := strings.Split(peer, "/"), strings.Split(sk, "/")
	i := 0
	for i < len(p)-1 && i < len(s) && p[i] == s[i] {
		i++
	}
	return strings.Join(p[i:], "/")
}

// number formats v with thousands separators, 3 significant digits under
// 100.
func number(v float64) string {
	if math.Abs(v) < 100 {
		return fmt.Sprintf("%.3g", v)
	}
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// markdown is the table of rows.
func markdown(rows []row) string {
	var b strings.Builder
	line := func(cells ...string) {
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	line(header...)
	seps := make([]string, len(header))
	for i := range seps {
		seps[i] = "---"
		if i > 0 && i < 8 {
			seps[i] = "---:"
		}
	}
	line(seps...)
	for _, r := range rows {
		line(r.figure, r.scalekit, r.peer, r.ratio, r.srv, r.cli, r.trips, r.share, r.goal, r.met)
	}
	return b.String()
}
