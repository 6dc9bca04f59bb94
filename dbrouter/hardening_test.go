package dbrouter

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// notesHandler is a handler over r that inserts a note on POST and, on GET,
// reports where the read ran and whether it saw the note.
func notesHandler(t testing.TB, r *Router, mw func(http.Handler) http.Handler) http.Handler {
	t.Helper()
	return mw(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := req.Context()
		if req.Method == http.MethodPost {
			if _, err := r.Exec(ctx, "INSERT INTO notes VALUES ((SELECT coalesce(max(id), 0) + 1 FROM notes))"); err != nil {
				http.Error(w, err.Error(), 500)
			}
			return
		}
		var rec, found bool
		if err := r.QueryRow(ctx, "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM notes)").Scan(&rec, &found); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		where := map[bool]string{true: "replica", false: "primary"}[rec]
		w.Write([]byte(where + map[bool]string{true: " found", false: " missing"}[found]))
	}))
}

// Issue 16 item 19: a malformed X-DB-Token header (or a valid but older
// one) must not make the middleware drop the client's good cookie token:
// with replay paused, the read carrying the cookie must see the write.
func TestMiddlewareBadHeaderKeepsCookie(t *testing.T) {
	f := testinfra.Postgres(t)
	r := newReal(t, f, Options{})
	mustExec(t, r, "CREATE TABLE notes (id int PRIMARY KEY)")
	f.WaitReplicaCaughtUp()
	// An older valid token: the primary's position before the write.
	old, err := r.WriteToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	hl, err := NewHTTP(HTTPOptions{Router: r})
	if err != nil {
		t.Fatal(err)
	}
	h := notesHandler(t, r, hl.Middleware)
	f.PauseReplay()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/notes", nil))
	cookies := rec.Result().Cookies()
	if rec.Code != 200 || len(cookies) != 1 {
		t.Fatalf("POST: %d %v", rec.Code, rec.Header())
	}
	for _, header := range []string{"garbage", "1/2", "0/0@-5", old.String()} {
		req := httptest.NewRequest(http.MethodGet, "/notes", nil)
		req.AddCookie(cookies[0])
		req.Header.Set("X-DB-Token", header)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if got := rec.Body.String(); got != "primary found" {
			t.Fatalf("GET with the cookie and header %q: %q, want the write seen on the primary", header, got)
		}
	}
	// And a malformed cookie does not discard a good header.
	req := httptest.NewRequest(http.MethodGet, "/notes", nil)
	req.AddCookie(&http.Cookie{Name: "dbrouter_token", Value: "garbage"})
	req.Header.Set("X-DB-Token", rec.Header().Get("X-DB-Token"))
	rec2 := httptest.NewRecorder()
	h.ServeHTTP(rec2, req)
	if got := rec2.Body.String(); got != "primary found" {
		t.Fatalf("GET with a bad cookie and the good header: %q", got)
	}
	f.ResumeReplay()
	poll.Until(t, 10*time.Second, "the cookie's reads back on the replica", func() bool {
		req := httptest.NewRequest(http.MethodGet, "/notes", nil)
		req.AddCookie(cookies[0])
		req.Header.Set("X-DB-Token", "garbage")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Body.String() == "replica missing" {
			t.Fatal("stale read with the cookie")
		}
		return rec.Body.String() == "replica found"
	})
}

// countTracer is a user's tracer (otelpgx, say): it counts the queries it
// sees end.
type countTracer struct{ n atomic.Int64 }

func (c *countTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}

func (c *countTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) { c.n.Add(1) }

// Issue 16 item 21: Open keeps a tracer the user set (composed with its own
// by multitracer, both seeing every query), and New finds a *Tracer inside
// a multitracer for Stats.
func TestTracerComposed(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	users := map[string]*countTracer{}
	var mu sync.Mutex
	r, err := Open(ctx, f.PrimaryURL, []string{f.ReplicaURL}, Options{ReplicaNames: []string{"replica-a"},
		Interval: 50 * time.Millisecond, CheckTimeout: testinfra.CallTimeout,
		ConfigurePool: func(name string, cfg *pgxpool.Config) error {
			mu.Lock()
			defer mu.Unlock()
			users[name] = &countTracer{}
			cfg.ConnConfig.Tracer = users[name]
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(users) != 2 || users["primary"] == nil || users["replica-a"] == nil {
		t.Fatalf("ConfigurePool called for %v", users)
	}
	var one int
	if err := r.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	mustExec(t, r, "SELECT 1")
	st := r.Stats()
	if st.Replicas[0].Queries.Queries != 1 || st.Primary.Queries.Queries != 1 {
		t.Fatalf("the router's own counts: primary %+v replica %+v", st.Primary.Queries, st.Replicas[0].Queries)
	}
	if p, rep := users["primary"].n.Load(), users["replica-a"].n.Load(); p < 1 || rep < 1 {
		t.Fatalf("the user's tracer was removed: it saw %d primary and %d replica queries", p, rep)
	}
	if _, err := Open(ctx, f.PrimaryURL, nil, Options{ConfigurePool: func(string, *pgxpool.Config) error { return errors.New("no") }}); err == nil || !strings.Contains(err.Error(), "ConfigurePool") {
		t.Fatalf("a failing ConfigurePool: %v", err)
	}

	// New over pools whose tracer is a multitracer holding the router's
	// Tracer and the user's: Stats still has the counts.
	mk := func(url, target string) (*pgxpool.Pool, *countTracer) {
		cfg, err := pgxpool.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTracer(TracerOptions{Target: target})
		if err != nil {
			t.Fatal(err)
		}
		user := &countTracer{}
		cfg.ConnConfig.Tracer = multitracer.New(user, tr)
		p, err := pgxpool.NewWithConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		return p, user
	}
	pp, pu := mk(f.PrimaryURL, "primary")
	rp, ru := mk(f.ReplicaURL, "replica")
	r2, err := New(ctx, Options{Primary: pp, Replicas: []*pgxpool.Pool{rp}})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if err := r2.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Fatal(err)
	}
	mustExec(t, r2, "SELECT 1")
	st = r2.Stats()
	if st.Primary.Queries.Target != "primary" || st.Primary.Queries.Queries != 1 || st.Replicas[0].Queries.Queries != 1 {
		t.Fatalf("a Tracer inside a multitracer vanished from Stats: primary %+v replica %+v", st.Primary.Queries, st.Replicas[0].Queries)
	}
	if pu.n.Load() < 1 || ru.n.Load() < 1 {
		t.Fatal("the user's tracers saw nothing")
	}
}

// Issue 16 item 20: a client-forged huge LSN no longer sends that client's
// reads to the primary after TokenWait: it is clamped to the primary's WAL
// position and counted. A real token (from another router, beyond what
// this one has seen) is still honoured, not clamped.
func TestForgedTokenClamped(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	r := newReal(t, f, Options{TokenWait: 3 * time.Second, TokenPoll: 5 * time.Millisecond, TokenMargin: 1})
	mustExec(t, r, "CREATE TABLE items (id int PRIMARY KEY)")
	f.WaitReplicaCaughtUp()
	for _, forged := range []string{"FFFFFFFF/FFFFFFFF@0", "FFFF/0@1767225600123"} {
		tok, err := ParseToken(forged)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if got := served(t, WithToken(ctx, tok), r); got != "replica" {
			t.Fatalf("forged token %s: read on the %s after %v, want the replica", forged, got, time.Since(start))
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("forged token %s: the read waited %v", forged, d)
		}
	}
	if st := r.Stats(); st.ForgedTokens != 2 || st.TokenPrimary != 0 {
		t.Fatalf("stats %+v", st)
	}

	// A write through another router (another instance of the service):
	// its token is beyond anything r has seen, but real.
	other := newReal(t, f, Options{})
	f.PauseReplay()
	mustExec(t, other, "INSERT INTO items SELECT generate_series(1, 1000)")
	tok, err := other.WriteToken(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var rec bool
	var n int
	if err := r.QueryRow(WithToken(ctx, tok), "SELECT pg_is_in_recovery(), count(*) FROM items").Scan(&rec, &n); err != nil {
		t.Fatal(err)
	}
	if rec || n != 1000 {
		t.Fatalf("a real token from another router: in recovery %v, %d rows (want the primary, 1000)", rec, n)
	}
	if st := r.Stats(); st.ForgedTokens != 2 {
		t.Fatalf("a real token was counted as forged: %+v", st)
	}
	f.ResumeReplay()
}

// Issue 16 item 23: a replica that has not replayed the primary's WAL as of
// the router's start (here: a migration it has not replayed) takes no
// reads, and Ready says not ready until it has; Fence does the same for a
// migration made after the router started.
func TestStartFloor(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	mustExec(t, f.Primary, "CREATE TABLE warm (id int)")
	f.WaitReplicaCaughtUp()
	f.PauseReplay()
	mustExec(t, f.Primary, "CREATE TABLE users (id int PRIMARY KEY)") // the migration
	r := newReal(t, f, Options{})
	if err := r.Ready(ctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready with the replica behind the start: %v", err)
	}
	var rec bool
	var n int
	for range 5 {
		if err := r.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*) FROM users").Scan(&rec, &n); err != nil {
			t.Fatalf("a read right after start: %v", err)
		}
		if rec {
			t.Fatal("a read went to a replica behind the router's start")
		}
	}
	f.ResumeReplay()
	poll.Until(t, 15*time.Second, "Ready", func() bool { return r.Ready(ctx) == nil })
	poll.Until(t, 15*time.Second, "reads back on the replica", func() bool {
		if err := r.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*) FROM users").Scan(&rec, &n); err != nil {
			t.Fatal(err)
		}
		return rec
	})

	// A migration after the start, then Fence.
	f.PauseReplay()
	mustExec(t, f.Primary, "CREATE TABLE posts (id int PRIMARY KEY)")
	if err := r.Fence(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(ctx); !errors.Is(err, ErrNotReady) {
		t.Fatalf("Ready after Fence with replay paused: %v", err)
	}
	for range 5 {
		if err := r.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*) FROM posts").Scan(&rec, &n); err != nil {
			t.Fatalf("a read after Fence: %v", err)
		}
		if rec {
			t.Fatal("a read went to a replica behind the fence")
		}
	}
	f.ResumeReplay()
	poll.Until(t, 15*time.Second, "Ready after the fence", func() bool { return r.Ready(ctx) == nil })
	poll.Until(t, 15*time.Second, "reads back on the replica after the fence", func() bool {
		if err := r.QueryRow(ctx, "SELECT pg_is_in_recovery(), count(*) FROM posts").Scan(&rec, &n); err != nil {
			t.Fatal(err)
		}
		return rec
	})
}

// Issue 16 item 22: a "replica" whose replay LSN goes backwards between
// readings is several servers behind one URL (a load balancer): the first
// time is logged, each counted, and reads carrying a token no longer go to
// it (reads without one still do). A failed check in between (a restart
// replays from an earlier point) is not counted. (A fake prober: the
// test servers have one standby, so no real load balancer over two.)
func TestReplayRegressionDetected(t *testing.T) {
	log, buf := newLog()
	r, fp := newFake(t, Options{Logger: log, Interval: time.Hour}, 2)
	defer r.Close()
	bg := context.Background()
	fp.setPrimary(300, nil)
	fp.set(0, up(300))
	fp.set(1, up(300))
	r.check(bg)
	// A failed check, then a lower reading: a restart, not a regression.
	fp.set(0, replicaStatus{err: errDown})
	r.check(bg)
	fp.set(0, up(250))
	r.check(bg)
	fp.set(0, up(300))
	r.check(bg)
	if st := r.Stats(); st.Replicas[0].ReplayRegressions != 0 || buf.Count("went backwards") != 0 {
		t.Fatalf("a restart counted as a regression: %+v", st.Replicas[0])
	}
	// Behind a balancer: readings alternate between two standbys.
	for _, l := range []LSN{200, 300, 150} {
		fp.set(0, up(l))
		r.check(bg)
	}
	fp.set(0, up(300))
	r.check(bg)
	st := r.Stats()
	if st.Replicas[0].ReplayRegressions != 2 || st.Replicas[1].ReplayRegressions != 0 || buf.Count("went backwards") != 1 {
		t.Fatalf("regressions %+v\nlog:\n%s", st.Replicas, buf)
	}
	// Both replicas report 300: token reads go only to r1, others to both.
	for range 20 {
		if got := routeName(r, WithToken(bg, Token{LSN: 250})); got != "r1" {
			t.Fatalf("a token read went to %s, want r1 (r0's LSN bounds nothing)", got)
		}
	}
	seen := map[string]bool{}
	for range 20 {
		seen[routeName(r, bg)] = true
	}
	if !seen["r0"] || !seen["r1"] {
		t.Fatalf("reads without a token should use both: %v", seen)
	}
	// A poll that sees less than the check before it is caught as well.
	r2, fp2 := newFake(t, Options{Interval: time.Hour, TokenWait: 50 * time.Millisecond, TokenPoll: time.Millisecond}, 1)
	defer r2.Close()
	fp2.onPoll = func(_ int, st *replicaStatus) { st.lsn = 90 }
	if got := routeName(r2, WithToken(bg, Token{LSN: 101})); got != "primary" {
		t.Fatalf("token read: %s", got)
	}
	if st := r2.Stats(); st.Replicas[0].ReplayRegressions == 0 {
		t.Fatalf("a poll below the check not counted: %+v", st.Replicas[0])
	}
}

// Issue 16 item 20, ConsistencyWindow: a token whose time is far in the
// future (forged) would keep its client's reads on the primary until then;
// one more than Window ahead constrains nothing and is counted. A token a
// little ahead (another instance's clock) still holds reads on the primary.
func TestForgedWindowTokenClamped(t *testing.T) {
	clk := testclock.New()
	r, _ := newFake(t, Options{Consistency: ConsistencyWindow, Window: 2 * time.Second, Clock: clk}, 1)
	defer r.Close()
	ctx := WithToken(context.Background(), Token{Time: clk.Now().Add(24 * time.Hour)})
	if got := routeName(r, ctx); got != "r0" {
		t.Fatalf("a forged future token sent the read to the %s", got)
	}
	ctx = WithToken(context.Background(), Token{Time: clk.Now().Add(500 * time.Millisecond)})
	if got := routeName(r, ctx); got != "primary" {
		t.Fatalf("a token from a clock 500ms ahead: %s", got)
	}
	if st := r.Stats(); st.ForgedTokens != 1 {
		t.Fatalf("ForgedTokens %d, want 1", st.ForgedTokens)
	}
}

// Forged tokens from many goroutines at once: each is checked against a
// read of the primary's position that began after it arrived (shared by
// concurrent ones), all are clamped and counted, and every read goes to
// the replica that has replayed the primary's position.
func TestForgedTokensHammer(t *testing.T) {
	r, fp := newFake(t, Options{TokenMargin: 1}, 2)
	defer r.Close()
	const n = 64
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := range n {
		wg.Go(func() {
			ctx := WithToken(context.Background(), Token{LSN: LSN(1_000_000 + i)})
			if got := routeName(r, ctx); got != "r0" && got != "r1" {
				wrong.Add(1)
			}
		})
	}
	wg.Wait()
	if st := r.Stats(); st.ForgedTokens != n || wrong.Load() != 0 || fp.inserts.Load() == 0 || fp.inserts.Load() > n {
		t.Fatalf("forged %d of %d, %d routed to the primary, %d reads of the insert position", st.ForgedTokens, n, wrong.Load(), fp.inserts.Load())
	}
	t.Logf("%d forged tokens checked with %d reads of the primary's position", n, fp.inserts.Load())
}
