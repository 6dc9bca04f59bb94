package console_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/console"
	"github.com/scalekit-go/scalekit/dbrouter/routerstats"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/slo"
)

// mutStats is a primitive's Stats that the test changes between samples
// (under mu): a *mutStats[cache.Stats] stands in for a cache.
type mutStats[T any] struct {
	mu sync.Mutex
	st T
}

func (f *mutStats[T]) Stats() T {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

// fakeLimiter is a rate limit middleware's Stats; mutCache a cache's,
// mutRouter a dbrouter's.
type (
	fakeLimiter = mutStats[ratelimit.HTTPStats]
	mutCache    = mutStats[cache.Stats]
	mutRouter   = mutStats[routerstats.Stats]
)

var pointsRE = regexp.MustCompile(`<polyline class="l(\d)" points="([^"]*)"><title>([^<]*)</title>`)

// lines returns each chart line of body by its name: how many points.
func lines(body string) map[string]int {
	out := map[string]int{}
	for _, m := range pointsRE.FindAllStringSubmatch(body, -1) {
		n := 0
		if m[2] != "" {
			n = strings.Count(m[2], " ") + 1
		}
		out[m[3]] += n
	}
	return out
}

// Samples taken every 10 s (a manual clock) draw the charts of every
// detail page: rates from consecutive counter samples, ratios per
// interval, gauges as sampled, ejections as marks; names stay text.
func TestHistoryCharts(t *testing.T) {
	ctx := context.Background()
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	con := newConsole(t, console.Options{Clock: clk, Sample: 10 * time.Second, History: 10 * time.Minute})

	// Before Start: no history, said so.
	lim := &fakeLimiter{}
	must(t, con.AddLimiter("api "+xss, lim))
	if body := do(t, con, "GET", "/limiters", nil, nil).Body.String(); !strings.Contains(body, "no history: the console is not started") {
		t.Fatalf("before Start:\n%s", body)
	}

	ch := &mutCache{}
	must(t, con.AddCache("users", ch))
	rt := &mutRouter{st: routerstats.Stats{Primary: routerstats.PrimaryStats{Up: true}, Replicas: []routerstats.ReplicaStats{{Name: "r1", Healthy: true, LagKnown: true}}}}
	must(t, con.AddDBRouter("main", rt))
	s, err := slo.New(slo.Options{Name: "checkout", Target: 0.99, Window: 30 * 24 * time.Hour, Clock: clk})
	must(t, err)
	must(t, con.AddSLO(s))
	cl, err := queue.NewClient(queue.ClientOptions{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{})})
	must(t, err)
	must(t, con.AddQueue("jobs", cl, "mail"))
	local, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: ratelimit.Policy{{Rate: 1, Period: time.Hour}}})
	must(t, err)
	must(t, con.AddLimiter("local", local))

	must(t, con.Start(ctx)) // the first sample, at 12:00:00
	defer con.Close()
	if err := con.Start(ctx); !errors.Is(err, console.ErrInvalid) {
		t.Errorf("a second Start: %v", err)
	}
	for i := 1; i <= 6; i++ {
		clk.Add(10 * time.Second)
		lim.mu.Lock()
		lim.st.Allowed += 50 // 5/s
		lim.st.Denied += 20  // 2/s
		lim.mu.Unlock()
		ch.mu.Lock()
		ch.st.Hits += 30 // 75 % per interval
		ch.st.Misses += 10
		ch.st.Loads += 10 // 1/s
		ch.mu.Unlock()
		rt.mu.Lock()
		rt.st.Replicas[0].LagBytes = int64(i) << 20
		if i == 4 {
			rt.st.Replicas[0].Ejections++
		}
		rt.mu.Unlock()
		for range 100 {
			s.Record(i%2 == 0)
		}
		local.Allow(ctx, "k")
		console.SampleNow(con)
	}

	body := do(t, con, "GET", "/limiters", nil, nil).Body.String()
	ls := lines(body)
	if ls["allowed/s"] != 12 || ls["denied/s"] != 12 || !strings.Contains(body, "allowed/s: 5/s") || !strings.Contains(body, "denied/s: 2/s") { // 6 rates for each limiter
		t.Errorf("limiter chart lines %v:\n%s", ls, body)
	}
	if !strings.Contains(body, `<span class="state amber">amber</span> api &lt;script&gt;alert(1)&lt;/script&gt;</h3>`) ||
		!strings.Contains(body, "rate limit middleware: denying 2/s") || !strings.Contains(body, "now: 5/s allowed, 2/s denied") {
		t.Errorf("the limiter is not amber, denying 2/s:\n%s", body)
	}
	if !strings.Contains(body, "in-process limiter: denying 0.1/s") || !strings.Contains(body, "1 allowed, 5 denied") {
		t.Errorf("the local limiter:\n%s", body)
	}
	if injected(body) || !strings.Contains(body, `<text class="x" x="630" y="180" dy="-6">now</text>`) ||
		!strings.Contains(body, `dx="-4" dy="4">5/s</text>`) {
		t.Errorf("markup, or no time axis or unit on the y axis:\n%s", body)
	}

	body = do(t, con, "GET", "/caches", nil, nil).Body.String()
	if ls := lines(body); ls["L1 (memory)"] != 6 || ls["L2 (store)"] != 0 || ls["loads/s"] != 6 ||
		!strings.Contains(body, "L1 (memory): 75 %") || !strings.Contains(body, "loads/s: 1/s") {
		t.Errorf("cache charts %v:\n%s", ls, body)
	}

	body = do(t, con, "GET", "/dbrouters", nil, nil).Body.String()
	if ls := lines(body); ls["r1"] != 7 || !strings.Contains(body, "r1: 6.0 MiB") || strings.Count(body, `<line class="mark"`) != 1 ||
		!strings.Contains(body, "<title>1 at 2026-01-01T12:00:40Z</title>") {
		t.Errorf("router chart %v (want 7 lag samples, one ejection at 12:00:40):\n%s", ls, body)
	}

	body = do(t, con, "GET", "/slos", nil, nil).Body.String()
	if ls := lines(body); ls["budget left"] != 7 || len(ls) < 3 || !strings.Contains(body, "burn rate per alert window") {
		t.Errorf("SLO charts %v:\n%s", ls, body)
	}

	body = do(t, con, "GET", "/queues", nil, nil).Body.String()
	if ls := lines(body); ls["completed/s"] != 6 || ls["pending"] != 7 || ls["lag"] != 7 {
		t.Errorf("queue charts %v:\n%s", ls, body)
	}

	// Later the window holds no sample.
	clk.Add(2 * time.Hour)
	if body := do(t, con, "GET", "/caches", nil, nil).Body.String(); !strings.Contains(body, "no samples yet") {
		t.Errorf("two hours later:\n%s", body)
	}
	if err := con.Close(); err != nil {
		t.Fatal(err)
	}
	if err := con.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestAddLimiterInvalid(t *testing.T) {
	con := newConsole(t, console.Options{})
	if err := con.AddLimiter("x", 42); !errors.Is(err, console.ErrInvalid) || !strings.Contains(err.Error(), "AddLimiter: int has no Stats method") {
		t.Errorf("AddLimiter(int): %v", err)
	}
	if err := con.AddLimiter("x", (*fakeLimiter)(nil)); !errors.Is(err, console.ErrInvalid) {
		t.Errorf("AddLimiter(nil): %v", err)
	}
	must(t, con.AddLimiter("x", &fakeLimiter{}))
	if err := con.AddLimiter("x", &fakeLimiter{}); !errors.Is(err, console.ErrDuplicate) {
		t.Errorf("a second limiter x: %v", err)
	}
	for _, o := range []console.Options{{Sample: time.Millisecond}, {History: -1}, {Sample: time.Minute, History: time.Second}} {
		o.Authorize = authorize
		if _, err := console.New(o); !errors.Is(err, console.ErrInvalid) {
			t.Errorf("New(%+v): %v", o, err)
		}
	}
}
