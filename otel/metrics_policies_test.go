package scalekitotel_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/bulkhead"
	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/testclock"
	scalekitotel "github.com/scalekit-go/scalekit/otel"
	"github.com/scalekit-go/scalekit/priority"
	"github.com/scalekit-go/scalekit/retry"
	"github.com/scalekit-go/scalekit/shard"
	"github.com/scalekit-go/scalekit/slo"
	"github.com/scalekit-go/scalekit/throttle"
	"github.com/scalekit-go/scalekit/timeout"
)

func okCall(context.Context) error   { return nil }
func failCall(context.Context) error { return errors.New("x") }

// spentServer answers every request with a RateLimit field saying the
// quota is spent for a minute: a Pacer sends the first request and
// refuses the next.
func spentServer(t testing.TB) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("RateLimit", `"default";r=0;t=60`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get sends one GET through p, closing the body.
func get(p *retry.Pacer, url string) {
	if resp, err := (&http.Client{Transport: p}).Get(url); err == nil {
		_ = resp.Body.Close()
	}
}

// policyPrimitives makes a bulkhead (full, one sheddable call rejected),
// a timeout (one call of two timed out), a throttler (three failures of
// four calls), a pacer (one request sent, one refused) and an SLO
// shedder (shedding default calls), their time fixed, and returns the
// function adding them to a. The bulkhead's slot is held until the test
// ends, so both collections read the same in-flight count.
func policyPrimitives(t *testing.T) func(a adder) {
	ctx := context.Background()
	bh, err := bulkhead.New(bulkhead.Options{Name: "inventory", MaxConcurrent: 1, NoQueue: true})
	check(t, err)
	release, err := bh.Acquire(ctx)
	check(t, err)
	t.Cleanup(release)
	if err := bh.Do(priority.With(ctx, priority.Sheddable), okCall); !errors.Is(err, bulkhead.ErrQueueFull) {
		t.Fatalf("a call to a full bulkhead: %v", err)
	}
	tm, err := timeout.New(timeout.Options{Timeout: time.Millisecond})
	check(t, err)
	_ = tm.Do(ctx, func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	_ = tm.Do(ctx, okCall)

	clk := testclock.New()
	th, err := throttle.New(throttle.Options{Name: "inventory", Clock: clk})
	check(t, err)
	for range 3 {
		_ = th.Do(ctx, failCall)
	}
	_ = th.Do(ctx, okCall)

	srv := spentServer(t)
	p := &retry.Pacer{Base: srv.Client().Transport}
	get(p, srv.URL)
	get(p, srv.URL)

	o, err := slo.New(slo.Options{Name: "api", Target: 0.99, Clock: clk})
	check(t, err)
	for range 100 {
		o.Record(false)
	}
	sh, err := slo.NewShedder(slo.ShedderOptions{Objectives: []*slo.SLO{o}, Clock: clk})
	check(t, err)
	_ = sh.Do(priority.With(ctx, priority.Sheddable), okCall)
	_ = sh.Do(priority.With(ctx, priority.Critical), okCall)

	sr := newShardRouter(t)
	ss := newShardStore(t)
	next := sr.Map()
	next.Version = 2
	next.Assign[0], next.Assign[7] = "c", "c"
	check(t, sr.SetMap(next))
	if err := sr.SetMap(shard.EvenMap(2, 8, "a")); !errors.Is(err, shard.ErrStaleMap) {
		t.Fatalf("a stale map: %v", err)
	}
	if _, err := sr.For(shard.Key{}); !errors.Is(err, shard.ErrNoShardKey) {
		t.Fatalf("a call without a key: %v", err)
	}
	if err := sr.Each(ctx, shard.EachOptions{Timeout: time.Millisecond}, func(ctx context.Context, tg shard.Target) error {
		if tg.Cluster == "c" {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	}); !errors.Is(err, shard.ErrClusterTimeout) {
		t.Fatalf("a fan-out with c timing out: %v", err)
	}
	return func(a adder) {
		check(t, a.AddShard("orders", sr))
		check(t, a.AddShardStore("orders", ss))
		check(t, a.AddBulkhead(bh))
		check(t, a.AddTimeout("inventory-attempt", tm))
		check(t, a.AddThrottler(th))
		check(t, a.AddRetryPacer("inventory", p))
		check(t, a.AddSLOShedder("api", sh))
	}
}

// newShardStore is a shard.MapStore on a pool to a closed port: Stats
// needs no server.
func newShardStore(t testing.TB) *shard.MapStore {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/app?sslmode=disable")
	check(t, err)
	t.Cleanup(pool.Close)
	s, err := shard.OpenPGMap(context.Background(), pool, shard.StoreOptions{})
	check(t, err)
	return s
}

// newShardRouter is a shard.Router over stand-in clusters (routing never
// calls into a cluster's dbrouter.Router): 8 virtual shards on a and b, c
// holding none.
func newShardRouter(t testing.TB) *shard.Router {
	t.Helper()
	r, err := shard.New(shard.Options{
		VirtualShards: 8,
		Map:           shard.EvenMap(1, 8, "a", "b"),
		Clusters:      map[string]*dbrouter.Router{"a": new(dbrouter.Router), "b": new(dbrouter.Router), "c": new(dbrouter.Router)},
	})
	check(t, err)
	return r
}

// The policies' Add methods refuse what package metrics refuses: nil
// primitives (typed or not) and names taken.
func TestMetricsAddPolicyErrors(t *testing.T) {
	m, _ := manual(t)
	bh, err := bulkhead.New(bulkhead.Options{Name: "inventory"})
	check(t, err)
	other, err := bulkhead.New(bulkhead.Options{Name: "inventory"})
	check(t, err)
	tm, err := timeout.New(timeout.Options{Timeout: time.Second})
	check(t, err)
	th, err := throttle.New(throttle.Options{Name: "inventory"})
	check(t, err)
	th2, err := throttle.New(throttle.Options{Name: "inventory"})
	check(t, err)
	o, err := slo.New(slo.Options{Name: "api", Target: 0.99})
	check(t, err)
	sh, err := slo.NewShedder(slo.ShedderOptions{Objectives: []*slo.SLO{o}})
	check(t, err)
	check(t, m.AddBulkhead(bh))
	check(t, m.AddTimeout("t", tm))
	check(t, m.AddThrottler(th))
	check(t, m.AddRetryPacer("p", &retry.Pacer{}))
	check(t, m.AddSLOShedder("s", sh))
	check(t, m.AddShard("orders", newShardRouter(t)))
	for name, c := range map[string]struct {
		err, want error
		method    string
	}{
		"nil bulkhead":       {m.AddBulkhead(nil), scalekitotel.ErrInvalid, "AddBulkhead"},
		"nil timeout":        {m.AddTimeout("x", nil), scalekitotel.ErrInvalid, "AddTimeout"},
		"nil throttler":      {m.AddThrottler(nil), scalekitotel.ErrInvalid, "AddThrottler"},
		"nil pacer":          {m.AddRetryPacer("x", nil), scalekitotel.ErrInvalid, "AddRetryPacer"},
		"nil shedder":        {m.AddSLOShedder("x", nil), scalekitotel.ErrInvalid, "AddSLOShedder"},
		"same bulkhead":      {m.AddBulkhead(bh), scalekitotel.ErrDuplicate, "AddBulkhead"},
		"same bulkhead name": {m.AddBulkhead(other), scalekitotel.ErrDuplicate, "AddBulkhead"},
		"same timeout name":  {m.AddTimeout("t", tm), scalekitotel.ErrDuplicate, "AddTimeout"},
		"same throttle name": {m.AddThrottler(th2), scalekitotel.ErrDuplicate, "AddThrottler"},
		"same pacer name":    {m.AddRetryPacer("p", &retry.Pacer{}), scalekitotel.ErrDuplicate, "AddRetryPacer"},
		"same shedder name":  {m.AddSLOShedder("s", sh), scalekitotel.ErrDuplicate, "AddSLOShedder"},
		"nil shard router":   {m.AddShard("x", nil), scalekitotel.ErrInvalid, "AddShard"},
		"same shard name":    {m.AddShard("orders", newShardRouter(t)), scalekitotel.ErrDuplicate, "AddShard"},
		"nil shard store":    {m.AddShardStore("x", nil), scalekitotel.ErrInvalid, "AddShardStore"},
	} {
		if !errors.Is(c.err, c.want) || !strings.Contains(fmt.Sprint(c.err), c.method) {
			t.Errorf("%s: %v, want %v from %s", name, c.err, c.want, c.method)
		}
	}
}

// Many goroutines add bulkheads, timeouts, throttlers, pacers and
// shedders, and call through them, while collections run; the last
// collection has every one's series with its counts.
func TestMetricsHammerPolicies(t *testing.T) {
	m, rd := manual(t)
	ctx := context.Background()
	srv := spentServer(t)
	const n = 16
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			bh, err := bulkhead.New(bulkhead.Options{Name: fmt.Sprint("b", i)})
			check(t, err)
			check(t, m.AddBulkhead(bh))
			tm, err := timeout.New(timeout.Options{Timeout: time.Minute})
			check(t, err)
			check(t, m.AddTimeout(fmt.Sprint("t", i), tm))
			th, err := throttle.New(throttle.Options{Name: fmt.Sprint("th", i)})
			check(t, err)
			check(t, m.AddThrottler(th))
			for range i {
				_ = bh.Do(ctx, okCall)
				_ = tm.Do(ctx, okCall)
				_ = th.Do(ctx, okCall)
			}
			p := &retry.Pacer{Base: srv.Client().Transport}
			check(t, m.AddRetryPacer(fmt.Sprint("p", i), p))
			get(p, srv.URL)
			get(p, srv.URL)
			o, err := slo.New(slo.Options{Name: fmt.Sprint("o", i), Target: 0.5})
			check(t, err)
			sh, err := slo.NewShedder(slo.ShedderOptions{Objectives: []*slo.SLO{o}})
			check(t, err)
			check(t, m.AddSLOShedder(fmt.Sprint("s", i), sh))
			_ = sh.Do(ctx, okCall)
		})
		wg.Go(func() { otelSeries(t, rd) })
	}
	wg.Wait()
	s := otelSeries(t, rd)
	for i := range n {
		for k, v := range map[string]float64{
			fmt.Sprintf("scalekit_bulkhead_admitted_total{name=b%d}", i):                     float64(i),
			fmt.Sprintf("scalekit_bulkhead_in_flight{name=b%d}", i):                          0,
			fmt.Sprintf("scalekit_timeout_calls_total{name=t%d}", i):                         float64(i),
			fmt.Sprintf("scalekit_throttle_calls_total{name=th%d}", i):                       float64(i),
			fmt.Sprintf("scalekit_retry_pacer_requests_total{name=p%d,result=sent}", i):      1,
			fmt.Sprintf("scalekit_retry_pacer_requests_total{name=p%d,result=refused}", i):   1,
			fmt.Sprintf("scalekit_slo_shed_level{name=s%d,state=none}", i):                   1,
			fmt.Sprintf("scalekit_slo_shed_total{class=default,name=s%d}", i):                0,
			fmt.Sprintf("scalekit_throttle_throttled_total{class=critical,name=th%d}", i):    0,
			fmt.Sprintf("scalekit_bulkhead_rejections_total{name=b%d,reason=queue_full}", i): 0,
		} {
			if g, ok := s[k]; !ok || g != v {
				t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
			}
		}
	}
}
