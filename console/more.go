package console

import (
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/batch"
	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/added"
	"github.com/scalekit-go/scalekit/queue"
)

// The kinds below have a row on the overview and no page of their own.
// Their "now" states need two samples (Start): without them a row says
// what happened since start and stays green.

// AddBatch shows, under name, a batch loader's Stats (a
// *batch.Loader[K, V]): amber while its fetches fail or panic (in the
// last sampled interval), with its batches' mean size and added wait.
func (c *Console) AddBatch(name string, l interface{ Stats() batch.Stats }) error {
	if added.IsNil(l) {
		return nilArg("AddBatch", "the batch loader")
	}
	return c.add("AddBatch", named{"batch", name}, source{kind: "batch", read: func(v *view) []item {
		return []item{v.batchItem(name, l.Stats())}
	}, sample: func() []metric {
		st := l.Stats()
		return []metric{{skey("batch", name, "failed"), float64(st.FetchErrors + st.Panics)}}
	}})
}

func (v *view) batchItem(name string, st batch.Stats) item {
	it := item{Kind: "batch", Name: name, Reason: "fetches succeeding"}
	failRate, rated := v.h.lastRate(skey("batch", name, "failed"))
	switch {
	case rated && failRate > 0:
		it.Level, it.Reason = amber, "fetches failing: "+perSecond(failRate)
	case !rated && st.FetchErrors+st.Panics > 0:
		it.Reason = fmt.Sprintf("%d fetches failed since start", st.FetchErrors+st.Panics)
	}
	it.Facts = []fact{
		{Label: "loads", Value: fmt.Sprintf("%d (%d joined a key in the batch)", st.Loads, st.Deduped)},
		{Label: "batches", Value: fmt.Sprint(st.Batches)},
	}
	if st.Batches > 0 {
		it.Facts = append(it.Facts,
			fact{Label: "mean batch", Value: fmt.Sprintf("%.3g keys", float64(st.Keys)/float64(st.Batches))},
			fact{Label: "mean wait", Value: duration(st.Wait / time.Duration(st.Batches))})
	}
	it.Facts = append(it.Facts, fact{Label: "fetch errors", Value: fmt.Sprintf("%d (%d panics)", st.FetchErrors+st.Panics, st.Panics)})
	return it
}

// AddIdempotency shows, under name, an idempotency middleware's Stats
// (*idempotency.HTTP): red while its Store fails (requests answered 503 in
// the last sampled interval), amber while handlers lose their leases.
func (c *Console) AddIdempotency(name string, m interface{ Stats() idempotency.HTTPStats }) error {
	if added.IsNil(m) {
		return nilArg("AddIdempotency", "the idempotency middleware")
	}
	return c.add("AddIdempotency", named{"idempotency", name}, source{kind: "idempotency", read: func(v *view) []item {
		return []item{v.idempotencyItem(name, m.Stats())}
	}, sample: func() []metric {
		st := m.Stats()
		return []metric{{skey("idempotency", name, "unavailable"), float64(st.Unavailable)}, {skey("idempotency", name, "lost"), float64(st.LeaseLost)}}
	}})
}

func (v *view) idempotencyItem(name string, st idempotency.HTTPStats) item {
	it := item{Kind: "idempotency", Name: name, Reason: "store answering"}
	down, rated := v.h.lastRate(skey("idempotency", name, "unavailable"))
	lost, _ := v.h.lastRate(skey("idempotency", name, "lost"))
	switch {
	case rated && down > 0:
		it.Level, it.Reason = red, "store failing: "+perSecond(down)+" answered 503"
	case rated && lost > 0:
		it.Level, it.Reason = amber, "leases lost: "+perSecond(lost)
	case !rated && st.Unavailable > 0:
		it.Reason = fmt.Sprintf("%d requests answered 503 (store failing) since start", st.Unavailable)
	}
	it.Facts = []fact{
		{Label: "requests", Value: fmt.Sprintf("%d run, %d replayed", st.Executed, st.Replayed)},
		{Label: "refused", Value: fmt.Sprintf("%d in flight (409), %d mismatched (422), %d bad keys (400)", st.Conflicts, st.Mismatches, st.BadKeys)},
		{Label: "store failures", Value: fmt.Sprintf("%d (503)", st.Unavailable)},
		{Label: "released", Value: fmt.Sprintf("%d (%d leases lost)", st.Released, st.LeaseLost)},
	}
	return it
}

// AddQueueWorker shows, under name, each queue a *queue.Worker processes
// (its Stats): amber when the queue is paused, or when its handlers panic
// or lose their leases (in the last sampled interval); with jobs in
// flight and processed, failed, retried and dead counts.
func (c *Console) AddQueueWorker(name string, w interface{ Stats() []queue.Stats }) error {
	if added.IsNil(w) {
		return nilArg("AddQueueWorker", "the *queue.Worker")
	}
	return c.add("AddQueueWorker", named{"queue worker", name}, source{kind: "worker", read: func(v *view) []item {
		sts := w.Stats()
		items := make([]item, len(sts))
		for i, st := range sts {
			items[i] = v.workerItem(name, st)
		}
		return items
	}, sample: func() []metric {
		var ms []metric
		for _, st := range w.Stats() {
			ms = append(ms, metric{skey("worker", name+"\x00"+st.Queue, "trouble"), float64(st.Panics + st.Lost)})
		}
		return ms
	}})
}

func (v *view) workerItem(name string, st queue.Stats) item {
	it := item{Kind: "worker", Name: name + " / " + st.Queue, Reason: "processing"}
	trouble, rated := v.h.lastRate(skey("worker", name+"\x00"+st.Queue, "trouble"))
	switch {
	case st.Paused:
		it.Level, it.Reason = amber, "paused: fetching nothing"
	case rated && trouble > 0:
		it.Level, it.Reason = amber, "handlers panicking or losing leases: "+perSecond(trouble)
	case !rated && st.Panics+st.Lost > 0:
		it.Reason = fmt.Sprintf("processing; %d panics, %d leases lost since start", st.Panics, st.Lost)
	}
	it.Facts = []fact{
		{Label: "in flight", Value: fmt.Sprint(st.InFlight)},
		{Label: "processed", Value: fmt.Sprintf("%d (%d failed, %d retried, %d dead)", st.Processed, st.Failed, st.Retried, st.Dead)},
		{Label: "panics", Value: fmt.Sprint(st.Panics)},
		{Label: "leases lost", Value: fmt.Sprint(st.Lost)},
	}
	return it
}
