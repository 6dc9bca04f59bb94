package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestEndToEnd starts the service on real servers (Redis, PostgreSQL
// primary + streaming replica) and walks every endpoint.
func TestEndToEnd(t *testing.T) {
	r := startRedis(t)
	pg := startPostgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- Run(ctx, Config{Addr: "127.0.0.1:0", RedisURL: r.URL(), DatabaseURL: pg.PrimaryURL, ReplicaURLs: []string{pg.ReplicaURL},
			RatePerClient: 200, DrainDelay: 10 * time.Millisecond, StatsRefresh: 200 * time.Millisecond, Ready: ready}, &out)
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("the service did not start: %v\n%s", err, out.String())
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not start within 60s")
	}
	pg.WaitReplicaCaughtUp() // the schema and seed data, written at start-up, reach the replica
	jar, _ := cookiejar.New(nil)
	withToken := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	plain := &http.Client{Timeout: 10 * time.Second}
	call := func(c *http.Client, method, path, body string, hdr ...string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}

	// Users: cache-aside over the replica.
	if code, _, body := call(plain, "GET", "/users/7", ""); code != 200 || !strings.Contains(body, `"name":"User 7"`) {
		t.Fatalf("GET /users/7: %d %s", code, body)
	}
	if code, _, _ := call(plain, "GET", "/users/999999", ""); code != 404 {
		t.Fatalf("GET of a missing user: %d", code)
	}
	// Posts: authors in one batch.
	code, _, body := call(plain, "GET", "/posts?limit=50", "")
	var posts []Post
	if code != 200 || json.Unmarshal([]byte(body), &posts) != nil || len(posts) != 50 || posts[0].Author.Name == "" {
		t.Fatalf("GET /posts: %d %.200s", code, body)
	}

	// Read-your-writes during paused replication: the author of the newest
	// post is user 1. With the token (cookie) the page shows the new name;
	// without it the replica is stale, which proves the setup.
	pg.PauseReplay()
	code, hdr, body := call(withToken, "PUT", "/users/1", `{"name":"Ada Lovelace","email":"ada@example.com"}`)
	if code != 200 || hdr.Get("Set-Cookie") == "" {
		t.Fatalf("PUT /users/1: %d %s (Set-Cookie %q)", code, body, hdr.Get("Set-Cookie"))
	}
	if _, _, body := call(withToken, "GET", "/posts?limit=1", ""); !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("read with the write token during paused replay: %s, want the new name", body)
	}
	if _, _, body := call(plain, "GET", "/posts?limit=1", ""); !strings.Contains(body, `"User 1"`) {
		t.Fatalf("read without a token during paused replay: %s; expected the stale replica (the setup)", body)
	}
	if _, _, body := call(plain, "GET", "/users/1", ""); !strings.Contains(body, "Ada Lovelace") {
		t.Fatalf("GET /users/1 after the write: %s, want the written-through cache value", body)
	}
	pg.ResumeReplay()

	// Payments: Idempotency-Key required, replayed, one charge.
	if code, _, _ := call(plain, "POST", "/payments", `{"user_id":1,"amount_cents":500}`); code != 400 {
		t.Fatalf("payment without a key: %d", code)
	}
	code, _, first := call(plain, "POST", "/payments", `{"user_id":1,"amount_cents":500}`, "Idempotency-Key", "pay-e2e-1")
	if code != 201 {
		t.Fatalf("payment: %d %s", code, first)
	}
	code, hdr, again := call(plain, "POST", "/payments", `{"user_id":1,"amount_cents":500}`, "Idempotency-Key", "pay-e2e-1")
	if code != 201 || again != first || hdr.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replayed payment: %d %s (replayed %q)", code, again, hdr.Get("Idempotent-Replayed"))
	}
	if code, _, _ := call(plain, "POST", "/payments", `{"user_id":1,"amount_cents":999}`, "Idempotency-Key", "pay-e2e-1"); code != 422 {
		t.Fatalf("key reused with another body: %d", code)
	}
	var n int
	if err := pg.Primary.QueryRow(ctx, `SELECT count(*) FROM payments`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d payments, %v; want exactly 1", n, err)
	}
	// The periodic job refreshes the payment totals (REFRESH MATERIALIZED
	// VIEW CONCURRENTLY): the payment shows in the view.
	eventually(t, 20*time.Second, "the payment in the refreshed user_payment_totals view", func() bool {
		var payments, cents int64
		err := pg.Primary.QueryRow(ctx, `SELECT payments, amount_cents FROM user_payment_totals WHERE user_id = 1`).Scan(&payments, &cents)
		return err == nil && payments == 1 && cents == 500
	})
	if _, _, body := call(plain, "GET", "/admin/stats", ""); !strings.Contains(body, `"payment_totals_refreshes":`) || strings.Contains(body, `"payment_totals_refreshes":0`) {
		t.Fatalf("/admin/stats: %s, want payment-totals refreshes done", body)
	}
	// The payment's domain event, published in its transaction, reached
	// the ledger subscriber once (the replay published nothing).
	eventually(t, 20*time.Second, "the payment.captured event handled by the ledger queue", func() bool {
		_, _, body := call(plain, "GET", "/admin/stats", "")
		return strings.Contains(body, `"payment_events_ledgered":1`)
	})

	// Emails: 202 and a job that completes.
	code, _, body = call(plain, "POST", "/emails", `{"to":"ada@example.com","subject":"hi"}`)
	var accepted struct {
		JobID     string `json:"job_id"`
		StatusURL string `json:"status_url"`
	}
	if code != 202 || json.Unmarshal([]byte(body), &accepted) != nil {
		t.Fatalf("POST /emails: %d %s", code, body)
	}
	eventually(t, 20*time.Second, "the email job done", func() bool {
		_, _, st := call(plain, "GET", accepted.StatusURL, "")
		return strings.Contains(st, `"state":"done"`)
	})
	// The done job's status: its progress, output, attempts and times.
	code, _, body = call(plain, "GET", accepted.StatusURL, "")
	var job struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		Attempts int    `json:"attempts"`
		Progress *struct {
			Percent   int       `json:"percent"`
			Message   string    `json:"message"`
			UpdatedAt time.Time `json:"updated_at"`
		} `json:"progress"`
		Output *struct {
			MessageID string `json:"message_id"`
		} `json:"output"`
		LastError  *string    `json:"last_error"`
		EnqueuedAt time.Time  `json:"enqueued_at"`
		StartedAt  *time.Time `json:"started_at"`
		FinishedAt *time.Time `json:"finished_at"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &job) != nil {
		t.Fatalf("GET %s: %d %s", accepted.StatusURL, code, body)
	}
	if job.ID != accepted.JobID || job.State != "done" || job.Attempts != 1 || job.LastError == nil || *job.LastError != "" {
		t.Fatalf("job status %s: want done at attempt 1 with no error", body)
	}
	if job.Progress == nil || job.Progress.Percent != 100 || job.Progress.Message != "sent" || job.Progress.UpdatedAt.IsZero() {
		t.Fatalf("job status %s: want progress 100, sent", body)
	}
	if job.Output == nil || job.Output.MessageID != "<"+accepted.JobID+"@mail.example.com>" {
		t.Fatalf("job status %s: want the output's message id", body)
	}
	if job.EnqueuedAt.IsZero() || job.StartedAt == nil || job.FinishedAt == nil || job.StartedAt.Before(job.EnqueuedAt.Add(-time.Second)) || job.FinishedAt.Before(*job.StartedAt) {
		t.Fatalf("job status %s: want enqueued <= started <= finished", body)
	}

	// Probes, SLO, admin stats.
	for _, p := range []string{"/health/live", "/health/ready", "/health/startup", "/slo", "/admin/stats"} {
		if code, _, body := call(plain, "GET", p, ""); code != 200 {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}

	// Rate limit: past 200/s burst 400 from one client, 429 with headers.
	// Eight senders outrun 200/s however slow the machine is (one sender
	// under -race on a loaded machine may not, and then is rightly never
	// limited); the limiter must refuse before more than the burst plus
	// what the rate added while they sent got through.
	var (
		rlMu     sync.Mutex
		admitted int
		rlHeader string
	)
	rlStart := time.Now()
	var senders sync.WaitGroup
	for range 8 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for time.Since(rlStart) < 20*time.Second {
				rlMu.Lock()
				done := rlHeader != ""
				rlMu.Unlock()
				if done {
					return
				}
				req, _ := http.NewRequest("GET", base+"/users/3", nil)
				resp, err := plain.Do(req)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				rlMu.Lock()
				if resp.StatusCode == 429 && rlHeader == "" {
					rlHeader = resp.Header.Get("RateLimit") + " | " + resp.Header.Get("Retry-After")
				} else if resp.StatusCode == 200 {
					admitted++
				}
				rlMu.Unlock()
			}
		}()
	}
	senders.Wait()
	if !strings.Contains(rlHeader, `"client"`) {
		t.Fatalf("no 429 with RateLimit headers after %d admitted requests (%q)", admitted, rlHeader)
	}
	if most := 400 + int(200*time.Since(rlStart).Seconds()) + 8; admitted > most {
		t.Fatalf("%d requests admitted in %v; the limit (200/s, burst 400) allows %d", admitted, time.Since(rlStart), most)
	}

	// Metrics: every primitive is there.
	_, _, m := call(plain, "GET", "/metrics", "")
	for _, family := range []string{"scalekit_cache_", "scalekit_batch_", "scalekit_breaker_", "scalekit_retry_", "scalekit_ratelimit_redis_",
		"scalekit_ratelimit_http_", "scalekit_idempotency_", "scalekit_slo_", "scalekit_health_"} {
		if !strings.Contains(m, family) {
			t.Errorf("/metrics has no %s* series", family)
		}
	}
	extraMetrics(t, m)
	// RED per ServeMux pattern, the 429s included, never the raw path; the
	// Go runtime and the process.
	for _, series := range []string{`method="GET",name="http",route="GET /users/{id}",status_class="2xx"`,
		`method="GET",name="http",route="GET /users/{id}",status_class="4xx"`, "scalekit_http_request_duration_seconds_bucket",
		"scalekit_http_requests_in_flight", "scalekit_requestid_requests_total", "go_goroutines ", "process_cpu_seconds_total "} {
		if !strings.Contains(m, series) {
			t.Errorf("/metrics has no %s series", series)
		}
	}
	if strings.Contains(m, `route="/users/3"`) {
		t.Error("/metrics has a raw path as a route label")
	}
	// Request IDs: an incoming one is echoed, else one is made.
	if _, h, _ := call(plain, "GET", "/health/live", "", "X-Request-ID", "req-e2e-1"); h.Get("X-Request-ID") != "req-e2e-1" {
		t.Errorf("X-Request-ID %q, want the incoming req-e2e-1", h.Get("X-Request-ID"))
	}
	if _, h, _ := call(plain, "GET", "/health/live", ""); len(h.Get("X-Request-ID")) != 32 {
		t.Errorf("X-Request-ID %q, want a generated 32-digit ID", h.Get("X-Request-ID"))
	}

	// Graceful shutdown.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not stop within 30s")
	}
	if !strings.Contains(out.String(), "stopped") {
		t.Fatalf("output: %s", out.String())
	}
	fmt.Fprint(io.Discard, out.String())
}

// TestInMemory runs the service on the in-memory backends (no servers),
// as it does on a machine without the binaries.
func TestInMemory(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	var out strings.Builder
	go func() {
		done <- Run(ctx, Config{Addr: "127.0.0.1:0", Memory: true, DrainDelay: time.Millisecond, StatsRefresh: 20 * time.Millisecond, Ready: ready}, &out)
	}()
	var base string
	select {
	case addr := <-ready:
		base = "http://" + addr
	case err := <-done:
		t.Fatalf("did not start: %v", err)
	}
	call := func(method, path, body string, hdr ...string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("PUT", "/users/5", `{"name":"Grace","email":"g@example.com"}`); code != 200 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	if code, body := call("GET", "/users/5", ""); code != 200 || !strings.Contains(body, "Grace") {
		t.Fatalf("GET after PUT: %d %s", code, body)
	}
	if code, body := call("GET", "/posts?limit=3", ""); code != 200 || !strings.Contains(body, `"author":{"id"`) {
		t.Fatalf("posts: %d %s", code, body)
	}
	code, first := call("POST", "/payments", `{"user_id":5,"amount_cents":100}`, "Idempotency-Key", "mem-1")
	code2, again := call("POST", "/payments", `{"user_id":5,"amount_cents":100}`, "Idempotency-Key", "mem-1")
	if code != 201 || code2 != 201 || first != again {
		t.Fatalf("payment and replay: %d %s / %d %s", code, first, code2, again)
	}
	if code, body := call("POST", "/emails", `{"to":"g@example.com","subject":"hi"}`); code != 202 {
		t.Fatalf("emails: %d %s", code, body)
	}
	if code, body := call("GET", "/metrics", ""); code != 200 || !strings.Contains(body, "scalekit_ratelimit_decisions_total") {
		t.Fatalf("metrics: %d", code)
	}
	if code, _ := call("GET", "/admin/", ""); code != 404 { // no Config.ConsoleToken, no console
		t.Fatalf("GET /admin/ without a ConsoleToken: %d, want 404", code)
	}
	eventually(t, 10*time.Second, "a periodic refresh of the payment totals", func() bool {
		_, body := call("GET", "/admin/stats", "")
		return strings.Contains(body, `"payment_totals_refreshes":`) && !strings.Contains(body, `"payment_totals_refreshes":0`)
	})
	eventually(t, 10*time.Second, "the payment.captured event handled by the ledger queue", func() bool {
		_, body := call("GET", "/admin/stats", "")
		return strings.Contains(body, `"payment_events_ledgered":1`)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
