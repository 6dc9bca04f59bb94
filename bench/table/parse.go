package main

import (
	"bufio"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// results holds every value a run reported: benchmark name (without the
// "Benchmark" prefix and the -GOMAXPROCS suffix) -> unit -> one value per
// repetition (-count).
type results map[string]map[string][]float64

// procsSuffix is the -GOMAXPROCS suffix go test appends to a benchmark's
// name (absent with GOMAXPROCS=1).
var procsSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench` output and adds each result line's values to
// res: "BenchmarkX/y-2  <iterations>  <value> <unit>  <value> <unit> ...".
// Other lines (goos, PASS, logs) are skipped.
func (res results) parse(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") || len(f)%2 != 0 {
			continue
		}
		if _, err := strconv.ParseInt(f[1], 10, 64); err != nil {
			continue
		}
		name := procsSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if res[name] == nil {
				res[name] = map[string][]float64{}
			}
			res[name][f[i+1]] = append(res[name][f[i+1]], v)
		}
	}
	return sc.Err()
}

// median is the median of vs (the mean of the middle two for an even
// count); ok is false for none.
func median(vs []float64) (m float64, ok bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return (s[n/2-1] + s[n/2]) / 2, true
}

// get is the median of name's values in the first of units it reported.
func (res results) get(name string, units ...string) (float64, bool) {
	for _, u := range units {
		if m, ok := median(res[name][u]); ok {
			return m, true
		}
	}
	return 0, false
}

// Units: throughput is the first of rateUnits a benchmark reports, else
// 1e9 / ns/op; the server's CPU, the client's (the benchmark process's)
// and the round trips are per op or per job.
var (
	rateUnits = []string{"jobs/s", "dec/s"}
	srvUnits  = []string{"srv-µs/op", "srv-µs/job"}
	cliUnits  = []string{"cli-µs/op", "cli-µs/job"}
	tripUnits = []string{"trips/op", "trips/job"}
)

// rate is name's throughput and the unit it is in ("ops/s" when derived
// from ns/op).
func (res results) rate(name string) (v float64, unit string, ok bool) {
	for _, u := range rateUnits {
		if m, ok := res.get(name, u); ok {
			return m, u, true
		}
	}
	if ns, ok := res.get(name, "ns/op"); ok && ns > 0 {
		return 1e9 / ns, "ops/s", true
	}
	return 0, "", false
}

// peak is name's highest throughput over the repetitions, for a ceiling:
// other load on the machine only ever lowers a ceiling's throughput, so
// its best repetition is the closest to the machine's.
func (res results) peak(name string) (v float64, ok bool) {
	for _, u := range rateUnits {
		for _, x := range res[name][u] {
			v, ok = max(v, x), true
		}
		if ok {
			return v, true
		}
	}
	for _, ns := range res[name]["ns/op"] {
		if ns > 0 {
			v, ok = max(v, 1e9/ns), true
		}
	}
	return v, ok
}

// best is the peer of peers with the highest throughput in res; ok is
// false when none of them ran.
func (res results) best(peers []string) (name string, v float64, ok bool) {
	for _, p := range peers {
		if r, _, found := res.rate(p); found && (!ok || r > v) {
			name, v, ok = p, r, true
		}
	}
	return name, v, ok
}
