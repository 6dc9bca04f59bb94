package idempotency

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// newMW is NewHTTP for tests; without a Scope the keys are
// explicitly Unscoped (the tests send one caller's requests).
func newMW(t testing.TB, o HTTPOptions) *HTTP {
	t.Helper()
	if o.Scope == nil {
		o.Unscoped = true
	}
	m, err := NewHTTP(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func do(h http.Handler, method, key, body string, hdr ...string) *httptest.ResponseRecorder {
	return doPath(h, method, "/payments", key, body, hdr...)
}

// doPath sends one request with an Idempotency-Key (unless key is "") and
// extra header pairs.
func doPath(h http.Handler, method, path, key, body string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// A payment handler that counts its runs.
func payments(runs *atomic.Int64, status int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := runs.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Location", fmt.Sprintf("/payments/%d", n))
		w.Header().Set("X-Not-Stored", "1")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"payment":%d,"request":%q}`, n, body)
	})
}

func TestReplayAndMismatch(t *testing.T) {
	var runs atomic.Int64
	h := newMW(t, HTTPOptions{}).Middleware(payments(&runs, http.StatusCreated))
	first := do(h, "POST", "k1", `{"amount":100}`)
	again := do(h, "POST", "k1", `{"amount":100}`)
	if runs.Load() != 1 {
		t.Fatalf("handler ran %d times for a repeated key, want 1", runs.Load())
	}
	if first.Code != 201 || again.Code != 201 || again.Body.String() != first.Body.String() {
		t.Fatalf("replay %d %q, want %d %q", again.Code, again.Body, first.Code, first.Body)
	}
	if again.Header().Get("Idempotent-Replayed") != "true" || first.Header().Get("Idempotent-Replayed") != "" {
		t.Fatal("Idempotent-Replayed must be on the replay only")
	}
	if again.Header().Get("Location") != "/payments/1" || again.Header().Get("Content-Type") != "application/json" || again.Header().Get("X-Not-Stored") != "" {
		t.Fatalf("replayed headers %v: want the stored ones only", again.Header())
	}
	if w := do(h, "POST", "k1", `{"amount":999}`); w.Code != http.StatusUnprocessableEntity || runs.Load() != 1 {
		t.Fatalf("same key, other body: %d (runs %d), want 422 without running", w.Code, runs.Load())
	}
	if w := do(h, "POST", "k2", `{"amount":100}`); w.Code != 201 || runs.Load() != 2 {
		t.Fatalf("new key: %d, runs %d", w.Code, runs.Load())
	}
	if w := do(h, "GET", "k1", ""); w.Code != 201 || runs.Load() != 3 {
		t.Fatalf("GET is not keyed: %d, runs %d", w.Code, runs.Load())
	}
}

func TestBadKeys(t *testing.T) {
	var runs atomic.Int64
	h := newMW(t, HTTPOptions{Required: true}).Middleware(payments(&runs, 200))
	for name, w := range map[string]*httptest.ResponseRecorder{
		"missing":  do(h, "POST", "", "x"),
		"empty":    do(h, "POST", "", "x", "Idempotency-Key", ""),
		"too long": do(h, "POST", strings.Repeat("a", 256), "x"),
		"space":    do(h, "POST", "a b", "x"),
		"two":      do(h, "POST", "", "x", "Idempotency-Key", "a", "Idempotency-Key", "b"),
	} {
		if w.Code != 400 || !strings.Contains(strings.ToLower(w.Body.String()), "idempotency-key") {
			t.Errorf("%s key: %d %q, want 400 saying what is wrong with the Idempotency-Key", name, w.Code, w.Body)
		}
	}
	if w := do(h, "POST", `"quoted-uuid"`, "x"); w.Code != 200 {
		t.Fatalf("a structured-field string key: %d", w.Code)
	}
	if runs.Load() != 1 {
		t.Fatalf("runs %d, want 1", runs.Load())
	}
	if w := do(h, "POST", strings.Repeat("a", 255), "x"); w.Code != 200 {
		t.Fatalf("a 255-character key: %d, want accepted", w.Code)
	}
}

func TestWhatIsStored(t *testing.T) {
	for _, c := range []struct {
		name      string
		status    int
		o         HTTPOptions
		wantRuns  int64
		wantCodes [2]int
	}{
		{"5xx is not stored: a retry runs again", 503, HTTPOptions{}, 2, [2]int{503, 503}},
		{"4xx is stored", 400, HTTPOptions{}, 1, [2]int{400, 400}},
		{"4xx with NoStore4xx runs again", 400, HTTPOptions{NoStore4xx: true}, 2, [2]int{400, 400}},
		{"an oversized response is not stored", 200, HTTPOptions{MaxResponseBytes: 10}, 2, [2]int{200, 200}},
		// Answers about the attempt, not results (issue 16 item 9).
		{"429 is not stored", 429, HTTPOptions{}, 2, [2]int{429, 429}},
		{"408 is not stored", 408, HTTPOptions{}, 2, [2]int{408, 408}},
		{"409 is not stored", 409, HTTPOptions{}, 2, [2]int{409, 409}},
		{"425 is not stored", 425, HTTPOptions{}, 2, [2]int{425, 425}},
		{"404 is stored", 404, HTTPOptions{}, 1, [2]int{404, 404}},
		{"302 is stored", 302, HTTPOptions{}, 1, [2]int{302, 302}},
		{"StoreStatus decides below 500", 400, HTTPOptions{StoreStatus: func(code int) bool { return code < 300 }}, 2, [2]int{400, 400}},
		{"StoreStatus may store 429", 429, HTTPOptions{StoreStatus: func(int) bool { return true }}, 1, [2]int{429, 429}},
		{"StoreStatus cannot store 5xx", 500, HTTPOptions{StoreStatus: func(int) bool { return true }}, 2, [2]int{500, 500}},
		{"NoStore4xx overrides StoreStatus", 404, HTTPOptions{NoStore4xx: true, StoreStatus: func(int) bool { return true }}, 2, [2]int{404, 404}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var runs atomic.Int64
			h := newMW(t, c.o).Middleware(payments(&runs, c.status))
			a, b := do(h, "POST", "k", "x"), do(h, "POST", "k", "x")
			if runs.Load() != c.wantRuns || a.Code != c.wantCodes[0] || b.Code != c.wantCodes[1] {
				t.Fatalf("runs %d codes %d %d; want %d runs, codes %v", runs.Load(), a.Code, b.Code, c.wantRuns, c.wantCodes)
			}
		})
	}
}

func TestScopeSeparatesCallers(t *testing.T) {
	var runs atomic.Int64
	h := newMW(t, HTTPOptions{Scope: func(r *http.Request) string { return r.Header.Get("X-User") }}).Middleware(payments(&runs, 201))
	a := do(h, "POST", "same", "x", "X-User", "alice")
	b := do(h, "POST", "same", "x", "X-User", "bob")
	if runs.Load() != 2 || a.Body.String() == b.Body.String() {
		t.Fatalf("two users with one key: %d runs, bodies %q %q; want each their own execution", runs.Load(), a.Body, b.Body)
	}
}

func TestBodyLimitAndPanic(t *testing.T) {
	var runs atomic.Int64
	h := newMW(t, HTTPOptions{MaxBodyBytes: 8}).Middleware(payments(&runs, 201))
	if w := do(h, "POST", "k", "123456789"); w.Code != http.StatusRequestEntityTooLarge || runs.Load() != 0 {
		t.Fatalf("9-byte body with an 8-byte limit: %d, runs %d", w.Code, runs.Load())
	}
	panics := true
	ph := newMW(t, HTTPOptions{}).Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if panics {
			panic("boom")
		}
		w.WriteHeader(201)
	}))
	func() {
		defer func() { recover() }()
		do(ph, "POST", "p", "x")
	}()
	panics = false
	if w := do(ph, "POST", "p", "x"); w.Code != 201 || runs.Load() != 2 {
		t.Fatalf("retry after a panic: %d, runs %d; want the key released and the handler run again", w.Code, runs.Load())
	}
}

func TestResponseCodec(t *testing.T) {
	r := Response{Status: 201, Header: http.Header{"Content-Type": {"a/b"}, "Set-Cookie": {"x=1", "y=2"}}, Body: []byte{0, 1, 2}}
	got, err := decodeResponse(EncodeResponse(r))
	if err != nil || got.Status != 201 || got.Header.Get("Content-Type") != "a/b" || len(got.Header["Set-Cookie"]) != 2 || string(got.Body) != string(r.Body) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, {responseV1}, {responseV1, 0xc8, 1, 5}} {
		if _, err := decodeResponse(bad); err == nil {
			t.Errorf("decodeResponse(%v) accepted garbage", bad)
		}
	}
}

func TestGuard(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g, err := NewGuard(GuardOptions{Lease: 30 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var runs atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			res, err := g.Do(ctx, "job-1", func(ctx context.Context) ([]byte, error) {
				runs.Add(1)
				time.Sleep(200 * time.Millisecond) // many leases long: the heartbeat keeps it
				return []byte("sent"), nil
			})
			if err != nil || string(res) != "sent" {
				t.Errorf("first Do: %q %v", res, err)
			}
		}()
		time.Sleep(100 * time.Millisecond)
		_, err = g.Do(ctx, "job-1", func(ctx context.Context) ([]byte, error) { runs.Add(1); return nil, nil })
		var ip *InProgressError
		if !errors.As(err, &ip) || !errors.Is(err, ErrInProgress) {
			t.Fatalf("duplicate while running (past several leases): %v, want an *InProgressError", err)
		}
		<-done
		res, err := g.Do(ctx, "job-1", func(ctx context.Context) ([]byte, error) { runs.Add(1); return nil, nil })
		if err != nil || string(res) != "sent" || runs.Load() != 1 {
			t.Fatalf("duplicate after completion: %q %v runs %d; want the stored result, no run", res, err, runs.Load())
		}
		// A failure stores nothing: the retry runs.
		boom := errors.New("boom")
		if _, err := g.Do(ctx, "job-2", func(ctx context.Context) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if res, err := g.Do(ctx, "job-2", func(ctx context.Context) ([]byte, error) { return []byte("ok"), nil }); err != nil || string(res) != "ok" {
			t.Fatalf("retry after a failure: %q %v", res, err)
		}
		// Wait mode: a duplicate waits for the running one's result.
		w, _ := NewGuard(GuardOptions{Wait: true, Lease: time.Second})
		start := make(chan struct{})
		go w.Do(ctx, "job-3", func(ctx context.Context) ([]byte, error) {
			close(start)
			time.Sleep(time.Second)
			return []byte("r3"), nil
		})
		<-start
		if res, err := w.Do(ctx, "job-3", func(ctx context.Context) ([]byte, error) { return nil, errors.New("ran twice") }); err != nil || string(res) != "r3" {
			t.Fatalf("waiting duplicate: %q %v", res, err)
		}
		if _, err := g.Do(ctx, "", nil); !errors.Is(err, ErrInvalid) {
			t.Fatalf("empty key: %v", err)
		}
	})
}

func TestOptions(t *testing.T) {
	for _, o := range []HTTPOptions{{TTL: -1}, {Lease: time.Millisecond}, {Lease: 2 * time.Hour, TTL: time.Hour}, {MaxBodyBytes: -1}, {MaxResponseBytes: -1}} {
		if _, err := NewHTTP(o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "HTTPOptions.") {
			t.Errorf("NewHTTP(%+v) = %v", o, err)
		}
	}
	// Keys must be scoped, or explicitly not (issue 16 item 10).
	for _, c := range []struct {
		o    HTTPOptions
		want string
	}{
		{HTTPOptions{}, "HTTPOptions.Scope is required"},
		{HTTPOptions{Scope: func(*http.Request) string { return "" }, Unscoped: true}, "HTTPOptions.Unscoped are both set"},
	} {
		if _, err := NewHTTP(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewHTTP(%+v) = %v; want ErrInvalid saying %q", c.o, err, c.want)
		}
	}
	for _, o := range []HTTPOptions{{Unscoped: true}, {Scope: func(*http.Request) string { return "u" }}} {
		if _, err := NewHTTP(o); err != nil {
			t.Errorf("NewHTTP(%+v): %v", o, err)
		}
	}
	if _, err := NewGuard(GuardOptions{PollInterval: -1}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "GuardOptions.PollInterval") {
		t.Errorf("NewGuard: %v", err)
	}
}

// The Idempotency-Key is a structured-field String (draft-07): quoted,
// with \" and \\ escapes, spaces allowed; the bare form real clients send
// is accepted too and is the same key (issue 16 item 11).
func TestKeyForms(t *testing.T) {
	for _, c := range []struct{ header, key string }{
		{`"a b"`, `a b`},
		{`"a\"b"`, `a"b`},
		{`"a\\b"`, `a\b`},
		{`"8e03978e-40d5"`, `8e03978e-40d5`},
		{`8e03978e-40d5`, `8e03978e-40d5`},
		{` "padded" `, `padded`},
		{`"` + strings.Repeat("a", 255) + `"`, strings.Repeat("a", 255)},
		{`"` + strings.Repeat(`\"`, 255) + `"`, strings.Repeat(`"`, 255)},
	} {
		if got, err := parseKey(c.header); err != nil || got != c.key {
			t.Errorf("parseKey(%s) = %q, %v; want %q", c.header, got, err, c.key)
		}
	}
	for _, bad := range []string{`""`, `"abc`, `"a"b"`, `"a\xb"`, `"a\"`, `"é"`, "\"a\x01b\"", `a b`, `a"b`, `a\b`, `"` + strings.Repeat("a", 256) + `"`, `"a";p=1`} {
		if got, err := parseKey(bad); err == nil || !strings.Contains(err.Error(), "Idempotency-Key") {
			t.Errorf("parseKey(%s) = %q, %v; want an error about the Idempotency-Key", bad, got, err)
		}
	}
	var runs atomic.Int64
	h := newMW(t, HTTPOptions{Required: true}).Middleware(payments(&runs, 201))
	if w := do(h, "POST", `"a b"`, "x"); w.Code != 201 || runs.Load() != 1 {
		t.Fatalf(`key "a b": %d %q, want it accepted`, w.Code, w.Body)
	}
	if w := do(h, "POST", `"a\"b"`, "x"); w.Code != 201 || runs.Load() != 2 {
		t.Fatalf(`key "a\"b": %d %q, want it accepted`, w.Code, w.Body)
	}
	// The quoted and the bare form of one key are one key: replayed.
	do(h, "POST", `"uuid-1"`, "x")
	if w := do(h, "POST", `uuid-1`, "x"); w.Header().Get("Idempotent-Replayed") != "true" || runs.Load() != 3 {
		t.Fatalf("bare form after the quoted one: %d, replayed %q, runs %d; want the replay", w.Code, w.Header().Get("Idempotent-Replayed"), runs.Load())
	}
}

// Every error is application/problem+json (RFC 9457) with a stable type
// URI; status codes, Retry-After and Idempotent-Replayed are unchanged.
func TestProblemDetails(t *testing.T) {
	var runs atomic.Int64
	block, started := make(chan struct{}), make(chan struct{}, 1)
	m := newMW(t, HTTPOptions{Required: true, MaxBodyBytes: 8})
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		runs.Add(1)
		if r.URL.Query().Get("block") != "" {
			started <- struct{}{}
			<-block
		}
		w.WriteHeader(201)
	}))
	send := func(path, key, body string, hdr ...string) *httptest.ResponseRecorder {
		return doPath(h, "POST", path, key, body, hdr...)
	}
	done := make(chan struct{})
	go func() { defer close(done); send("/p?block=1", "busy", "x") }()
	<-started
	inFlight := send("/p?block=1", "busy", "x")
	close(block)
	<-done
	send("/p", "used", "a")
	down := newMW(t, HTTPOptions{Store: failing{}}).Middleware(http.NotFoundHandler())
	unavailable := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/p", strings.NewReader("x"))
	r.Header.Set("Idempotency-Key", "k")
	down.ServeHTTP(unavailable, r)
	for _, c := range []struct {
		name       string
		w          *httptest.ResponseRecorder
		status     int
		typ        string
		retryAfter bool
	}{
		{"missing", send("/p", "", "x"), 400, ProblemKeyMissing, false},
		{"invalid", send("/p", `"open`, "x"), 400, ProblemKeyInvalid, false},
		{"two keys", send("/p", "", "x", "Idempotency-Key", "a", "Idempotency-Key", "b"), 400, ProblemKeyInvalid, false},
		{"reused", send("/p", "used", "b"), 422, ProblemKeyReused, false},
		{"in flight", inFlight, 409, ProblemRequestInFlight, true},
		{"too large", send("/p", "big", "123456789"), 413, ProblemBodyTooLarge, false},
		{"store down", unavailable, 503, ProblemUnavailable, true},
	} {
		var p Problem
		err := json.Unmarshal(c.w.Body.Bytes(), &p)
		if c.w.Code != c.status || c.w.Header().Get("Content-Type") != "application/problem+json" || err != nil ||
			p.Type != c.typ || p.Status != c.status || p.Title == "" || p.Detail == "" {
			t.Errorf("%s: %d %q %q (%v); want %d application/problem+json of type %s with title and detail", c.name, c.w.Code, c.w.Header().Get("Content-Type"), c.w.Body, err, c.status, c.typ)
		}
		if got := c.w.Header().Get("Retry-After") != ""; got != c.retryAfter {
			t.Errorf("%s: Retry-After %q, want present=%v", c.name, c.w.Header().Get("Retry-After"), c.retryAfter)
		}
		if c.w.Header().Get("Idempotent-Replayed") != "" {
			t.Errorf("%s: an error carries Idempotent-Replayed", c.name)
		}
	}
	if runs.Load() != 2 {
		t.Fatalf("runs %d, want 2 (busy and used)", runs.Load())
	}
}

// failing is a Store that is down.
type failing struct{}

func (failing) Begin(context.Context, string, string, time.Duration, time.Duration) (Outcome, error) {
	return Outcome{}, errors.New("connection refused")
}
func (failing) Complete(context.Context, string, string, []byte, time.Duration) error {
	return errors.New("connection refused")
}
func (failing) Release(context.Context, string, string) error {
	return errors.New("connection refused")
}
func (failing) Extend(context.Context, string, string, time.Duration) error {
	return errors.New("connection refused")
}

// Many goroutines run Guard.Do on a few keys whose fn sometimes panics
// and sometimes fails: every key completes exactly once, every caller
// that gets a result gets that run's result, and no key stays held by a
// panicked run.
func TestGuardHammer(t *testing.T) {
	g, err := NewGuard(GuardOptions{Lease: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const keys, workers, rounds = 8, 32, 40
	var successes [keys]atomic.Int64
	var attempts atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				k := (w + i) % keys
				key := "hammer-" + strconv.Itoa(k)
				for {
					res, err := func() (res []byte, err error) {
						defer func() {
							if recover() != nil {
								err = errors.New("panicked")
							}
						}()
						return g.Do(context.Background(), key, func(ctx context.Context) ([]byte, error) {
							switch attempts.Add(1) % 3 {
							case 0:
								panic("boom")
							case 1:
								return nil, errors.New("transient")
							}
							successes[k].Add(1)
							return []byte(key), nil
						})
					}()
					if err == nil {
						if string(res) != key {
							errs <- fmt.Errorf("Do(%s) = %q", key, res)
							return
						}
						break
					}
					if errors.Is(err, ErrInProgress) {
						if time.Since(start) > 30*time.Second {
							errs <- fmt.Errorf("%s still in progress after 30s: a panicked run holds it", key)
							return
						}
						runtime.Gosched()
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for k := range successes {
		if n := successes[k].Load(); n != 1 {
			t.Errorf("key %d completed %d times, want once", k, n)
		}
	}
}
