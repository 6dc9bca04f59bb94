package console

import (
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/slo"
)

// The metrics Start samples per kind, and the charts drawn from them.

func cacheMetrics(name string, st cache.Stats) []metric {
	k := func(m string) string { return skey("cache", name, m) }
	return []metric{
		{k("hits"), float64(st.Hits + st.NegativeHits)}, {k("misses"), float64(st.Misses)},
		{k("l2hits"), float64(st.L2Hits)}, {k("l2misses"), float64(st.L2Misses)},
		{k("loads"), float64(st.Loads)}, {k("leasewaits"), float64(st.LeaseWaits)}, {k("stale"), float64(st.StaleServed)},
	}
}

func (v *view) cacheCharts(name string) []chart {
	s := func(m string) []point { return v.series("cache", name, m) }
	return []chart{
		v.newChart("hit ratio per tier", "%", percent, []series{
			{"L1 (memory)", ratio(s("hits"), s("misses"))},
			{"L2 (store)", ratio(s("l2hits"), s("l2misses"))},
		}, nil, 1),
		v.newChart("loads, lease waits and stale serves", "per second", perSecond, []series{
			{"loads/s", rate(s("loads"))}, {"lease waits/s", rate(s("leasewaits"))}, {"stale served/s", rate(s("stale"))},
		}, nil, 0),
	}
}

func queueMetrics(client string, n added.QueueCount) []metric {
	if n.Err != nil {
		return nil
	}
	k := func(m string) string { return skey("queue", client+"\x00"+n.Queue, m) }
	return []metric{
		{k("pending"), float64(n.Pending)}, {k("scheduled"), float64(n.Scheduled)}, {k("active"), float64(n.Active)},
		{k("retry"), float64(n.Retry)}, {k("dead"), float64(n.Dead)}, {k("done"), float64(n.Done)},
		{k("lag"), n.OldestPending.Seconds()},
	}
}

func (v *view) queueCharts(client, q string) []chart {
	s := func(m string) []point { return v.series("queue", client+"\x00"+q, m) }
	return []chart{
		v.newChart("throughput", "jobs per second", perSecond, []series{{"completed/s", rate(s("done"))}}, nil, 0),
		v.newChart("lag: age of the oldest pending job", "time", seconds, []series{{"lag", s("lag")}}, nil, 0),
		v.newChart("jobs by state", "jobs", count, []series{
			{"pending", s("pending")}, {"active", s("active")}, {"scheduled", s("scheduled")}, {"retry", s("retry")}, {"dead", s("dead")},
		}, nil, 0),
	}
}

func routerMetrics(name string, st routerstats.Stats) []metric {
	var ms []metric
	for _, r := range st.Replicas {
		if r.LagKnown {
			ms = append(ms, metric{skey("dbrouter", name, "lag\x00"+r.Name), float64(r.LagBytes)})
		}
		ms = append(ms, metric{skey("dbrouter", name, "ejections\x00"+r.Name), float64(r.Ejections)})
	}
	return ms
}

func (v *view) routerCharts(name string, replicas []string) []chart {
	var lines []series
	var marks []point
	for _, r := range replicas {
		lines = append(lines, series{r, v.series("dbrouter", name, "lag\x00"+r)})
		marks = append(marks, increments(v.series("dbrouter", name, "ejections\x00"+r))...)
	}
	ch := v.newChart("replica lag (vertical marks: ejections)", "bytes of WAL", bytesF, lines, marks, 0)
	return []chart{ch}
}

func sloMetrics(st slo.Stats) []metric {
	ms := []metric{{skey("SLO", st.Name, "budget"), st.Budget.RemainingFraction}}
	for w, b := range st.BurnRates {
		ms = append(ms, metric{skey("SLO", st.Name, "burn\x00"+w.String()), b})
	}
	return ms
}

func (v *view) sloCharts(name string, windows []time.Duration) []chart {
	var burns []series
	for _, w := range windows {
		burns = append(burns, series{"over " + duration(w), v.series("SLO", name, "burn\x00"+w.String())})
	}
	return []chart{
		v.newChart("error budget remaining", "% of the budget", percent, []series{{"budget left", v.series("SLO", name, "budget")}}, nil, 1),
		v.newChart("burn rate per alert window", "x the sustainable rate", burn, burns, nil, 1),
	}
}
