package idempotencytest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/idempotency"
)

// ConcurrentDuplicates sends 100 identical requests with one key at once
// through the middleware over store: the handler must run exactly once,
// and every answer must be the original response (replayed, with a
// byte-identical body and status) or a 409 with Retry-After.
func ConcurrentDuplicates(t *testing.T, store idempotency.Store) {
	var runs atomic.Int64
	release := make(chan struct{})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		n := runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"payment":%d,"request":%q}`, n, body)
	})
	m, err := idempotency.NewHTTP(idempotency.HTTPOptions{Store: store, Unscoped: true})
	if err != nil {
		t.Fatal(err)
	}
	h := m.Middleware(handler)
	key := Key(t)
	send := func() *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/payments", strings.NewReader(`{"amount":5}`))
		r.Header.Set("Idempotency-Key", strings.ReplaceAll(key, " ", "_"))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	var wg sync.WaitGroup
	results := make([]*httptest.ResponseRecorder, 100)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = send()
		}()
	}
	time.Sleep(100 * time.Millisecond) // let them all arrive while the first runs
	close(release)
	wg.Wait()
	var original *httptest.ResponseRecorder
	for _, w := range results {
		if w.Code == http.StatusCreated && w.Header().Get("Idempotent-Replayed") == "" {
			if original != nil {
				t.Fatal("two requests were executed")
			}
			original = w
		}
	}
	if runs.Load() != 1 || original == nil {
		t.Fatalf("the handler ran %d times for 100 identical requests, want 1", runs.Load())
	}
	var conflicts, replays int
	for _, w := range results {
		switch {
		case w == original:
		case w.Code == http.StatusConflict && w.Header().Get("Retry-After") != "":
			conflicts++
		case w.Code == http.StatusCreated && w.Header().Get("Idempotent-Replayed") == "true" && w.Body.String() == original.Body.String():
			replays++
		default:
			t.Fatalf("unexpected answer %d %q", w.Code, w.Body)
		}
	}
	t.Logf("100 identical concurrent requests: 1 execution, %d conflicts (409), %d byte-identical replays", conflicts, replays)
	if w := send(); w.Code != http.StatusCreated || w.Body.String() != original.Body.String() || w.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("a repeat after completion: %d %q, want the replay", w.Code, w.Body)
	}
}
