package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

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
	// The run was cut by the 300ms ctx: what it scheduled until then is at
	// most that (less the start-up), and the report says so. (Asserting
	// "0.3s" to the letter failed on a loaded machine: 0.2s and 0.4s.)
	if sum.Scheduled <= 0 || sum.Scheduled > time.Since(began) {
		t.Errorf("scheduled %v of a run interrupted after %v", sum.Scheduled, time.Since(began))
	}
	if want := fmt.Sprintf("INTERRUPTED after %.1fs", sum.Scheduled.Seconds()); !strings.Contains(out.String(), want) {
		t.Errorf("the report does not say %q:\n%s", want, out.String())
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
