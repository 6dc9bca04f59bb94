package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/requestid"
)

// jsonLog collects the service's JSON log lines; safe for concurrent use.
type jsonLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String is everything written so far.
func (l *jsonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *jsonLog) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// startService runs the service on a real Redis and PostgreSQL primary +
// replica, logging JSON at Debug through requestid.NewLogHandler into
// sink, and returns its base URL.
// Each of with changes the service's Config (a tracer provider).
func startService(t *testing.T, sink io.Writer, with ...func(*Config)) (string, *testDB) {
	t.Helper()
	return startServiceOut(t, sink, io.Discard, with...)
}

// startServiceOut is startService with Run's output (the console
// exporters') written to out.
func startServiceOut(t *testing.T, sink, out io.Writer, with ...func(*Config)) (string, *testDB) {
	t.Helper()
	r := startRedis(t)
	pg := startPostgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	logger := slog.New(requestid.NewLogHandler(slog.NewJSONHandler(sink, &slog.HandlerOptions{Level: slog.LevelDebug})))
	cfg := Config{Addr: "127.0.0.1:0", RedisURL: r.URL(), DatabaseURL: pg.PrimaryURL, ReplicaURLs: []string{pg.ReplicaURL},
		RatePerClient: 200, DrainDelay: 10 * time.Millisecond, Logger: logger, Ready: ready}
	for _, w := range with {
		w(&cfg)
	}
	go func() { done <- Run(ctx, cfg, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Error("the service did not stop within 60s")
		}
	})
	select {
	case addr := <-ready:
		pg.WaitReplicaCaughtUp() // the schema and seed data reach the replica
		return "http://" + addr, pg
	case err := <-done:
		t.Fatalf("the service did not start: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("the service did not start within 60s")
	}
	return "", nil
}

// TestRequestIDOnEveryLogLine follows one request through the service on
// real servers: POST /users/5/welcome misses the cache and loads the user
// from the replica through dbrouter, then enqueues an email job that the
// worker runs. Every line logged for it (the access line, the cache's,
// dbrouter's, the job's handler's) carries the request's ID.
func TestRequestIDOnEveryLogLine(t *testing.T) {
	var sink jsonLog
	base, _ := startService(t, &sink)
	client := &http.Client{Timeout: 10 * time.Second}
	waitReplicaReads(t, client, base)
	const rid = "e2e-welcome-5"
	accepted := welcome(t, client, base, rid)
	// The parts: which line of the request each is.
	parts := map[string]func(rec map[string]any) bool{
		"http access": func(rec map[string]any) bool {
			return rec["msg"] == "http request" && rec["route"] == "POST /users/{id}/welcome"
		},
		"cache load": func(rec map[string]any) bool { return rec["msg"] == "cache: loaded" && rec["key"] == "5" },
		"dbrouter replica query": func(rec map[string]any) bool {
			// A replica's target is its host:port (no Options.ReplicaNames).
			return rec["msg"] == "dbrouter: query" && rec["target"] != "primary" && strings.Contains(fmt.Sprint(rec["sql"]), "FROM users")
		},
		"queue job handler": func(rec map[string]any) bool { return rec["msg"] == "email sent" && rec["job_id"] == accepted.JobID },
	}
	var seen map[string]int
	defer func() {
		if t.Failed() {
			for _, rec := range sink.lines(t) {
				if rec["request_id"] == rid {
					t.Logf("%v", rec)
				}
			}
		}
	}()
	eventually(t, 20*time.Second, "a log line from every part of the request", func() bool {
		seen = map[string]int{}
		for _, rec := range sink.lines(t) {
			if rec["request_id"] != rid {
				continue
			}
			for name, is := range parts {
				if is(rec) {
					seen[name]++
				}
			}
		}
		return len(seen) == len(parts)
	})
	// Every line about this request carries its ID: any line naming the
	// job, the welcome route, or the user's cache key ("5" in the
	// namespace).
	n := 0
	for _, rec := range sink.lines(t) {
		about := rec["job_id"] == accepted.JobID || rec["id"] == accepted.JobID || rec["route"] == "POST /users/{id}/welcome" || rec["key"] == "5"
		if rec["request_id"] == rid {
			n++
		} else if about {
			t.Errorf("a line of the request without its ID: %v", rec)
		}
	}
	t.Logf("%d lines carry request_id %s; per part: %v", n, rid, seen)

	// A payment's receipt job is enqueued in the payment's transaction
	// (EnqueueTx, no client middleware: the service adds the ID itself);
	// its handler enqueues the email through the Client from the job's
	// ctx: the email's line carries the payment request's ID, two jobs on.
	const payID = "e2e-payment-1"
	req, _ := http.NewRequest("POST", base+"/payments", strings.NewReader(`{"user_id":2,"amount_cents":100}`))
	req.Header.Set("X-Request-ID", payID)
	req.Header.Set("Idempotency-Key", "pay-rid-1")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /payments: %d", resp.StatusCode)
	}
	eventually(t, 20*time.Second, "the receipt email's line with the payment request's ID", func() bool {
		for _, rec := range sink.lines(t) {
			if rec["msg"] == "email sent" && rec["request_id"] == payID && strings.HasPrefix(fmt.Sprint(rec["subject"]), "Your receipt") {
				return true
			}
		}
		return false
	})
}

// waitReplicaReads waits until the router sends reads to the replica,
// which it does once it has seen the replica replay the start-up writes.
func waitReplicaReads(t *testing.T, client *http.Client, base string) {
	t.Helper()
	eventually(t, 30*time.Second, "a read on the replica", func() bool {
		if resp, err := client.Get(base + "/posts?limit=1"); err == nil {
			resp.Body.Close()
		}
		resp, err := client.Get(base + "/admin/stats")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var st struct {
			DBRouter struct{ Replicas []struct{ Reads uint64 } } `json:"dbrouter"`
		}
		return json.NewDecoder(resp.Body).Decode(&st) == nil && len(st.DBRouter.Replicas) > 0 && st.DBRouter.Replicas[0].Reads > 0
	})
}

// welcome sends POST /users/5/welcome with the request ID rid, checks the
// job was accepted and the ID echoed, and returns the job's id.
func welcome(t *testing.T, client *http.Client, base, rid string) (accepted struct {
	JobID string `json:"job_id"`
}) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/users/5/welcome", nil)
	req.Header.Set("X-Request-ID", rid)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&accepted)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || err != nil || resp.Header.Get("X-Request-ID") != rid {
		t.Fatalf("POST /users/5/welcome: %d %v (X-Request-ID %q)", resp.StatusCode, err, resp.Header.Get("X-Request-ID"))
	}
	return accepted
}
