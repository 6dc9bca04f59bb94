package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type reasonKey struct {
	kind    kind
	outcome outcome
	reason  string
}

const (
	maxBody    = 1 << 20
	maxSamples = 10
	postsLimit = 10
)

type generator struct {
	cfg    config
	base   string // the URL without a trailing slash
	out    io.Writer
	tr     *http.Transport
	admin  *http.Client // no cookie jar: admin endpoints and job look-ups
	users  sync.Map     // int -> *vuser
	start  time.Time
	reqs   sync.WaitGroup
	maxLag time.Duration // the scheduler's worst lateness; read after it returns

	sent, done, dropped, canceled, inflight atomic.Int64
	ok, expected, unexpected                atomic.Int64

	status [numKinds][600]atomic.Int64 // [k][0]: no response
	lat    [numKinds]histogram
	all    histogram
	phases [3]phase

	payments paymentRing
	replay   struct{ sent, compared, identical, bodyDiffers, statusDiffers, noHeader, overtook atomic.Int64 }
	ryw      struct{ checked, stale, readBacks atomic.Int64 }
	limited  struct{ total, noRetryAfter, noRateLimit atomic.Int64 }

	mu          sync.Mutex
	reasons     map[reasonKey]int64 // outcomes other than ok
	samples     []string            // the first unexpected errors, in detail
	notCompared map[string]int64    // replays not compared, by reason
	events      []string            // chaos
	jobURLs     []string            // the first email jobs' status URLs
}

func newGenerator(cfg config, out io.Writer) (*generator, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	u, _ := targetURL(cfg.URL, cfg.AllowRemote)
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        cfg.MaxInflight,
		MaxIdleConnsPerHost: cfg.MaxInflight,
		IdleConnTimeout:     90 * time.Second,
	}
	return &generator{
		cfg:         cfg,
		base:        strings.TrimSuffix(u.String(), "/"),
		out:         out,
		tr:          tr,
		admin:       &http.Client{Transport: tr},
		reasons:     map[reasonKey]int64{},
		notCompared: map[string]int64{},
	}, nil
}

func (g *generator) user(id int) *vuser {
	if v, ok := g.users.Load(id); ok {
		return v.(*vuser)
	}
	jar, _ := cookiejar.New(nil) // never fails without options
	v, _ := g.users.LoadOrStore(id, &vuser{client: &http.Client{Transport: g.tr, Jar: jar}})
	return v.(*vuser)
}

// preflight fails fast, with advice, when nothing listens at the URL. Any
// HTTP answer will do.
func (g *generator) preflight(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	r := g.send(ctx, g.admin, http.MethodGet, "/health/live", nil)
	if r.err != nil {
		return fmt.Errorf("cannot reach the service at %s (%s); start it with: go run -C examples ./service", g.base, errClass(r.err))
	}
	return nil
}

// schedule starts request i at start + i/rate, whatever happened to the
// earlier ones (open loop), and returns how long it scheduled. A request
// due while MaxInflight are in flight is dropped and counted, so the
// schedule never waits for the service.
func (g *generator) schedule(ctx context.Context) time.Duration {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	perReq := float64(time.Second) / g.cfg.Rate
	for i := int64(0); ; i++ {
		at := g.start.Add(time.Duration(float64(i) * perReq))
		if at.Sub(g.start) >= g.cfg.Duration {
			return g.cfg.Duration
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return time.Since(g.start)
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return time.Since(g.start)
		}
		g.maxLag = max(g.maxLag, time.Since(at))
		if g.inflight.Load() >= int64(g.cfg.MaxInflight) {
			g.dropped.Add(1)
			continue
		}
		g.inflight.Add(1)
		g.sent.Add(1)
		g.reqs.Go(func() {
			defer g.inflight.Add(-1)
			g.fire(ctx, at)
		})
	}
}

// fire sends one request meant to start at intended and records it, its
// latency counted from intended.
func (g *generator) fire(ctx context.Context, intended time.Time) {
	k := g.cfg.Mix.pick(rand.IntN(g.cfg.Mix.total()))
	uid := 1 + rand.IntN(g.cfg.Users)
	vu := g.user(uid)
	rctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	var r result
	switch k {
	case kindReads:
		r = g.read(rctx, vu, uid)
	case kindWrites:
		r = g.write(rctx, vu, uid)
	case kindPosts:
		r = g.posts(rctx, vu)
	case kindPayments:
		if rand.Float64() < g.cfg.ReplayFraction {
			if p := g.payments.random(); p != nil {
				k, r = kindReplays, g.replayPayment(rctx, p)
				break
			}
		}
		r = g.pay(rctx, vu, uid)
	case kindEmails:
		r = g.email(rctx, vu, uid)
	}
	g.record(ctx, k, intended, r)
}

// send makes one request and reads the response (up to maxBody).
func (g *generator) send(ctx context.Context, c *http.Client, method, path string, body []byte, header ...string) result {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return result{err: err, end: time.Now()}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "scalekit-loadgen")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err, end: time.Now()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	io.Copy(io.Discard, resp.Body) // let the connection be reused
	return result{status: resp.StatusCode, err: err, end: time.Now(), header: resp.Header, body: b}
}

// record counts a result. Requests cut short by an interrupted run are
// counted as canceled, apart from the rest.
func (g *generator) record(ctx context.Context, k kind, intended time.Time, r result) {
	defer g.done.Add(1)
	if r.err != nil && ctx.Err() != nil {
		g.canceled.Add(1)
		return
	}
	lat := r.end.Sub(intended)
	g.lat[k].record(lat)
	g.all.record(lat)
	s := r.status
	if s < 100 || s > 599 {
		s = 0
	}
	g.status[k][s].Add(1)
	if s == http.StatusTooManyRequests {
		g.limited.total.Add(1)
		if r.header.Get("Retry-After") == "" {
			g.limited.noRetryAfter.Add(1)
		}
		if !hasRateLimitHeader(r.header) {
			g.limited.noRateLimit.Add(1)
		}
	}
	o, reason := classify(k, r)
	var ph *phase
	if g.cfg.ChaosStop != "" {
		switch since := intended.Sub(g.start); {
		case since < g.cfg.ChaosAt:
			ph = &g.phases[0]
		case since < g.cfg.ChaosUntil:
			ph = &g.phases[1]
		default:
			ph = &g.phases[2]
		}
		ph.lat.record(lat)
	}
	switch o {
	case outcomeOK:
		g.ok.Add(1)
		if ph != nil {
			ph.ok.Add(1)
		}
		return
	case outcomeExpected:
		g.expected.Add(1)
		if ph != nil {
			ph.expected.Add(1)
		}
	case outcomeUnexpected:
		g.unexpected.Add(1)
		if ph != nil {
			ph.unexpected.Add(1)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.reasons[reasonKey{k, o, reason}]++
	if o == outcomeUnexpected && len(g.samples) < maxSamples {
		detail := r.detail
		if detail == "" && r.err != nil {
			detail = r.err.Error()
		} else if detail == "" {
			detail = excerpt(r.body)
		}
		g.samples = append(g.samples, fmt.Sprintf("%7.3fs %-8s %s: %s", intended.Sub(g.start).Seconds(), k, reason, detail))
	}
}

func hasRateLimitHeader(h http.Header) bool {
	for name := range h {
		if strings.HasPrefix(name, "Ratelimit") { // RateLimit, RateLimit-Policy, RateLimit-Remaining, ...
			return true
		}
	}
	return false
}

// progress prints a line every ProgressEvery until stop closes.
func (g *generator) progress(stop <-chan struct{}) {
	t := time.NewTicker(g.cfg.ProgressEvery)
	defer t.Stop()
	last, lastAt := int64(0), g.start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			done := g.done.Load()
			rps := float64(done-last) / now.Sub(lastAt).Seconds()
			last, lastAt = done, now
			fmt.Fprintf(g.out, "[%5.1fs] sent %d  done %d  rps %.0f  in flight %d  dropped %d  unexpected %d  expected %d  p99 %s\n",
				now.Sub(g.start).Seconds(), g.sent.Load(), done, rps, g.inflight.Load(), g.dropped.Load(),
				g.unexpected.Load(), g.expected.Load(), fmtDur(g.all.snapshot().quantile(0.99)))
		}
	}
}
