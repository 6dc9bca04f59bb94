package scalekitotel

import (
	"fmt"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Each kind of primitive has one table, a []family[S] over its Stats
// snapshot S, with one row per instrument: its name, unit, description
// and kind, and how its values come from a snapshot. The rows mirror
// package metrics's tables (family.go there), one for one, named as the
// OpenTelemetry Prometheus exporter maps them back (see Metrics);
// TestMetricsMatchPrometheus checks both give the same series and values.

// family is one instrument of a primitive whose snapshot is S.
type family[S any] struct {
	name, unit, desc string
	counter          bool
	observe          func(o obs, s S)
}

// number is what a value func may return.
type number interface {
	~int | ~int32 | ~int64 | ~uint64 | ~float64
}

// counter is an instrument of one counter, v(s).
func counter[S any, N number](name, unit, desc string, v func(S) N) family[S] {
	return family[S]{name: name, unit: unit, desc: desc, counter: true, observe: func(o obs, s S) { o.observe(float64(v(s))) }}
}

// gauge is an instrument of one gauge, v(s).
func gauge[S any, N number](name, unit, desc string, v func(S) N) family[S] {
	return family[S]{name: name, unit: unit, desc: desc, observe: func(o obs, s S) { o.observe(float64(v(s))) }}
}

// series is one value of the attribute of a counterBy family.
type series[S any] struct {
	value string
	v     func(S) float64
}

// with is the series of the attribute value value, v(s).
func with[S any, N number](value string, v func(S) N) series[S] {
	return series[S]{value, func(s S) float64 { return float64(v(s)) }}
}

// counterBy is a counter split by the attribute key, one per series.
func counterBy[S any](name, desc string, key attribute.Key, ss ...series[S]) family[S] {
	return by(true, name, desc, key, ss)
}

// gaugeBy is a gauge split by the attribute key, one per series.
func gaugeBy[S any](name, desc string, key attribute.Key, ss ...series[S]) family[S] {
	return by(false, name, desc, key, ss)
}

func by[S any](counter bool, name, desc string, key attribute.Key, ss []series[S]) family[S] {
	return family[S]{name: name, desc: desc, counter: counter, observe: func(o obs, s S) {
		for _, x := range ss {
			o.observe(x.v(s), key.String(x.value))
		}
	}}
}

// gaugeFunc is a gauge whose values observe reports itself: for values
// that are left out, or one per element of a map or slice of the
// snapshot, each with its own attributes.
func gaugeFunc[S any](name, unit, desc string, observe func(o obs, s S)) family[S] {
	return family[S]{name: name, unit: unit, desc: desc, observe: observe}
}

// stateSet is one gauge per state, 1 for the one current(s) returns and
// 0 for the others, the state attribute naming it.
func stateSet[S any](name, desc string, states []string, current func(S) string) family[S] {
	return family[S]{name: name, desc: desc, observe: func(o obs, s S) { o.stateSet("state", states, current(s)) }}
}

// builder makes the instruments of NewMetrics and remembers them for the
// callback's registration; err is the first failure.
type builder struct {
	meter metric.Meter
	all   []metric.Observable
	err   error
}

func (b *builder) instrument(name, unit, desc string, counter bool) metric.Float64Observable {
	var (
		inst metric.Float64Observable
		err  error
	)
	if counter {
		inst, err = b.meter.Float64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
	} else {
		inst, err = b.meter.Float64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
	}
	if err != nil && b.err == nil {
		b.err = fmt.Errorf("scalekitotel: making the instrument %s: %w", name, err)
	}
	b.all = append(b.all, inst)
	return inst
}

// table is a primitive's families with their instruments.
type table[S any] struct {
	families []family[S]
	insts    []metric.Float64Observable
}

func newTable[S any](b *builder, families []family[S]) table[S] {
	t := table[S]{families: families}
	for _, f := range families {
		t.insts = append(t.insts, b.instrument(f.name, f.unit, f.desc, f.counter))
	}
	return t
}

// observe reports every family's values of s, with attrs (name, queue)
// before each family's own.
func (t *table[S]) observe(o metric.Observer, s S, attrs []attribute.KeyValue) {
	for i, f := range t.families {
		f.observe(obs{o: o, inst: t.insts[i], attrs: attrs}, s)
	}
}

// obs reports the values of one instrument for one primitive.
type obs struct {
	o     metric.Observer
	inst  metric.Float64Observable
	attrs []attribute.KeyValue
}

func (o obs) observe(v float64, own ...attribute.KeyValue) {
	o.o.ObserveFloat64(o.inst, v, metric.WithAttributes(append(slices.Clip(o.attrs), own...)...))
}

// stateSet reports one value per state, 1 for current and 0 for the
// others, the attribute key naming the state, after own.
func (o obs) stateSet(key attribute.Key, states []string, current string, own ...attribute.KeyValue) {
	own = slices.Clip(own)
	for _, st := range states {
		v := 0.0
		if st == current {
			v = 1
		}
		o.observe(v, append(own, key.String(st))...)
	}
}
