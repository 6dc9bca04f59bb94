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
	mw, err := r.Middleware(HTTPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h := notesHandler(t, r, mw)
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
	eventually(t, 10*time.Second, "the cookie's reads back on the replica", func() bool {
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
