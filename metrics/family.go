package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scalekit-go/scalekit/internal/added"
)

// Each kind of primitive has one table, a []family[S] over its Stats
// snapshot S (breakerFamilies, cacheFamilies, ...), with one row per metric
// family: its name, help, kind and labels, and where its value comes from.
// New makes the Describe descriptors from the rows (newTable), and a scrape
// sends every row's samples of the snapshot it read (table.collect). A new
// metric is one more row, e.g.
//
//	counter("scalekit_queue_snoozed_total", "Jobs ...", func(s queue.Stats) uint64 { return s.Snoozed }),
//
// and one more line in doc.go's list.

// family is one metric family of a primitive whose snapshot is S: a row of
// that primitive's table. Rows are made with counter, gauge, counterBy,
// gaugeBy, stateSet, or gaugeFunc where the value needs logic.
type family[S any] struct {
	name, help string
	kind       prometheus.ValueType
	labels     []string         // the family's own labels, after name and the table's (queue, replica)
	send       func(o out, s S) // sends the family's samples of s
}

// number is what a value func may return.
type number interface {
	~int | ~int32 | ~int64 | ~uint64 | ~float64
}

// counter is a family of one counter, v(s).
func counter[S any, N number](name, help string, v func(S) N) family[S] {
	return family[S]{name: name, help: help, kind: prometheus.CounterValue,
		send: func(o out, s S) { o.send(float64(v(s))) }}
}

// gauge is a family of one gauge, v(s).
func gauge[S any, N number](name, help string, v func(S) N) family[S] {
	return family[S]{name: name, help: help, kind: prometheus.GaugeValue,
		send: func(o out, s S) { o.send(float64(v(s))) }}
}

// series is one value of the label of a counterBy or gaugeBy family, and
// how to read its sample.
type series[S any] struct {
	label string
	value func(S) float64
}

// with is the series of the label value label, v(s).
func with[S any, N number](label string, v func(S) N) series[S] {
	return series[S]{label, func(s S) float64 { return float64(v(s)) }}
}

// counterBy is a family of counters split by label, one per series
// (Outcomes that add up to a whole: result, tier, mode...).
func counterBy[S any](name, help, label string, ss ...series[S]) family[S] {
	return by(prometheus.CounterValue, name, help, label, ss)
}

// gaugeBy is a family of gauges split by label, one per series.
func gaugeBy[S any](name, help, label string, ss ...series[S]) family[S] {
	return by(prometheus.GaugeValue, name, help, label, ss)
}

func by[S any](kind prometheus.ValueType, name, help, label string, ss []series[S]) family[S] {
	return family[S]{name: name, help: help, kind: kind, labels: []string{label},
		send: func(o out, s S) {
			for _, x := range ss {
				o.send(x.value(s), x.label)
			}
		}}
}

// stateSet is a state set: one gauge per state, 1 for the one current(s)
// returns and 0 for the others, labelled state.
func stateSet[S any](name, help string, states []string, current func(S) string) family[S] {
	return family[S]{name: name, help: help, kind: prometheus.GaugeValue, labels: []string{"state"},
		send: func(o out, s S) { o.stateSet(states, current(s)) }}
}

// gaugeFunc is a family of gauges with the given own labels whose samples
// send sends itself: for values that are left out, or one per element of a
// map or slice of the snapshot.
func gaugeFunc[S any](name, help string, labels []string, send func(o out, s S)) family[S] {
	return family[S]{name: name, help: help, kind: prometheus.GaugeValue, labels: labels, send: send}
}

// table is a primitive's families with their descriptors, made by New.
type table[S any] struct {
	families []family[S]
	descs    []*prometheus.Desc
}

// newTable makes the descriptors of families, whose variable labels are
// name, then labels (queue, replica: the thing of the primitive a sample
// is about), then the family's own.
func newTable[S any](b *builder, families []family[S], labels ...string) table[S] {
	t := table[S]{families: families}
	for _, f := range families {
		t.descs = append(t.descs, b.desc(f.name, f.help, append(slices.Clip(labels), f.labels...)...))
	}
	return t
}

// collect sends every family's samples of s, labels being the values of
// name and of the table's labels.
func (t *table[S]) collect(ch chan<- prometheus.Metric, s S, labels ...string) {
	o := out{ch: ch}
	o.n = copy(o.labels[:], labels)
	for i, f := range t.families {
		o.desc, o.kind = t.descs[i], f.kind
		f.send(o, s)
	}
}

// out sends the samples of one family for one primitive. The label values
// before the family's own are held in an array rather than a slice, so
// that passing out to a row's send func allocates nothing.
type out struct {
	ch     chan<- prometheus.Metric
	desc   *prometheus.Desc
	kind   prometheus.ValueType
	labels [4]string // name and the table's labels (at most 2), then room for the family's own
	n      int       // how many of labels are set
}

// send sends one sample of value v, own being the values of the family's
// own labels.
func (o out) send(v float64, own ...string) {
	emit(o.ch, o.desc, o.kind, v, append(o.labels[:o.n], own...)...)
}

// stateSet sends one sample per state, 1 for current and 0 for the others,
// the state being the last label, after own.
func (o out) stateSet(states []string, current string, own ...string) {
	labels := append(o.labels[:o.n], own...)
	for _, s := range states {
		emit(o.ch, o.desc, o.kind, added.Boolf(s == current), append(labels, s)...)
	}
}
