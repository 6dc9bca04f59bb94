package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/bulkhead"
)

// pay sends one POST /payments with a fresh Idempotency-Key, marked
// sheddable when asked (payments are critical otherwise), and returns the
// status code (0 when the request failed).
func pay(client *http.Client, base, key string, sheddable bool) int {
	req, _ := http.NewRequest("POST", base+"/payments", strings.NewReader(`{"user_id":3,"amount_cents":250}`))
	req.Header.Set("Idempotency-Key", key)
	if sheddable {
		req.Header.Set("X-Priority", "sheddable")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// setChaos sends POST /admin/chaos?query.
func setChaos(t *testing.T, client *http.Client, base, query string) {
	t.Helper()
	resp, err := client.Post(base+"/admin/chaos?"+query, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("chaos %s: %d %s", query, resp.StatusCode, b)
	}
}

// providerBulkhead reads the pipeline's bulkhead Stats from /admin/stats.
func providerBulkhead(t *testing.T, client *http.Client, base string) bulkhead.Stats {
	t.Helper()
	resp, err := client.Get(base + "/admin/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Bulkhead bulkhead.Stats `json:"provider_bulkhead"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Bulkhead
}

// TestShedsSheddablePaymentsWhenProviderSlows is the functional half of
// the load-shedding test (the measurement is TestLoadShedMeasure): with
// the provider slowed 5x and flooded by sheddable payments, the
// pipeline's bulkhead answers sheddable payments 503 while every critical
// payment succeeds, waiting behind critical payments only.
func TestShedsSheddablePaymentsWhenProviderSlows(t *testing.T) {
	base, _ := startService(t, io.Discard, func(c *Config) {
		c.RatePerClient = 100000
		c.ProviderLatency = 10 * time.Millisecond
		c.ProviderConcurrency = 1 // the bulkhead: 1 charge at once, 1 waiting
	})
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	setChaos(t, client, base, "provider_slow=5") // 50ms per charge, one at a time

	// 8 callers send sheddable payments back to back, more than the
	// provider serves: they keep the bulkhead and its queue full.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var shed, served atomic.Int64
	for i := range 8 {
		wg.Go(func() {
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				switch code := pay(client, base, fmt.Sprintf("flood-%d-%d", i, n), true); code {
				case http.StatusCreated:
					served.Add(1)
				case http.StatusServiceUnavailable:
					shed.Add(1)
				default:
					t.Errorf("sheddable payment: status %d, want 201 or 503", code)
					return
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	eventually(t, 60*time.Second, "a sheddable payment answered 503", func() bool { return shed.Load() > 0 })

	// Critical payments through the flood: each takes a sheddable
	// payment's place in the queue and waits for one charge at most.
	for i := range 5 {
		if code := pay(client, base, fmt.Sprintf("critical-%d", i), false); code != http.StatusCreated {
			t.Errorf("critical payment %d during the flood: status %d, want 201", i, code)
		}
	}
	st := providerBulkhead(t, client, base)
	if st.Rejected.Sheddable == 0 || st.Rejected.Critical != 0 {
		t.Errorf("bulkhead rejections by class: %+v, want sheddable ones and no critical one", st.Rejected)
	}
	t.Logf("sheddable: %d served, %d shed; bulkhead %+v", served.Load(), shed.Load(), st)
}

// A sample is one payment of an open-loop run.
type sample struct {
	critical bool
	code     int
	latency  time.Duration // from its intended start
}

// openLoop sends payments at rate per second for d, one in three
// critical, the rest sheddable, each started at its intended time
// whatever the latency of the others, and its latency counted from that
// time (no coordinated omission).
func openLoop(client *http.Client, base, prefix string, rate int, d time.Duration) []sample {
	interval := time.Second / time.Duration(rate)
	n := int(d / interval)
	out := make([]sample, n)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		intended := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(intended)) // pacing, not synchronisation
		critical := i%3 == 0
		wg.Go(func() {
			code := pay(client, base, fmt.Sprintf("%s-%d", prefix, i), !critical)
			out[i] = sample{critical: critical, code: code, latency: time.Since(intended)}
		})
	}
	wg.Wait()
	return out
}

// classSummary is one class's line of a phase.
type classSummary struct {
	sent, ok, shed, failed int
	p50, p99               time.Duration
}

func summarize(s []sample, critical bool) classSummary {
	var c classSummary
	var lat []time.Duration
	for _, x := range s {
		if x.critical != critical {
			continue
		}
		c.sent++
		switch x.code {
		case http.StatusCreated:
			c.ok++
		case http.StatusServiceUnavailable:
			c.shed++
		default:
			c.failed++
		}
		lat = append(lat, x.latency)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		c.p50 = lat[len(lat)*50/100]
		c.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return c
}

// TestLoadShedMeasure is the load test of issue 22, a manual measurement
// (SCALEKIT_LOADTEST=1; SCALEKIT_LOADTEST_RATE, default 120 payments/s;
// SCALEKIT_LOADTEST_SECONDS per phase, default 10;
// SCALEKIT_LOADTEST_CONCURRENCY, the provider's, default 2): open-loop
// payments, one in three critical, against the service on real servers,
// with the
// policy pipeline and without it (Config.NoPipeline), first at the
// provider's normal latency, then slowed 5x. It prints the table of
// examples/README.md and fails when, with the pipeline, critical payments'
// p99 slowed is above twice their p99 at normal speed.
func TestLoadShedMeasure(t *testing.T) {
	if os.Getenv("SCALEKIT_LOADTEST") != "1" {
		t.Skip("a manual measurement: SCALEKIT_LOADTEST=1 runs it (examples/README.md)")
	}
	rate, seconds, concurrency := 120, 10, 2
	if v, err := strconv.Atoi(os.Getenv("SCALEKIT_LOADTEST_RATE")); err == nil && v > 0 {
		rate = v
	}
	if v, err := strconv.Atoi(os.Getenv("SCALEKIT_LOADTEST_SECONDS")); err == nil && v > 0 {
		seconds = v
	}
	if v, err := strconv.Atoi(os.Getenv("SCALEKIT_LOADTEST_CONCURRENCY")); err == nil && v > 0 {
		concurrency = v
	}
	d := time.Duration(seconds) * time.Second
	type row struct {
		name     string
		crit, sh classSummary
	}
	var rows []row
	var critBase, critSlow time.Duration
	for _, noPipeline := range []bool{false, true} {
		name := "pipeline"
		if noPipeline {
			name = "no pipeline"
		}
		key := strings.ReplaceAll(name, " ", "-") // Idempotency-Key prefix: no spaces
		t.Run(key, func(t *testing.T) {
			base, _ := startService(t, io.Discard, func(c *Config) {
				c.RatePerClient = 100000
				c.ProviderConcurrency = concurrency
				c.NoPipeline = noPipeline
				c.Logger = slog.New(slog.DiscardHandler)
			})
			client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
			defer client.CloseIdleConnections()
			openLoop(client, base, key+"-warmup", rate, 2*time.Second)
			normal := openLoop(client, base, key+"-normal", rate, d)
			setChaos(t, client, base, "provider_slow=5")
			slowed := openLoop(client, base, key+"-slowed", rate, d)
			for _, ph := range []struct {
				label string
				s     []sample
			}{{"normal", normal}, {"slowed 5x", slowed}} {
				r := row{name: name + ", provider " + ph.label, crit: summarize(ph.s, true), sh: summarize(ph.s, false)}
				rows = append(rows, r)
				if !noPipeline && ph.label == "normal" {
					critBase = r.crit.p99
				} else if !noPipeline {
					critSlow = r.crit.p99
				}
			}
		})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%d payments/s for %v per phase, one in three critical; the provider serves %d charges at once, 5ms each (%d/s), slowed 25ms (%d/s)\n",
		rate, d, concurrency, concurrency*200, concurrency*40)
	fmt.Fprintln(&b, "| run | critical ok/sent | critical p50 | critical p99 | sheddable ok/sent | sheddable shed (503) | sheddable failed | sheddable p50 | sheddable p99 |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %d/%d (%d failed, %d 503) | %s | %s | %d/%d | %d | %d | %s | %s |\n", r.name, r.crit.ok, r.crit.sent, r.crit.failed, r.crit.shed,
			ms(r.crit.p50), ms(r.crit.p99), r.sh.ok, r.sh.sent, r.sh.shed, r.sh.failed, ms(r.sh.p50), ms(r.sh.p99))
	}
	t.Log(b.String())
	if critBase == 0 || critSlow > 2*critBase {
		t.Errorf("with the pipeline, critical p99 slowed %v, at normal speed %v: want within 2x", critSlow, critBase)
	}
}
