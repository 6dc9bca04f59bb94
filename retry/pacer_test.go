package retry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func TestParseRateLimit(t *testing.T) {
	for in, want := range map[string][]rateLimitItem{
		`"default";r=50;t=30`:            {{50, 30}},
		`"a";r=0;t=5, "b";r=7;t=60`:      {{0, 5}, {7, 60}},
		`"odd, name;x";r=1;t=2`:          {{1, 2}},
		`default;t=3;r=0`:                {{0, 3}},
		`"x";r=3`:                        {{3, 0}},
		`"x";r=0`:                        {{-1, 0}},
		`"x";r=-1;t=abc`:                 {{-1, 0}},
		``:                               nil,
		`"x";r=99999999999999999999;t=1`: {{-1, 1}},
		`"esc\"aped";r=4;t=9, ;r=1, "y";r=2;t=1 `: {{4, 9}, {2, 1}},
	} {
		got := parseRateLimit(in)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("parseRateLimit(%q) = %v, want %v", in, got, want)
		}
	}
}

// limitedServer answers with the RateLimit value and status next holds.
type limitedServer struct {
	*httptest.Server
	hits       atomic.Int32
	mu         sync.Mutex
	header     string
	status     int
	retryAfter string
}

func newLimitedServer(t *testing.T) *limitedServer {
	s := &limitedServer{status: 200}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.header != "" {
			w.Header().Set("RateLimit", s.header)
		}
		if s.retryAfter != "" {
			w.Header().Set("Retry-After", s.retryAfter)
		}
		w.WriteHeader(s.status)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *limitedServer) answer(status int, header, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.header, s.retryAfter = status, header, retryAfter
}

func get(t *testing.T, c *http.Client, url string) error {
	t.Helper()
	resp, err := c.Get(url)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// TestPacer: against a real server, the Pacer holds back what the
// server's RateLimit and Retry-After fields say would be refused.
func TestPacer(t *testing.T) {
	srv := newLimitedServer(t)
	clk := testclock.New()
	p := &Pacer{Base: srv.Client().Transport, Clock: clk}
	c := &http.Client{Transport: p}

	// r=0: nothing before t.
	srv.answer(200, `"default";r=0;t=2`, "")
	if err := get(t, c, srv.URL); err != nil {
		t.Fatal(err)
	}
	err := get(t, c, srv.URL)
	var rl *RateLimitedError
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) || rl.RetryAfter != 2*time.Second || srv.hits.Load() != 1 {
		t.Fatalf("with r=0;t=2: %v (server hit %d times), want a RateLimitedError of 2s and no request", err, srv.hits.Load())
	}
	clk.Add(2 * time.Second)
	srv.answer(200, `"default";r=2;t=10, "daily";r=100;t=3600`, "")
	if err := get(t, c, srv.URL); err != nil {
		t.Fatalf("after t: %v", err)
	}
	// r=2 (the smallest r): two more, then nothing before 10s.
	srv.answer(200, "", "") // later answers say nothing new
	for i := range 2 {
		if err := get(t, c, srv.URL); err != nil {
			t.Fatalf("request %d of r=2: %v", i+1, err)
		}
	}
	if err := get(t, c, srv.URL); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("a third request with r=2: %v", err)
	}
	clk.Add(10 * time.Second)
	// A 429 with Retry-After.
	srv.answer(429, "", "5")
	if err := get(t, c, srv.URL); err != nil {
		t.Fatal(err)
	}
	srv.answer(200, "", "")
	if err := get(t, c, srv.URL); !errors.As(err, &rl) || rl.RetryAfter != 5*time.Second {
		t.Fatalf("after a 429 with Retry-After: 5: %v", err)
	}
	// Another host is not held back.
	other := newLimitedServer(t)
	if err := get(t, &http.Client{Transport: &Pacer{Base: other.Client().Transport, Clock: clk}}, other.URL); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Sent != 5 || s.Refused != 3 || s.Waited != 0 || srv.hits.Load() != 5 {
		t.Fatalf("Stats %+v, server hit %d times", s, srv.hits.Load())
	}
	if _, err := (&Pacer{MaxWait: -1}).RoundTrip(httptest.NewRequest("GET", srv.URL, nil)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("MaxWait -1: %v", err)
	}
}

// roundTripFunc is a base transport for the tests in synctest bubbles.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func limitedResponse(header string) *http.Response {
	h := http.Header{}
	if header != "" {
		h.Set("RateLimit", header)
	}
	return &http.Response{StatusCode: 200, Header: h, Body: http.NoBody}
}

// TestPacerWaits: within MaxWait and the ctx deadline, a request waits for
// the quota instead of being refused.
func TestPacerWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var sentAt []time.Time
		p := &Pacer{MaxWait: 5 * time.Second, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			sentAt = append(sentAt, time.Now())
			return limitedResponse(`"default";r=0;t=3`), nil
		})}
		req, _ := http.NewRequest("GET", "http://api.example/", nil)
		start := time.Now()
		for range 2 {
			resp, err := p.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if len(sentAt) != 2 || sentAt[1].Sub(start) != 3*time.Second {
			t.Fatalf("sent at %v, want the second 3s after the first", sentAt)
		}
		// A deadline nearer than the wait: refused at once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := p.RoundTrip(req.WithContext(ctx)); !errors.Is(err, ErrRateLimited) {
			t.Fatalf("a deadline 1s away, quota in 3s: %v", err)
		}
		if s := p.Stats(); s.Sent != 2 || s.Waited != 1 || s.Refused != 1 {
			t.Fatalf("Stats %+v", s)
		}
	})
}

// TestPacerHammer: 64 goroutines through one Pacer over a server saying
// r=0 now and then; every request is either sent or refused.
func TestPacerHammer(t *testing.T) {
	clk := testclock.New()
	var n atomic.Int64
	p := &Pacer{Clock: clk, Base: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if n.Add(1)%10 == 0 {
			clk.Add(time.Second)
			return limitedResponse(`"default";r=0;t=1`), nil
		}
		return limitedResponse(`"default";r=5;t=1`), nil
	})}
	var wg sync.WaitGroup
	var sent, refused atomic.Int64
	for g := range 64 {
		wg.Go(func() {
			for range 50 {
				req, _ := http.NewRequest("GET", fmt.Sprintf("http://h%d.example/", g%4), nil)
				resp, err := p.RoundTrip(req)
				switch {
				case err == nil:
					resp.Body.Close()
					sent.Add(1)
				case errors.Is(err, ErrRateLimited):
					refused.Add(1)
				default:
					t.Errorf("unexpected %v", err)
				}
				clk.Add(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	if s := p.Stats(); sent.Load()+refused.Load() != 64*50 || s.Sent != uint64(sent.Load()) || s.Refused != uint64(refused.Load()) || refused.Load() == 0 {
		t.Fatalf("sent %d refused %d; Stats %+v", sent.Load(), refused.Load(), s)
	}
}
