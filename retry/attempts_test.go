package retry

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

func TestRetriedCtxIsNotRetried(t *testing.T) {
	r := newR(t, Options{Backoff: Constant{}})
	calls := 0
	err := r.Do(WithRetried(context.Background()), func(context.Context) error { calls++; return errBoom })
	if err != errBoom || calls != 1 {
		t.Fatalf("under WithRetried: %v after %d calls, want the error as is after 1", err, calls)
	}
	if s := r.Stats(); s.NotRetried != 1 || s.Retries != 0 || s.Exhausted != 0 {
		t.Fatalf("Stats %+v", s)
	}
	if IsRetried(context.Background()) || !IsRetried(WithRetried(context.Background())) {
		t.Fatal("IsRetried")
	}
}

// TestAttemptsAcrossServices: client -> middle -> downstream, each hop
// retrying 3 times. Without the attempt header the downstream would get
// 3x3 = 9 requests; with it, the middle retries only the client's first
// attempt: 3 + 1 + 1 = 5.
func TestAttemptsAcrossServices(t *testing.T) {
	var downHits, middleHits atomic.Int32
	var mu sync.Mutex
	var seen []string
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		downHits.Add(1)
		mu.Lock()
		seen = append(seen, r.Header.Get(AttemptHeader))
		mu.Unlock()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	r := newR(t, Options{MaxAttempts: 3, Backoff: Constant{}})
	toDown := &http.Client{Transport: &Transport{Retrier: r, Base: down.Client().Transport}}
	middle := httptest.NewServer(Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		middleHits.Add(1)
		out, _ := http.NewRequestWithContext(req.Context(), "GET", down.URL, nil)
		resp, err := toDown.Do(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
	})))
	defer middle.Close()
	client := &http.Client{Transport: &Transport{Retrier: newR(t, Options{MaxAttempts: 3, Backoff: Constant{}}), Base: middle.Client().Transport}}
	resp, err := client.Get(middle.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || middleHits.Load() != 3 || downHits.Load() != 5 {
		t.Fatalf("status %d; middle hit %d times (want 3), downstream %d (want 5, not 9)", resp.StatusCode, middleHits.Load(), downHits.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if seen[0] != "" || seen[1] != "2" || seen[2] != "3" {
		t.Fatalf("attempt headers downstream %q, want \"\", 2, 3 for the middle's own retries", seen)
	}
	if s := r.Stats(); s.NotRetried != 2 {
		t.Fatalf("middle's retrier: %+v, want 2 calls not retried", s)
	}
}
