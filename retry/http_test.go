package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"120", 2 * time.Minute, true},
		{" 0 ", 0, true},
		{"007", 7 * time.Second, true},
		{"99999999999", 365 * 24 * time.Hour, true},             // capped at a year
		{"99999999999999999999999", 365 * 24 * time.Hour, true}, // past uint64
		{"Tue, 24 Nov 2026 12:01:30 GMT", 90 * time.Second, true},
		{"Tuesday, 24-Nov-26 12:01:30 GMT", 90 * time.Second, true}, // RFC 850
		{"Tue Nov 24 12:01:30 2026", 90 * time.Second, true},        // asctime
		{"Tue, 24 Nov 2026 11:00:00 GMT", 0, true},                  // in the past
		{"Fri, 24 Nov 2062 12:00:00 GMT", 365 * 24 * time.Hour, true},
		{"", 0, false}, {"  ", 0, false}, {"-5", 0, false}, {"+5", 0, false},
		{"1.5", 0, false}, {"5s", 0, false}, {"soon", 0, false}, {"Tue, 24 Nov 2026", 0, false},
	} {
		got, ok := ParseRetryAfter(c.v, now)
		if got != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}

// memTransport serves requests with a handler in memory (no network, so it
// works in a synctest bubble) and keeps the response bodies it hands out.
type memTransport struct {
	h      http.Handler
	mu     sync.Mutex
	bodies []*trackedBody
}

type trackedBody struct {
	io.Reader
	closed atomic.Bool
}

func (b *trackedBody) Close() error { b.closed.Store(true); return nil }

func (m *memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := *req
	if in.Body == nil {
		in.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	m.h.ServeHTTP(rec, &in)
	in.Body.Close() // as a RoundTripper must
	resp := rec.Result()
	tb := &trackedBody{Reader: resp.Body}
	resp.Body = tb
	m.mu.Lock()
	m.bodies = append(m.bodies, tb)
	m.mu.Unlock()
	return resp, nil
}

// open returns how many response bodies are not closed.
func (m *memTransport) open() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, b := range m.bodies {
		if !b.closed.Load() {
			n++
		}
	}
	return n
}

// server answers each path with its list of statuses in turn (the last one
// repeated), recording the request bodies it sees.
type server struct {
	mu      sync.Mutex
	answers map[string][]string // "503", "429 Retry-After: 1", "200"
	hits    map[string]int
	bodies  []string
}

func newServer(answers map[string][]string) *server {
	return &server{answers: answers, hits: map[string]int{}}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := s.hits[r.URL.Path]
	s.hits[r.URL.Path]++
	if len(b) > 0 {
		s.bodies = append(s.bodies, string(b))
	}
	list := s.answers[r.URL.Path]
	s.mu.Unlock()
	if len(list) == 0 {
		list = []string{"200"}
	}
	status, header, _ := strings.Cut(list[min(n, len(list)-1)], " ")
	if k, v, ok := strings.Cut(header, ": "); ok {
		w.Header().Set(k, v)
	}
	var code int
	fmt.Sscan(status, &code)
	w.WriteHeader(code)
	fmt.Fprintf(w, "answer %d", n+1)
}

func (s *server) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func TestTransport(t *testing.T) {
	bubble := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) { synctest.Test(t, f) })
	}
	{
		// synctest bubbles start at 2000-01-01 00:00:00 UTC.
		retryAfterDate := time.Date(2000, 1, 1, 0, 0, 3, 0, time.UTC).Format(http.TimeFormat)
		srv := newServer(map[string][]string{
			"/flaky":    {"503", "200"},
			"/limited":  {"429 Retry-After: 1", "200"},
			"/dated":    {"503 Retry-After: " + retryAfterDate, "200"},
			"/too-long": {"429 Retry-After: 120", "200"},
			"/down":     {"502"},
			"/teapot":   {"418", "200"},
		})
		mem := &memTransport{h: srv}
		r := newR(t, Options{MaxAttempts: 3, Backoff: Constant{D: 10 * ms}})
		client := &http.Client{Transport: &Transport{Base: mem, Retrier: r}}
		const url = "http://example.test"

		do := func(t *testing.T, req *http.Request, wantStatus, wantHits int, wantTime time.Duration) string {
			t.Helper()
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != wantStatus || srv.count(req.URL.Path) != wantHits || time.Since(start) != wantTime {
				t.Fatalf("%s %s: %d after %d hits in %v; want %d after %d in %v",
					req.Method, req.URL.Path, resp.StatusCode, srv.count(req.URL.Path), time.Since(start), wantStatus, wantHits, wantTime)
			}
			if n := mem.open(); n != 0 {
				t.Fatalf("%d response bodies left open", n)
			}
			return string(body)
		}
		get := func(path string) *http.Request { req, _ := http.NewRequest("GET", url+path, nil); return req }

		bubble("503 then 200", func(t *testing.T) {
			if body := do(t, get("/flaky"), 200, 2, 10*ms); body != "answer 2" {
				t.Fatalf("body %q", body)
			}
		})
		bubble("429 with Retry-After seconds", func(t *testing.T) {
			do(t, get("/limited"), 200, 2, time.Second)
		})
		bubble("503 with Retry-After date", func(t *testing.T) {
			do(t, get("/dated"), 200, 2, 3*time.Second)
		})
		bubble("Retry-After over MaxRetryAfter ends with that answer", func(t *testing.T) {
			do(t, get("/too-long"), 429, 1, 0)
		})
		bubble("always 502: the last answer after 3 attempts", func(t *testing.T) {
			if body := do(t, get("/down"), 502, 3, 20*ms); body != "answer 3" {
				t.Fatalf("body %q", body)
			}
		})
		bubble("other statuses are not retried", func(t *testing.T) {
			do(t, get("/teapot"), 418, 1, 0)
		})
		bubble("POST is not retried", func(t *testing.T) {
			req, _ := http.NewRequest("POST", url+"/post", strings.NewReader("pay"))
			srv.answers["/post"] = []string{"503", "200"}
			do(t, req, 503, 1, 0)
		})
		bubble("POST with Idempotency-Key is retried, its body replayed", func(t *testing.T) {
			srv.answers["/post-key"] = []string{"503", "503", "200"}
			srv.bodies = nil
			req, _ := http.NewRequest("POST", url+"/post-key", strings.NewReader("pay 10"))
			req.Header.Set("Idempotency-Key", "k1")
			do(t, req, 200, 3, 20*ms)
			if got := strings.Join(srv.bodies, ","); got != "pay 10,pay 10,pay 10" {
				t.Fatalf("bodies %q", got)
			}
		})
		bubble("PUT body replayed", func(t *testing.T) {
			srv.answers["/put"] = []string{"504", "200"}
			srv.bodies = nil
			req, _ := http.NewRequest("PUT", url+"/put", strings.NewReader("v=1"))
			do(t, req, 200, 2, 10*ms)
			if got := strings.Join(srv.bodies, ","); got != "v=1,v=1" {
				t.Fatalf("bodies %q", got)
			}
		})
		bubble("a body without GetBody is not retried", func(t *testing.T) {
			srv.answers["/put-once"] = []string{"503", "200"}
			req, _ := http.NewRequest("PUT", url+"/put-once", io.NopCloser(strings.NewReader("v=1")))
			do(t, req, 503, 1, 0)
		})
		bubble("RetryNonIdempotent", func(t *testing.T) {
			c := &http.Client{Transport: &Transport{Base: mem, Retrier: r, RetryNonIdempotent: true}}
			srv.answers["/patch"] = []string{"503", "200"}
			req, _ := http.NewRequest("PATCH", url+"/patch", strings.NewReader("x"))
			resp, err := c.Do(req)
			if err != nil || resp.StatusCode != 200 || srv.count("/patch") != 2 {
				t.Fatalf("%v %v after %d hits", resp, err, srv.count("/patch"))
			}
			resp.Body.Close()
		})
		bubble("empty budget: the first answer", func(t *testing.T) {
			b := newBudget(t, BudgetOptions{NoMinRetries: true})
			c := &http.Client{Transport: &Transport{Base: mem, Retrier: newR(t, Options{Budget: b})}}
			srv.answers["/budget"] = []string{"503", "200"}
			resp, err := c.Get(url + "/budget")
			if err != nil || resp.StatusCode != 503 || srv.count("/budget") != 1 || b.Stats().Refusals != 1 {
				t.Fatalf("%v %v after %d hits", resp, err, srv.count("/budget"))
			}
			resp.Body.Close()
		})
		bubble("ctx cancelled during the wait", func(t *testing.T) {
			srv.answers["/cancel"] = []string{"503 Retry-After: 5", "200"}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			req, _ := http.NewRequestWithContext(ctx, "GET", url+"/cancel", nil)
			resp, err := client.Do(req)
			if resp != nil || !errors.Is(err, context.Canceled) || mem.open() != 0 {
				t.Fatalf("%v %v, %d bodies open", resp, err, mem.open())
			}
		})
		bubble("invalid MaxRetryAfter", func(t *testing.T) {
			body := &trackedBody{Reader: strings.NewReader("x")}
			req, _ := http.NewRequest("PUT", url+"/x", body)
			_, err := (&Transport{Base: mem, MaxRetryAfter: -1}).RoundTrip(req)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Transport.MaxRetryAfter") || !body.closed.Load() {
				t.Fatalf("%v (body closed: %v)", err, body.closed.Load())
			}
		})
	}
}

// errTransport fails with the given errors in turn, then answers 200.
type errTransport struct {
	errs  []error
	calls int
}

func (e *errTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	e.calls++
	if e.calls <= len(e.errs) {
		return nil, e.errs[e.calls-1]
	}
	return &http.Response{StatusCode: 200, Body: http.NoBody, Request: req}, nil
}

func TestTransportErrors(t *testing.T) {
	r := newR(t, Options{MaxAttempts: 5, Backoff: Constant{}})
	for _, c := range []struct {
		err       error
		wantCalls int
	}{
		{&net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, 2},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), 2},
		{io.ErrUnexpectedEOF, 2},
		{errors.New("tls: failed to verify certificate: x509: unknown authority"), 1},
		{errors.New("unsupported protocol scheme"), 1},
	} {
		base := &errTransport{errs: []error{c.err}}
		req, _ := http.NewRequest("GET", "http://example.test/", nil)
		resp, err := (&Transport{Base: base, Retrier: r}).RoundTrip(req)
		if base.calls != c.wantCalls {
			t.Errorf("%v: %d round trips, want %d (resp %v, err %v)", c.err, base.calls, c.wantCalls, resp, err)
		}
		if c.wantCalls == 1 && !errors.Is(err, c.err) {
			t.Errorf("%v: got %v", c.err, err)
		}
	}
}

// TestTransportRealServer runs over loopback: a real 503 then 200, and a
// refused connection.
func TestTransportRealServer(t *testing.T) {
	srv := newServer(map[string][]string{"/flaky": {"503", "200"}})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	r := newR(t, Options{MaxAttempts: 3, Backoff: Constant{}})
	client := &http.Client{Transport: &Transport{Retrier: r}}
	resp, err := client.Get(ts.URL + "/flaky")
	if err != nil || resp.StatusCode != 200 || srv.count("/flaky") != 2 {
		t.Fatalf("%v %v after %d hits", resp, err, srv.count("/flaky"))
	}
	resp.Body.Close()

	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	before := r.Stats().Attempts
	_, err = client.Get(url)
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts != 3 || !errors.Is(err, syscall.ECONNREFUSED) || r.Stats().Attempts-before != 3 {
		t.Fatalf("connection refused: %v", err)
	}
}

// TestTransportMaxRetryAfter (issue 15 item 6): Transport and Do share one
// cap, the Retrier's Options.MaxRetryAfter; Transport.MaxRetryAfter, when
// set, still replaces it for that Transport, as it did.
func TestTransportMaxRetryAfter(t *testing.T) {
	const url = "http://example.test"
	for _, c := range []struct {
		name              string
		retrierMax, trMax time.Duration
		retryAfter        string
		wantStatus        int
		wantHits          int
		wantTime          time.Duration
	}{
		{"defaults: 30s waited", 0, 0, "30", 200, 2, 30 * time.Second},
		{"defaults: 31s ends", 0, 0, "31", 429, 1, 0},
		{"the Retrier's cap applies", 5 * time.Second, 0, "10", 429, 1, 0},
		{"the Retrier's raised cap applies", 2 * time.Minute, 0, "60", 200, 2, time.Minute},
		{"Transport.MaxRetryAfter overrides upwards", 0, 2 * time.Minute, "60", 200, 2, time.Minute},
		{"Transport.MaxRetryAfter overrides downwards", 0, 5 * time.Second, "10", 429, 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := newServer(map[string][]string{"/x": {"429 Retry-After: " + c.retryAfter, "200"}})
				mem := &memTransport{h: srv}
				r := newR(t, Options{MaxRetryAfter: c.retrierMax, Backoff: Constant{}})
				client := &http.Client{Transport: &Transport{Base: mem, Retrier: r, MaxRetryAfter: c.trMax}}
				start := time.Now()
				resp, err := client.Get(url + "/x")
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != c.wantStatus || srv.count("/x") != c.wantHits || time.Since(start) != c.wantTime {
					t.Fatalf("%d after %d hits in %v; want %d after %d in %v",
						resp.StatusCode, srv.count("/x"), time.Since(start), c.wantStatus, c.wantHits, c.wantTime)
				}
				if n := mem.open(); n != 0 {
					t.Fatalf("%d response bodies left open", n)
				}
			})
		})
	}
}
