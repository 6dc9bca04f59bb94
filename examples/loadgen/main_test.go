package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fake is a tiny in-memory stand-in for examples/service's HTTP contract:
// this tests the load generator, not the service.
type fake struct {
	userDelay     time.Duration // GET /users/{id} sleeps this long
	limitPosts    bool          // GET /posts always answers 429
	replayNewBody bool          // a replayed payment gets a fresh body (the bug the replay check must catch)
	staleReads    bool          // GET /users/{id} ignores writes (the bug the read-your-writes check must catch)
	// tokens makes the fake serve reads as of the request's read-your-writes
	// token (the newest of the X-DB-Token header and the dbrouter_token
	// cookie, as dbrouter's middleware does): a PUT answers, after a random
	// delay (so concurrent writes answer out of order), with a token that
	// orders it among all writes.
	tokens bool
	seq    int64              // the last write's token LSN
	hist   map[int][][2]int64 // user -> (token LSN, version) of its writes

	mu       sync.Mutex
	versions map[int]int64
	names    map[int]string
	pays     map[string]*fakePay
	chaos    []string
	jobs     int
}

type fakePay struct {
	done bool
	body []byte
}

func (f *fake) chaosCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.chaos)
}

func startFake(t testing.TB, f *fake) *httptest.Server {
	t.Helper()
	f.versions, f.names, f.pays = map[int]int64{}, map[int]string{}, map[string]*fakePay{}
	writeJSON := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	userID := func(w http.ResponseWriter, r *http.Request) (int, bool) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err != nil || id < 1 || id > 1000 {
			http.Error(w, "no such user", http.StatusNotFound)
			return 0, false
		}
		return id, true
	}
	f.hist = map[int][][2]int64{}
	reqToken := func(r *http.Request) int64 {
		var best int64
		take := func(s string) {
			l, _, _ := strings.Cut(s, "@")
			if _, lo, ok := strings.Cut(l, "/"); ok {
				if n, err := strconv.ParseInt(lo, 16, 64); err == nil && n > best {
					best = n
				}
			}
		}
		take(r.Header.Get("X-DB-Token"))
		if c, err := r.Cookie("dbrouter_token"); err == nil {
			take(c.Value)
		}
		return best
	}
	user := func(id int, tok int64) map[string]any {
		v, name := f.versions[id], f.names[id]
		if f.tokens {
			v, name = 1, "User "+strconv.Itoa(id)
			for _, h := range f.hist[id] {
				if h[0] <= tok {
					v, name = h[1], "Loadgen"
				}
			}
		}
		if v == 0 || f.staleReads {
			v, name = 1, "User "+strconv.Itoa(id)
		}
		return map[string]any{"id": id, "name": name, "email": fmt.Sprintf("user%d@example.com", id), "version": v}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health/live", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(f.userDelay):
		case <-r.Context().Done(): // the client gave up
			return
		}
		if id, ok := userID(w, r); ok {
			f.mu.Lock()
			u := user(id, reqToken(r))
			f.mu.Unlock()
			writeJSON(w, http.StatusOK, u)
		}
	})
	mux.HandleFunc("PUT /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := userID(w, r)
		if !ok {
			return
		}
		var in struct{ Name, Email string }
		if json.NewDecoder(r.Body).Decode(&in) != nil || in.Name == "" || in.Email == "" {
			http.Error(w, "bad user", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.versions[id] = max(f.versions[id], 1) + 1
		f.names[id] = in.Name
		v := f.versions[id]
		f.seq++
		seq := f.seq
		f.hist[id] = append(f.hist[id], [2]int64{seq, v})
		f.mu.Unlock()
		if f.tokens {
			time.Sleep(time.Duration(rand.IntN(15)) * time.Millisecond) // the service's latency: answers overtake each other
			tok := fmt.Sprintf("0/%X@0", seq)
			w.Header().Set("X-DB-Token", tok)
			http.SetCookie(w, &http.Cookie{Name: "dbrouter_token", Value: tok, Path: "/"})
		} else {
			http.SetCookie(w, &http.Cookie{Name: "scalekit-token", Value: strconv.FormatInt(v, 10), Path: "/"})
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": in.Name, "email": in.Email, "version": v})
	})
	mux.HandleFunc("GET /posts", func(w http.ResponseWriter, r *http.Request) {
		if f.limitPosts {
			w.Header().Set("RateLimit", `"client";r=0;t=1`)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		var posts []map[string]any
		for i := range min(limit, 3) {
			posts = append(posts, map[string]any{"id": i + 1, "title": "Post", "author": map[string]any{"id": 7, "name": "User 7"}})
		}
		writeJSON(w, http.StatusOK, posts)
	})
	mux.HandleFunc("POST /payments", func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		if key == "" {
			http.Error(w, "Idempotency-Key required", http.StatusBadRequest)
			return
		}
		newBody := func() []byte { return fmt.Appendf(nil, `{"id":"pay_%d","status":"captured"}`+"\n", rand.Int64()) }
		f.mu.Lock()
		if p := f.pays[key]; p != nil {
			done, body := p.done, p.body
			f.mu.Unlock()
			if !done {
				http.Error(w, "still running", http.StatusConflict)
				return
			}
			if f.replayNewBody {
				body = newBody()
			}
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(http.StatusCreated)
			w.Write(body)
			return
		}
		p := &fakePay{}
		f.pays[key] = p
		f.mu.Unlock()
		time.Sleep(2 * time.Millisecond) // the provider
		body := newBody()
		f.mu.Lock()
		p.done, p.body = true, body
		f.mu.Unlock()
		w.WriteHeader(http.StatusCreated)
		w.Write(body)
	})
	mux.HandleFunc("POST /emails", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.jobs++
		id := strconv.Itoa(f.jobs)
		f.mu.Unlock()
		writeJSON(w, http.StatusAccepted, map[string]string{"job_id": id, "status_url": "/jobs/" + id})
	})
	mux.HandleFunc("GET /jobs/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "state": "completed", "attempts": 1, "last_error": ""})
	})
	mux.HandleFunc("GET /admin/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"breaker": "closed", "cache_hit_ratio": 0.93, "cache": map[string]int{"hits": 930, "loads": 70},
			"replicas": []map[string]any{{"name": "r1", "lag_bytes": 120}}})
	})
	mux.HandleFunc("GET /slo", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"objectives": []map[string]any{
			{"name": "GET /users/{id} availability", "target": 0.999, "good": 997, "total": 1000, "budget_remaining": 0.97,
				"alerts": []map[string]any{{"name": "fast-burn", "firing": true}, {"name": "slow-burn", "firing": false}}},
			{"name": "GET /jobs/{id} latency", "target": 0.99, "good": 0, "total": 0, "budget_remaining": 1},
		}})
	})
	mux.HandleFunc("POST /admin/chaos", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.chaos = append(f.chaos, r.URL.RawQuery)
		f.mu.Unlock()
		fmt.Fprintln(w, "ok")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// testConfig is a short, quiet run at 200 req/s against url.
func testConfig(url string, mixSpec string) config {
	cfg := defaultConfig()
	cfg.URL = url
	cfg.Duration = time.Second
	cfg.Rate = 200
	cfg.Quiet = true
	cfg.Timeout = 2 * time.Second
	m, err := parseMix(mixSpec)
	if err != nil {
		panic(err)
	}
	cfg.Mix = m
	return cfg
}

func mustRun(t *testing.T, cfg config) (summary, string) {
	t.Helper()
	var out bytes.Buffer
	sum, err := run(t.Context(), cfg, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	return sum, out.String()
}

func TestRunHealthyService(t *testing.T) {
	t.Parallel()
	f := &fake{}
	srv := startFake(t, f)
	cfg := testConfig(srv.URL, "reads=30,writes=20,posts=10,payments=30,emails=10")
	cfg.Users = 20 // users are read after this client wrote them
	cfg.ReplayFraction = 0.3
	cfg.SetProviderFail, cfg.ProviderFail = true, 0.25
	cfg.ChaosStop, cfg.ChaosAt, cfg.ChaosUntil = "redis", 500*time.Millisecond, 750*time.Millisecond
	cfg.Quiet, cfg.ProgressEvery = false, 300*time.Millisecond
	sum, report := mustRun(t, cfg)
	t.Logf("report:\n%s", report)

	if sum.Sent+sum.Dropped != 200 || sum.Dropped != 0 || sum.Completed != sum.Sent || sum.Canceled != 0 {
		t.Errorf("sent %d, dropped %d, completed %d, canceled %d; want 200 sent and completed", sum.Sent, sum.Dropped, sum.Completed, sum.Canceled)
	}
	if sum.Unexpected != 0 || sum.OK != sum.Completed-sum.Expected {
		t.Errorf("ok %d, expected %d, unexpected %d; samples %q", sum.OK, sum.Expected, sum.Unexpected, sum.Samples)
	}
	if r := sum.Replays; r.Compared == 0 || r.Identical != r.Compared || r.BodyDiffers+r.StatusDiffers+r.NoHeader != 0 {
		t.Errorf("replays %+v: want some compared, all identical", r)
	}
	if sum.RYWChecked == 0 || sum.RYWStale != 0 {
		t.Errorf("read-your-writes: %d checked, %d stale; want some checked, none stale", sum.RYWChecked, sum.RYWStale)
	}
	if got, want := f.chaosCalls(), []string{"provider_fail=0.25", "stop=redis", "start=redis"}; !slices.Equal(got, want) {
		t.Errorf("chaos calls %q, want %q", got, want)
	}
	if len(sum.Phases) != 3 || sum.Phases[0].OK == 0 || sum.Phases[1].OK == 0 || sum.Phases[2].OK == 0 {
		t.Errorf("phases %+v: want requests in each", sum.Phases)
	}
	if code := exitCode(sum, nil); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	for _, want := range []string{"[  0.3s] sent", "cache_hit_ratio 0.93", "cache.hits 930", "replicas[0].lag_bytes 120",
		"GET /users/{id} availability 0.999 997/1000 97.0% fast-burn", "(1 objectives without traffic left out)",
		fmt.Sprintf("the first %[1]d jobs, looked up now: completed %[1]d", sum.Latency[kindEmails].Count), "RESULT: PASS, no unexpected errors"} {
		if !hasLine(report, want) {
			t.Errorf("the report lacks a line like %q", want)
		}
	}
}

// hasLine reports whether a line of report holds want's words in order,
// whatever the spacing between them.
func hasLine(report, want string) bool {
	w := strings.Join(strings.Fields(want), " ")
	for line := range strings.Lines(report) {
		if strings.Contains(strings.Join(strings.Fields(line), " "), w) {
			return true
		}
	}
	return false
}

// A slow endpoint does not slow the schedule (open loop), and its latency,
// counted from the intended start, is at least the handler's sleep.
func TestRunOpenLoopAgainstSlowEndpoint(t *testing.T) {
	t.Parallel()
	srv := startFake(t, &fake{userDelay: 100 * time.Millisecond})
	sum, _ := mustRun(t, testConfig(srv.URL, "reads=1"))
	if sum.Sent != 200 || sum.Dropped != 0 || sum.Completed != 200 {
		t.Errorf("sent %d, dropped %d, completed %d; want 200 (1s at 200/s, whatever the latency)", sum.Sent, sum.Dropped, sum.Completed)
	}
	if rate := float64(sum.Sent) / sum.Scheduled.Seconds(); rate < 190 || rate > 210 {
		t.Errorf("started %.1f req/s, want ~200", rate)
	}
	if l := sum.Latency[kindReads]; l.P50 < 100*time.Millisecond || l.Count != 200 {
		t.Errorf("reads latency %+v: want 200 samples, p50 >= 100ms", l)
	}
	if sum.Unexpected != 0 || exitCode(sum, nil) != 0 {
		t.Errorf("unexpected %d: %q", sum.Unexpected, sum.Samples)
	}
}

// Beyond -max-inflight, due requests are dropped and counted; the
// schedule does not wait.
func TestRunDropsBeyondMaxInflight(t *testing.T) {
	t.Parallel()
	srv := startFake(t, &fake{userDelay: 200 * time.Millisecond})
	cfg := testConfig(srv.URL, "reads=1")
	cfg.Duration, cfg.MaxInflight = 500*time.Millisecond, 5
	sum, report := mustRun(t, cfg)
	if sum.Sent+sum.Dropped != 100 || sum.Dropped < 50 || sum.Sent < 5 {
		t.Errorf("sent %d, dropped %d; want 100 due, most dropped", sum.Sent, sum.Dropped)
	}
	if !strings.Contains(report, "dropped (client overload)") || !strings.Contains(report, "WARNING") {
		t.Errorf("the report does not flag the drops:\n%s", report)
	}
}

// 429s are expected outcomes, not errors; a replay whose body differs
// from the original's is an unexpected error and fails the run.
func TestRunExpected429AndReplayMismatch(t *testing.T) {
	t.Parallel()
	srv := startFake(t, &fake{limitPosts: true, replayNewBody: true})
	cfg := testConfig(srv.URL, "posts=50,payments=50")
	cfg.Duration, cfg.ReplayFraction = 500*time.Millisecond, 0.5
	sum, report := mustRun(t, cfg)
	posts := sum.Latency[kindPosts].Count
	if posts == 0 || sum.Status[kindPosts][429] != posts || sum.RateLimited != posts {
		t.Errorf("posts %d, their 429s %d, rate limited %d; want all posts limited", posts, sum.Status[kindPosts][429], sum.RateLimited)
	}
	if sum.NoRetryAfter != 0 || sum.NoRateLimitHeader != 0 {
		t.Errorf("429 header checks: %d without Retry-After, %d without RateLimit", sum.NoRetryAfter, sum.NoRateLimitHeader)
	}
	if !slices.Contains(sum.Reasons, reasonCount{kindPosts, outcomeExpected, "429 rate limited", posts}) {
		t.Errorf("reasons %+v lack the posts' 429s as expected", sum.Reasons)
	}
	if sum.Replays.BodyDiffers == 0 || sum.Replays.Identical != 0 {
		t.Errorf("replays %+v: want every compared body to differ", sum.Replays)
	}
	if sum.Unexpected != sum.Replays.BodyDiffers {
		t.Errorf("unexpected %d, want the %d replay mismatches alone: %q", sum.Unexpected, sum.Replays.BodyDiffers, sum.Samples)
	}
	if code := exitCode(sum, nil); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	for _, want := range []string{"replay body differs from the original", "RESULT: FAIL"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
}

// A read older than the version this client's own write returned is a
// read-your-writes violation.
func TestRunCatchesStaleReads(t *testing.T) {
	t.Parallel()
	srv := startFake(t, &fake{staleReads: true})
	cfg := testConfig(srv.URL, "reads=50,writes=50")
	cfg.Duration, cfg.Users = 500*time.Millisecond, 3
	sum, _ := mustRun(t, cfg)
	if sum.RYWStale == 0 || sum.Unexpected != sum.RYWStale || exitCode(sum, nil) != 1 {
		t.Errorf("stale %d of %d checked, unexpected %d; want stale reads as the only errors", sum.RYWStale, sum.RYWChecked, sum.Unexpected)
	}
}

// Issue 16 item 24: the own-write check runs at any rate: every write is
// read back at once by the same client, so a service whose reads ignore
// writes is caught even when no random read lands on a user the client
// wrote (here: writes alone, over 1000 users, at a low rate).
// Not parallel: it should not load the CPU under the timing tests.
func TestRunReadBackCatchesStaleAtLowRate(t *testing.T) {
	srv := startFake(t, &fake{staleReads: true})
	cfg := testConfig(srv.URL, "writes=1")
	cfg.Duration, cfg.Rate, cfg.Users = 500*time.Millisecond, 20, 1000
	sum, report := mustRun(t, cfg)
	if sum.RYWReadBacks == 0 || sum.RYWStale != sum.RYWChecked || sum.Unexpected != sum.RYWStale || exitCode(sum, nil) != 1 {
		t.Errorf("stale %d of %d checked (%d read-backs), unexpected %d; want every write's read-back stale", sum.RYWStale, sum.RYWChecked, sum.RYWReadBacks, sum.Unexpected)
	}
	if !strings.Contains(report, "stale read-back (read-your-writes)") {
		t.Errorf("the report does not name the stale read-back:\n%s", report)
	}
}

// Issue 16 item 24: concurrent writes of one user answer out of order, so
// the cookie jar can end up holding an older token than the newest write
// returned; a client that reads its writes keeps the newest token and
// sends it (X-DB-Token). Against a service that serves reads as of the
// request's token, the load generator then sees no stale read.
// Not parallel: it should not load the CPU under the timing tests.
func TestRunCarriesNewestToken(t *testing.T) {
	srv := startFake(t, &fake{tokens: true})
	cfg := testConfig(srv.URL, "reads=50,writes=50")
	cfg.Duration, cfg.Rate, cfg.Users = time.Second, 400, 2
	sum, _ := mustRun(t, cfg)
	if sum.RYWChecked < 100 || sum.RYWStale != 0 || sum.Unexpected != 0 {
		t.Errorf("stale %d of %d checked, unexpected %d %q; want many checks and no stale read", sum.RYWStale, sum.RYWChecked, sum.Unexpected, sum.Samples)
	}
}

// An interrupted run stops scheduling at once, counts the requests it cut
// short apart from errors, starts a stopped chaos target again and still
// reports.
func TestRunInterrupted(t *testing.T) {
	t.Parallel()
	f := &fake{userDelay: time.Second}
	srv := startFake(t, f)
	cfg := testConfig(srv.URL, "reads=1")
	cfg.Duration = 3 * time.Second
	cfg.ChaosStop, cfg.ChaosAt, cfg.ChaosUntil = "replica", 100*time.Millisecond, 2*time.Second
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	began := time.Now()
	sum, err := run(ctx, cfg, &out)
	if err != nil || time.Since(began) > time.Second {
		t.Fatalf("run: %v after %v", err, time.Since(began))
	}
	if !sum.Interrupted || sum.Canceled == 0 || sum.Canceled != sum.Sent || sum.Unexpected != 0 || exitCode(sum, err) != 0 {
		t.Errorf("interrupted %v, sent %d, canceled %d, unexpected %d", sum.Interrupted, sum.Sent, sum.Canceled, sum.Unexpected)
	}
	if got, want := f.chaosCalls(), []string{"stop=replica", "start=replica"}; !slices.Equal(got, want) {
		t.Errorf("chaos calls %q, want %q", got, want)
	}
	if !strings.Contains(out.String(), "INTERRUPTED after 0.3s") {
		t.Errorf("the report does not say it was interrupted:\n%s", out.String())
	}
}

func TestLatencyCountsFromIntendedStart(t *testing.T) {
	t.Parallel()
	srv := startFake(t, &fake{})
	g, err := newGenerator(testConfig(srv.URL, "reads=1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer g.tr.CloseIdleConnections()
	g.start = time.Now()
	g.fire(t.Context(), time.Now().Add(-300*time.Millisecond)) // the scheduler ran 300ms late
	if l := g.all.snapshot().stats(); l.Count != 1 || l.Max < 300*time.Millisecond || l.Max > 2*time.Second {
		t.Errorf("latency %+v: want one sample of 300ms and a little", l)
	}
}

func TestRunRefusesToStart(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	for _, tc := range []struct{ url, want string }{
		{"http://192.0.2.1:8080", "-allow-remote"},
		{"http://example.com", "not a loopback host"},
		{"ftp://127.0.0.1", "base URL"},
		{closed, "cannot reach the service"},
	} {
		var out bytes.Buffer
		sum, err := run(t.Context(), testConfig(tc.url, "reads=1"), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want it to mention %q", tc.url, err, tc.want)
		}
		if sum.Sent != 0 || out.Len() != 0 || exitCode(sum, err) != 2 {
			t.Errorf("%s: sent %d, printed %q, exit %d; want nothing sent, exit 2", tc.url, sum.Sent, out.String(), exitCode(sum, err))
		}
	}
}

func TestParseMix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want mix
		err  string
	}{
		{in: "reads=80,writes=10,payments=10", want: mix{kindReads: 80, kindWrites: 10, kindPayments: 10}},
		{in: " reads = 70, posts=10,writes=5,payments=10,emails=5 ", want: mix{70, 5, 10, 10, 5}},
		{in: "emails=1,reads=0", want: mix{kindEmails: 1}},
		{in: "", err: "empty"},
		{in: "reads=80,deletes=10", err: `unknown kind "deletes"; known: reads, writes, posts, payments, emails`},
		{in: "replays=5", err: `unknown kind "replays"`},
		{in: "reads=-1,writes=2", err: "must be an integer in [0, 1000000]"},
		{in: "reads=1.5", err: "must be an integer"},
		{in: "reads", err: "not name=weight"},
		{in: "reads=1,", err: "not name=weight"},
		{in: "reads=1,reads=2", err: "given twice"},
		{in: "reads=0,writes=0", err: "at least one weight must be positive"},
	} {
		got, err := parseMix(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("parseMix(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseMix(%q) error %v, want it to contain %q", tc.in, err, tc.err)
		}
	}
	m := mix{kindReads: 2, kindPayments: 1}
	var picks []kind
	for n := range m.total() {
		picks = append(picks, m.pick(n))
	}
	if want := []kind{kindReads, kindReads, kindPayments}; !slices.Equal(picks, want) || m.String() != "reads=2,payments=1" {
		t.Errorf("picks %v (want %v), String %q", picks, want, m.String())
	}
}

func TestParseFlags(t *testing.T) {
	for _, tc := range []struct {
		args  []string
		check func(config) bool
		err   string
	}{
		{args: nil, check: func(c config) bool {
			return c.URL == "http://127.0.0.1:8080" && c.Rate == 500 && c.Duration == 30*time.Second && c.MaxInflight == 2000 &&
				c.Timeout == 5*time.Second && c.Users == 1000 && !c.SetProviderFail && c.Mix == mix{80, 10, 0, 10, 0}
		}},
		{args: []string{"-duration", "40s", "-chaos-stop", "replica"}, check: func(c config) bool {
			return c.ChaosAt == 20*time.Second && c.ChaosUntil == 30*time.Second
		}},
		{args: []string{"-chaos-provider-fail", "0.5", "-url", "http://localhost:9000"}, check: func(c config) bool {
			return c.SetProviderFail && c.ProviderFail == 0.5 && c.URL == "http://localhost:9000"
		}},
		{args: []string{"-url", "http://10.0.0.1:8080", "-allow-remote"}, check: func(c config) bool { return c.AllowRemote }},
		{args: []string{"-url", "http://10.0.0.1:8080"}, err: "-allow-remote"},
		{args: []string{"-chaos-provider-fail", "1.5"}, err: "-chaos-provider-fail must be in [0, 1]"},
		{args: []string{"-chaos-stop", "kafka"}, err: "replica or redis"},
		{args: []string{"-chaos-at", "5s"}, err: "need -chaos-stop"},
		{args: []string{"-chaos-stop", "redis", "-chaos-at", "20s", "-chaos-until", "10s"}, err: "0 < at < until"},
		{args: []string{"-rate", "0"}, err: "-rate must be"},
		{args: []string{"-mix", "reads=1,bogus=2"}, err: `unknown kind "bogus"`},
		{args: []string{"-max-inflight", "0"}, err: "-max-inflight"},
		{args: []string{"extra"}, err: "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		cfg, err := parseFlags(tc.args, &stderr)
		switch {
		case tc.err == "" && (err != nil || !tc.check(cfg)):
			t.Errorf("%q: %+v, %v", tc.args, cfg, err)
		case tc.err != "" && (err == nil || !strings.Contains(stderr.String(), tc.err)):
			t.Errorf("%q: err %v, stderr %q; want it to say %q", tc.args, err, stderr.String(), tc.err)
		}
	}
	if _, err := parseFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: %v", err)
	}
}

func TestClassify(t *testing.T) {
	timeout := &url.Error{Op: "Get", URL: "http://127.0.0.1/x", Err: context.DeadlineExceeded}
	for _, tc := range []struct {
		k      kind
		r      result
		want   outcome
		reason string
	}{
		{kindReads, result{status: 200}, outcomeOK, ""},
		{kindReads, result{status: 404}, outcomeExpected, "404 no such user"},
		{kindWrites, result{status: 404}, outcomeExpected, "404 no such user"},
		{kindReads, result{status: 400}, outcomeUnexpected, "400 Bad Request"},
		{kindReads, result{status: 503}, outcomeUnexpected, "503 Service Unavailable"},
		{kindPosts, result{status: 404}, outcomeUnexpected, "404 Not Found"},
		{kindPosts, result{status: 429}, outcomeExpected, "429 rate limited"},
		{kindPayments, result{status: 201}, outcomeOK, ""},
		{kindPayments, result{status: 200}, outcomeUnexpected, "200 OK"},
		{kindPayments, result{status: 502}, outcomeExpected, "502 provider failed after retries"},
		{kindPayments, result{status: 503}, outcomeExpected, "503 unavailable (circuit open)"},
		{kindPayments, result{status: 422}, outcomeExpected, "422 refused"},
		{kindPayments, result{status: 409}, outcomeUnexpected, "409 Conflict"},
		{kindPayments, result{status: 409, expected: "409 overtaken by its own replay"}, outcomeExpected, "409 overtaken by its own replay"},
		{kindPayments, result{status: 500}, outcomeUnexpected, "500 Internal Server Error"},
		{kindReplays, result{status: 200}, outcomeOK, ""},
		{kindReplays, result{status: 409}, outcomeExpected, "409 original still running"},
		{kindReplays, result{status: 422}, outcomeUnexpected, "422 Unprocessable Entity"},
		{kindReplays, result{status: 201, problem: "replay body differs from the original"}, outcomeUnexpected, "replay body differs from the original"},
		{kindEmails, result{status: 202}, outcomeOK, ""},
		{kindEmails, result{status: 200}, outcomeUnexpected, "200 OK"},
		{kindEmails, result{err: timeout}, outcomeUnexpected, "timeout"},
		{kindEmails, result{err: io.ErrUnexpectedEOF}, outcomeUnexpected, "connection closed (EOF)"},
	} {
		o, reason := classify(tc.k, tc.r)
		if o != tc.want || reason != tc.reason {
			t.Errorf("classify(%s, %d, %v) = %d %q, want %d %q", tc.k, tc.r.status, tc.r.err, o, reason, tc.want, tc.reason)
		}
	}
}

func TestCompareReplay(t *testing.T) {
	body := []byte(`{"id":"pay_1","status":"captured"}` + "\n")
	marked := http.Header{"Idempotent-Replayed": {"true"}}
	for _, tc := range []struct {
		name       string
		origMarked bool
		r          result
		want       replayCheck
	}{
		{"the stored answer", false, result{status: 201, body: body, header: marked}, replayCheck{}},
		{"the replay overtook", true, result{status: 201, body: body, header: http.Header{}}, replayCheck{overtook: true}},
		{"not marked", false, result{status: 201, body: body, header: http.Header{}},
			replayCheck{noHeader: true, problem: "replay without Idempotent-Replayed: true", detail: "neither answer says Idempotent-Replayed: true"}},
		{"ran twice", false, result{status: 201, body: []byte(`{"id":"pay_2"}`), header: http.Header{}},
			replayCheck{bodyDiffers: true, noHeader: true, problem: "replay body differs from the original",
				detail: `body {"id":"pay_2"}, original {"id":"pay_1","status":"captured"}; neither answer says Idempotent-Replayed: true`}},
		{"another status", false, result{status: 200, body: body, header: marked},
			replayCheck{statusDiffers: true, problem: "replay status differs from the original", detail: "status 200, original 201"}},
	} {
		if got := compareReplay(201, body, tc.origMarked, tc.r); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// An /slo answer of an unknown shape is printed as indented JSON.
func TestSLOLinesFallBackToJSON(t *testing.T) {
	lines, err := sloLines([]byte(`[{"name":"x","objective":0.99}]`))
	if err != nil || len(lines) != 6 || lines[2] != `    "name": "x",` {
		t.Errorf("lines %q, err %v", lines, err)
	}
	if _, err := sloLines([]byte("not json")); err == nil {
		t.Error("no error for a body that is not JSON")
	}
}

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		s    summary
		err  error
		want int
	}{
		{summary{OK: 10, Expected: 5}, nil, 0},
		{summary{OK: 10, Expected: 5, Dropped: 3}, nil, 0},
		{summary{OK: 10, Unexpected: 1}, nil, 1},
		{summary{}, errors.New("cannot reach"), 2},
	} {
		if got := exitCode(tc.s, tc.err); got != tc.want {
			t.Errorf("exitCode(%+v, %v) = %d, want %d", tc.s, tc.err, got, tc.want)
		}
	}
}

// The histogram's quantiles are never below the exact ones and at most
// 1/256 (plus the 1µs rounding) above.
func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	var exact []time.Duration
	for range 20_000 {
		d := time.Duration(rand.ExpFloat64() * float64(20*time.Millisecond))
		if rand.IntN(100) == 0 {
			d = time.Duration(rand.Int64N(int64(30 * time.Second)))
		}
		h.record(d)
		exact = append(exact, d)
	}
	slices.Sort(exact)
	s := h.snapshot()
	for _, q := range []float64{0.001, 0.5, 0.9, 0.95, 0.99, 0.999, 1} {
		want := exact[max(int(q*float64(len(exact))+0.999999), 1)-1]
		got := s.quantile(q)
		if got < want.Truncate(time.Microsecond) || float64(got) > float64(want)*(1+1.0/256)+float64(time.Microsecond) {
			t.Errorf("q%g: %v, exact %v", q, got, want)
		}
	}
	if s.n != 20_000 || time.Duration(s.maxUS)*time.Microsecond < exact[len(exact)-1] {
		t.Errorf("n %d, max %dµs (exact %v)", s.n, s.maxUS, exact[len(exact)-1])
	}
	for i := range histBuckets - 1 {
		if bucketOf(bucketHigh(i)) != i || bucketOf(bucketHigh(i)+1) != i+1 {
			t.Fatalf("bucket %d: high %d maps to %d, +1 to %d", i, bucketHigh(i), bucketOf(bucketHigh(i)), bucketOf(bucketHigh(i)+1))
		}
	}
	if (histSnapshot{counts: make([]int64, histBuckets)}).quantile(0.99) != 0 {
		t.Error("an empty histogram's p99 is not 0")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(rand.Int64N(int64(time.Second)))
		for pb.Next() {
			h.record(d)
		}
	})
}
