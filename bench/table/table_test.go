package main

import (
	"math"
	"strings"
	"testing"
)

// sample is real `go test -bench` output (trimmed), with custom metrics.
const sample = `goos: linux
goarch: amd64
pkg: github.com/scalekit-go/scalekit/bench
cpu: AMD EPYC
BenchmarkCeiling/pg-queue-2         	    5000	    100000 ns/op	      9000 jobs/s	        50.00 srv-µs/job	         0.03125 trips/job
BenchmarkCeiling/pg-queue-2         	    5000	    110000 ns/op	      7000 jobs/s	        55.00 srv-µs/job	         0.03125 trips/job
BenchmarkCeiling/pg-queue-2         	    5000	    105000 ns/op	      8000 jobs/s	        52.00 srv-µs/job	         0.03125 trips/job
BenchmarkQueueThroughput/scalekit-pg-2         	    5000	    300000 ns/op	      3164 jobs/s	       188.0 srv-µs/job	         0.2500 trips/job	  2048 B/op	      40 allocs/op
BenchmarkQueueThroughput/scalekit-pg/w32-2     	    5000	    130000 ns/op	      7261 jobs/s	        70.00 srv-µs/job	         0.06700 trips/job
BenchmarkQueueThroughput/river-2               	    5000	    350000 ns/op	      2865 jobs/s	       130.0 srv-µs/job	         0.1700 trips/job
BenchmarkQueueThroughput/river/w32-2           	    5000	    180000 ns/op	      5539 jobs/s	        92.00 srv-µs/job	         0.06700 trips/job
BenchmarkCacheHitL2/scalekit-2         	   38374	     31200 ns/op	        38.90 cli-µs/op	        10.70 srv-µs/op	         1.000 trips/op	    1160 B/op	      20 allocs/op
BenchmarkCacheHitL2/gorediscache-2     	   21000	     55400 ns/op	        23.80 cli-µs/op	         9.000 srv-µs/op	         1.000 trips/op	     888 B/op	      16 allocs/op
BenchmarkCacheHitL2/gorediscache-json-2	   22000	     52900 ns/op	        24.90 cli-µs/op	         9.600 srv-µs/op	         1.002 trips/op	     980 B/op	      18 allocs/op
BenchmarkCacheHitL1/scalekit-2         	14000000	        79.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkCacheHitL1/otter-2            	20000000	        58.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkEnqueue/pg/river/16-2         	       1	2092000000 ns/op	      4780 jobs/s	       203.0 srv-µs/job	         3.000 trips/job	 1234 B/op	 12 allocs/op
    queue_test.go:88: some log line
PASS
ok  	github.com/scalekit-go/scalekit/bench	12.3s
`

func parsed(t *testing.T) results {
	t.Helper()
	res := results{}
	if err := res.parse(strings.NewReader(sample)); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParse(t *testing.T) {
	res := parsed(t)
	if got := res["Ceiling/pg-queue"]["jobs/s"]; len(got) != 3 || got[0] != 9000 || got[2] != 8000 {
		t.Errorf("Ceiling/pg-queue jobs/s = %v, want the 3 repetitions in order", got)
	}
	// The -GOMAXPROCS suffix goes, a name's own digits stay.
	for _, name := range []string{"QueueThroughput/scalekit-pg/w32", "Enqueue/pg/river/16", "CacheHitL2/gorediscache-json"} {
		if res[name] == nil {
			t.Errorf("%s not parsed; have %v", name, keys(res))
		}
	}
	l2 := res["CacheHitL2/scalekit"]
	for unit, want := range map[string]float64{"ns/op": 31200, "cli-µs/op": 38.9, "srv-µs/op": 10.7, "trips/op": 1, "B/op": 1160, "allocs/op": 20} {
		if got := l2[unit]; len(got) != 1 || got[0] != want {
			t.Errorf("CacheHitL2/scalekit %s = %v, want [%v]", unit, got, want)
		}
	}
	if len(res) != 11 {
		t.Errorf("parsed %d benchmarks, want 11: %v", len(res), keys(res))
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{9, 7, 8}, 8}, {[]float64{4, 1, 3, 2}, 2.5}} {
		if got, ok := median(c.in); !ok || got != c.want {
			t.Errorf("median(%v) = %v, %v; want %v", c.in, got, ok, c.want)
		}
	}
	if _, ok := median(nil); ok {
		t.Error("median of nothing is ok")
	}
	res := parsed(t)
	if v, unit, _ := res.rate("Ceiling/pg-queue"); v != 8000 || unit != "jobs/s" {
		t.Errorf("rate = %v %s, want the median 8000 jobs/s", v, unit)
	}
	if v, unit, _ := res.rate("CacheHitL1/otter"); math.Abs(v-1e9/58) > 1e-6 || unit != "ops/s" {
		t.Errorf("rate without a rate unit = %v %s, want 1e9/ns/op", v, unit)
	}
}

func TestPeak(t *testing.T) {
	res := parsed(t)
	// A ceiling is its best repetition (9000 of 9000, 7000, 8000).
	if v, ok := res.peak("Ceiling/pg-queue"); !ok || v != 9000 {
		t.Errorf("peak = %v, %v; want 9000", v, ok)
	}
	if v, ok := res.peak("CacheHitL1/otter"); !ok || math.Abs(v-1e9/58) > 1e-6 {
		t.Errorf("peak from ns/op = %v, %v", v, ok)
	}
	if _, ok := res.peak("Ceiling/missing"); ok {
		t.Error("a ceiling that did not run has a peak")
	}
}

func TestBestPeer(t *testing.T) {
	res := parsed(t)
	// Lower ns/op is the higher throughput: gorediscache-json is the best.
	name, _, ok := res.best([]string{"CacheHitL2/gorediscache", "CacheHitL2/gorediscache-json", "CacheHitL2/missing"})
	if !ok || name != "CacheHitL2/gorediscache-json" {
		t.Errorf("best = %q, %v; want gorediscache-json", name, ok)
	}
	if _, _, ok := res.best([]string{"CacheHitL2/missing"}); ok {
		t.Error("a peer that did not run is the best")
	}
}

func TestMeasure(t *testing.T) {
	res := parsed(t)
	pg := measure(figure{label: "pg", sk: "QueueThroughput/scalekit-pg", peers: []string{"QueueThroughput/river"},
		ceiling: "Ceiling/pg-queue", goal: goal{minRatio: 1, maxSrv: 200, maxTrips: 0.3}}, res)
	want := row{figure: "pg", scalekit: "3,164 jobs/s", peer: "river 2,865 jobs/s", ratio: "1.10x",
		srv: "188.0 / 130.0", cli: "–", trips: "0.25 / 0.17", share: "35% of 9,000", met: "yes"}
	if pg != want {
		t.Errorf("measure =\n%+v, want\n%+v", pg, want)
	}
	// L2: ratio from ns/op (throughput: 52,900 / 31,200), goal missed.
	l2 := measure(figure{sk: "CacheHitL2/scalekit", peers: []string{"CacheHitL2/gorediscache", "CacheHitL2/gorediscache-json"},
		goal: goal{minRatio: 2}}, res)
	if l2.ratio != "1.70x" || l2.scalekit != "31,200 ns/op" || l2.peer != "gorediscache-json 52,900 ns/op" || l2.met != "no" || l2.share != "n/a" ||
		l2.cli != "38.9 / 24.9" {
		t.Errorf("L2 row = %+v", l2)
	}
	// A server-CPU growth goal against a baseline; a missing value is "?".
	if got := measure(figure{sk: "QueueThroughput/scalekit-pg/w32", peers: []string{"QueueThroughput/scalekit-pg"},
		goal: goal{maxSrvRatio: 1.1}}, res).met; got != "yes" {
		t.Errorf("70 vs 188 µs/job within 10%%: met = %q", got)
	}
	if got := measure(figure{sk: "CacheHitL1/scalekit", peers: []string{"CacheHitL1/otter"}, goal: goal{maxSrv: 1}}, res); got.met != "?" || got.srv != "–" {
		t.Errorf("no server CPU: %+v", got)
	}
	if got := measure(figure{sk: "Nope", goal: goal{minRatio: 1}}, res); got.scalekit != "not run" || got.met != "?" {
		t.Errorf("not run: %+v", got)
	}
}

// TestFigures checks the figures name benchmarks the families run and
// ceilings that exist.
func TestFigures(t *testing.T) {
	ceilings := map[string]bool{ceilRedisGet: true, ceilRedisLimit: true, ceilRedisEnqueue: true, ceilRedisQueue: true, ceilPGEnqueue: true, ceilPGQueue: true}
	for _, f := range figures {
		if f.ceiling != "" && !ceilings[f.ceiling] {
			t.Errorf("%s: unknown ceiling %q", f.label, f.ceiling)
		}
		if f.goal.set() != (f.goal.text != "") {
			t.Errorf("%s: goal %+v: conditions and text disagree", f.label, f.goal)
		}
	}
	md := markdown([]row{measure(figures[0], results{})})
	if lines := strings.Split(strings.TrimSpace(md), "\n"); len(lines) != 3 || strings.Count(lines[0], "|") != len(header)+1 {
		t.Errorf("markdown =\n%s", md)
	}
}

func TestShortName(t *testing.T) {
	for _, c := range [][3]string{
		{"Enqueue/pg/river/16", "Enqueue/pg/scalekit-pg/16", "river/16"},
		{"QueueThroughput/river/w32", "QueueThroughput/scalekit-pg/w32", "river/w32"},
		{"LocalKeys/1000/syncmap-xrate", "LocalKeys/1000/scalekit", "syncmap-xrate"},
		{"CacheHitL2/rueidis", "CacheHitL2/scalekit", "rueidis"},
		{"QueueThroughput/scalekit-pg", "QueueThroughput/scalekit-pg/w32", "scalekit-pg"},
	} {
		if got := shortName(c[0], c[1]); got != c[2] {
			t.Errorf("shortName(%q, %q) = %q, want %q", c[0], c[1], got, c[2])
		}
	}
}

func TestNumber(t *testing.T) {
	for v, want := range map[float64]string{0.25: "0.25", 58: "58", 3164.4: "3,164", 1234567: "1,234,567", 100: "100"} {
		if got := number(v); got != want {
			t.Errorf("number(%v) = %q, want %q", v, got, want)
		}
	}
}

func keys(res results) []string {
	var ks []string
	for k := range res {
		ks = append(ks, k)
	}
	return ks
}
