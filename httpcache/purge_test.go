package httpcache

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/breaker"
	"github.com/scalekit-go/scalekit/retry"
)

// edge is a purge endpoint that records each request and answers with
// the statuses queued in status (200 once they run out).
type edge struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies []string
	status []int
	srv    *httptest.Server
}

func newEdge(t *testing.T, status ...int) *edge {
	e := &edge{status: status}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.reqs = append(e.reqs, r)
		e.bodies = append(e.bodies, string(b))
		code := 200
		if len(e.status) > 0 {
			code, e.status = e.status[0], e.status[1:]
		}
		e.mu.Unlock()
		if code == 429 {
			w.Header().Set("Retry-After", "0")
		}
		w.WriteHeader(code)
		io.WriteString(w, "answer "+http.StatusText(code))
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *edge) count() int { e.mu.Lock(); defer e.mu.Unlock(); return len(e.reqs) }

func fastRetrier(t *testing.T, attempts int) *retry.Retrier {
	r, err := retry.New(retry.Options{MaxAttempts: attempts, Backoff: retry.Constant{D: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestHTTPPurgerOptionsInvalid(t *testing.T) {
	for _, c := range []struct {
		o     HTTPPurgerOptions
		field string
	}{
		{HTTPPurgerOptions{}, "URL"},
		{HTTPPurgerOptions{URL: "ftp://x/"}, "URL"},
		{HTTPPurgerOptions{URL: "http://x/", Method: "BAD METHOD"}, "Method"},
		{HTTPPurgerOptions{URL: "http://x/", KeysHeader: "a", BodyField: "tags"}, "BodyField"},
		{HTTPPurgerOptions{URL: "http://x/", KeysHeader: "a b"}, "KeysHeader"},
		{HTTPPurgerOptions{URL: "http://x/", Separator: ";"}, "Separator"},
		{HTTPPurgerOptions{URL: "http://x/", MaxKeysPerRequest: -1}, "MaxKeysPerRequest"},
		{HTTPPurgerOptions{URL: "http://x/", Timeout: -1}, "Timeout"},
	} {
		if _, err := NewHTTPPurger(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewHTTPPurger(%+v) = %v, want ErrInvalid naming %s", c.o, err, c.field)
		}
	}
}

func TestHTTPPurgerRequests(t *testing.T) {
	ctx := context.Background()
	t.Run("header, split", func(t *testing.T) {
		e := newEdge(t)
		p, err := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL + "/purge", Method: "PURGE", MaxKeysPerRequest: 2,
			Header: http.Header{"Fastly-Key": {"secret"}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Purge(ctx, []string{"a", "b", "c"}); err != nil {
			t.Fatal(err)
		}
		if e.count() != 2 {
			t.Fatalf("%d requests, want 2", e.count())
		}
		for i, want := range []string{"a b", "c"} {
			r := e.reqs[i]
			if r.Method != "PURGE" || r.URL.Path != "/purge" || r.Header.Get("Surrogate-Key") != want || r.Header.Get("Fastly-Key") != "secret" {
				t.Fatalf("request %d: %s %s %v", i, r.Method, r.URL, r.Header)
			}
		}
		if st := p.Stats(); st.Purges != 1 || st.Keys != 3 || st.Requests != 2 || st.Failures != 0 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("json body", func(t *testing.T) {
		e := newEdge(t)
		p, err := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL, BodyField: "tags"})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Purge(ctx, []string{"user:1", "posts"}); err != nil {
			t.Fatal(err)
		}
		var body map[string][]string
		if err := json.Unmarshal([]byte(e.bodies[0]), &body); err != nil || strings.Join(body["tags"], "|") != "user:1|posts" {
			t.Fatalf("body %q: %v", e.bodies[0], err)
		}
		if r := e.reqs[0]; r.Method != "POST" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Surrogate-Key") != "" {
			t.Fatalf("request %s %v", r.Method, r.Header)
		}
	})
	t.Run("no keys, bad key", func(t *testing.T) {
		e := newEdge(t)
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL})
		if err := p.Purge(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if err := p.Purge(ctx, []string{"ok", "not ok"}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("bad key: %v", err)
		}
		if e.count() != 0 {
			t.Fatalf("%d requests sent", e.count())
		}
	})
}

func TestHTTPPurgerFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("retries 5xx and 429", func(t *testing.T) {
		e := newEdge(t, 503, 429, 200)
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL, Retrier: fastRetrier(t, 3)})
		if err := p.Purge(ctx, []string{"a"}); err != nil {
			t.Fatal(err)
		}
		if e.count() != 3 {
			t.Fatalf("%d attempts, want 3", e.count())
		}
	})
	t.Run("gives up wrapping ErrPurge", func(t *testing.T) {
		e := newEdge(t, 500, 500, 500)
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL, Retrier: fastRetrier(t, 3)})
		err := p.Purge(ctx, []string{"a"})
		var pe *PurgeError
		if !errors.Is(err, ErrPurge) || !errors.As(err, &pe) || pe.Status != 500 || pe.Body != "answer Internal Server Error" {
			t.Fatalf("err %v", err)
		}
		if st := p.Stats(); st.Failures != 1 || st.Requests != 3 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("4xx is not retried and does not trip the breaker", func(t *testing.T) {
		e := newEdge(t, 403, 403, 403, 403, 403, 403, 403)
		br, _ := breaker.New(breaker.Options{ConsecutiveFailures: 2})
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL, Retrier: fastRetrier(t, 3), Breaker: br})
		for i := 0; i < 4; i++ {
			if err := p.Purge(ctx, []string{"a"}); !errors.Is(err, ErrPurge) {
				t.Fatalf("err %v", err)
			}
		}
		if e.count() != 4 || br.State() != breaker.Closed {
			t.Fatalf("%d requests (want 4, no retries), breaker %v", e.count(), br.State())
		}
	})
	t.Run("breaker opens on a dead edge", func(t *testing.T) {
		e := newEdge(t)
		url := e.srv.URL
		e.srv.Close() // connection refused
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: url, Retrier: fastRetrier(t, 1)})
		var last error
		for i := 0; i < 10; i++ {
			last = p.Purge(ctx, []string{"a"})
			if !errors.Is(last, ErrPurge) {
				t.Fatalf("attempt %d: %v does not wrap ErrPurge", i, last)
			}
		}
		if !errors.Is(last, breaker.ErrOpen) {
			t.Fatalf("after 10 failures: %v, want breaker.ErrOpen", last)
		}
		if st := p.Stats(); st.Requests != 5 {
			t.Fatalf("%d requests reached the edge, want 5 (then the breaker opened)", st.Requests)
		}
	})
	t.Run("retry budget bounds a storm", func(t *testing.T) {
		var hits atomic.Int64
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); w.WriteHeader(502) }))
		defer srv.Close()
		budget, _ := retry.NewBudget(retry.BudgetOptions{Ratio: 0.1, NoMinRetries: true})
		r, _ := retry.New(retry.Options{MaxAttempts: 3, Backoff: retry.Constant{D: time.Millisecond}, Budget: budget})
		br, _ := breaker.New(breaker.Options{NoConsecutive: true, FailureRateThreshold: 1, MinimumCalls: 1000000})
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: srv.URL, Retrier: r, Breaker: br})
		for i := 0; i < 100; i++ {
			p.Purge(ctx, []string{"a"})
		}
		if n := hits.Load(); n > 115 {
			t.Fatalf("%d requests for 100 purges: the budget (10%%) should keep retries near 10", n)
		}
	})
	t.Run("ctx ends", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		defer srv.Close()
		defer close(release)
		p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: srv.URL})
		ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		if err := p.Purge(ctx, []string{"a"}); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the ctx's", err)
		}
	})
}

// TestHTTPPurgerConcurrent: many goroutines purging through one purger.
func TestHTTPPurgerConcurrent(t *testing.T) {
	e := newEdge(t)
	p, _ := NewHTTPPurger(HTTPPurgerOptions{URL: e.srv.URL})
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if err := p.Purge(context.Background(), []string{"a", "b"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.Purges != 160 || st.Requests != 160 || e.count() != 160 {
		t.Fatalf("stats %+v, edge saw %d", st, e.count())
	}
}

func TestVarnishPurgerRequest(t *testing.T) {
	e := newEdge(t)
	for _, soft := range []bool{false, true} {
		p, err := NewVarnishPurger(VarnishPurgerOptions{URL: e.srv.URL, Soft: soft})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Purge(context.Background(), []string{"user:1", "posts"}); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.reqs[0]; r.Method != "PURGE" || r.Header.Get("Xkey-Purge") != "user:1 posts" {
		t.Fatalf("hard: %s %v", r.Method, r.Header)
	}
	if r := e.reqs[1]; r.Header.Get("Xkey-Softpurge") != "user:1 posts" || r.Header.Get("Xkey-Purge") != "" {
		t.Fatalf("soft: %v", r.Header)
	}
}
