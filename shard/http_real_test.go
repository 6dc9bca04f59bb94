package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scalekit-go/scalekit/dbrouter"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

// reads are a cluster's routed reads: on its primary and its replica.
type reads struct{ primary, replica uint64 }

func readsOf(r *dbrouter.Router) reads {
	st := r.Stats()
	return reads{primary: st.Primary.Reads, replica: st.Replicas[0].Reads}
}

func (a reads) minus(b reads) reads { return reads{a.primary - b.primary, a.replica - b.replica} }

// replicaServing waits until c's replica has replayed everything f's
// primary wrote and c's monitor has it healthy, so reads without a token
// go to it.
func replicaServing(t *testing.T, c *dbrouter.Router, f *testinfra.PostgresFixture) {
	t.Helper()
	f.WaitReplicaCaughtUp()
	poll.Until(t, 30*time.Second, "the replica healthy", func() bool { return c.Stats().Replicas[0].Healthy })
}

// keyOn is the first ID from "from" on that routes to cluster name.
func keyOn(t *testing.T, r *Router, name string, from int64) int64 {
	t.Helper()
	for id := from; id < from+10000; id++ {
		if rt, _ := r.For(Int64(id)); rt.Cluster == name {
			return id
		}
	}
	t.Fatalf("no key on cluster %s", name)
	return 0
}

// A user writes on cluster a; their next request, carrying the tokens
// header, reads the write on a while a's replica is paused (behind the
// write): the read goes to a's primary. In the same request a read on
// cluster b, where the user wrote nothing, goes to b's replica, and a
// fan-out (Gather) sees the write too. Without the header the read on a
// goes to a's replica and misses the write (the test can fail). Once the
// replica has caught up, the token read is served by it. A write on b
// with MaxTokens 1 returns b's token only: a's is dropped.
func TestRealServersReadYourWritesPerShard(t *testing.T) {
	fa := testinfra.PostgresExclusive(t) // its replay is paused: servers of its own
	a := clusterOn(t, fa)
	b, fb := realCluster(t)
	const vs = 64
	db := mustNew(t, Options{VirtualShards: vs, Map: EvenMap(1, vs, "a", "b"), Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	idA, idB := keyOn(t, db, "a", 1), keyOn(t, db, "b", 1)
	idB2 := keyOn(t, db, "b", idB+1)
	idB3 := keyOn(t, db, "b", idB2+1)
	if _, err := b.Exec(ctx, "INSERT INTO users VALUES ($1, $2, 'bob')", idB, Int64(idB).VShard(vs)); err != nil {
		t.Fatal(err)
	}
	replicaServing(t, a, fa)
	replicaServing(t, b, fb)

	mux := http.NewServeMux()
	mux.HandleFunc("POST /users/{id}", func(w http.ResponseWriter, req *http.Request) {
		id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
		rt, err := db.For(Int64(id))
		if err == nil {
			_, err = rt.Router.Exec(rt.Context(req.Context()), "INSERT INTO users VALUES ($1, $2, $3)", id, rt.VShard, req.URL.Query().Get("name"))
		}
		if err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, req *http.Request) {
		id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
		rt, err := db.For(Int64(id))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		var name string
		err = rt.Router.QueryRow(rt.Context(req.Context()), "SELECT name FROM users WHERE id = $1", id).Scan(&name)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			http.Error(w, "not found", 404)
		case err != nil:
			http.Error(w, err.Error(), 500)
		default:
			io.WriteString(w, name)
		}
	})
	mux.HandleFunc("GET /count", func(w http.ResponseWriter, req *http.Request) {
		ids := []int64{idA, idB}
		n, err := Gather(req.Context(), db, EachOptions{Keys: []Key{Int64(idA), Int64(idB)}}, func(ctx context.Context, tg Target) (int, error) {
			var mine []int64
			for _, i := range tg.Keys {
				mine = append(mine, ids[i])
			}
			var n int
			err := tg.Router.QueryRow(ctx, "SELECT count(*) FROM users WHERE id = ANY($1)", mine).Scan(&n)
			return n, err
		})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n["a"]+n["b"])
	})
	h, err := NewHTTP(HTTPOptions{Router: db, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h.Middleware(mux))
	defer srv.Close()
	do := func(method, path, tokens string) (int, string, *http.Response) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, srv.URL+path, nil)
		if tokens != "" {
			req.Header.Set("X-Shard-Tokens", tokens)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body)), resp
	}

	fa.PauseReplay()
	code, body, resp := do("POST", fmt.Sprintf("/users/%d?name=alice", idA), "")
	if code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	tokens := resp.Header.Get("X-Shard-Tokens")
	sent, err := ParseTokens(tokens)
	if err != nil || len(sent) != 1 || sent["a"].IsZero() {
		t.Fatalf("response tokens %q (%v): want a's token only", tokens, err)
	}
	if c := resp.Cookies(); len(c) != 1 || c[0].Name != "shard_tokens" || c[0].Value != tokens || !c[0].HttpOnly {
		t.Fatalf("response cookie %+v, want shard_tokens=%s", c, tokens)
	}

	// With the tokens: a's read goes to its primary, b's to its replica.
	a0, b0 := readsOf(a), readsOf(b)
	if code, body, _ := do("GET", fmt.Sprintf("/users/%d", idA), tokens); code != 200 || body != "alice" {
		t.Fatalf("read of the write on a with its token: %d %q", code, body)
	}
	if code, body, resp := do("GET", fmt.Sprintf("/users/%d", idB), tokens); code != 200 || body != "bob" || resp.Header.Get("X-Shard-Tokens") != "" {
		t.Fatalf("read on b: %d %q, tokens %q", code, body, resp.Header.Get("X-Shard-Tokens"))
	}
	if da, dbb := readsOf(a).minus(a0), readsOf(b).minus(b0); da != (reads{1, 0}) || dbb != (reads{0, 1}) {
		t.Fatalf("reads routed: a %+v, b %+v; want a's on its primary (its replica is behind), b's on its replica", da, dbb)
	}
	if code, body, _ := do("GET", "/count", tokens); code != 200 || body != "2" {
		t.Fatalf("fan-out with the tokens counts %s (%d), want 2", body, code)
	}

	// Without them a's replica answers, and has not seen the write.
	a0 = readsOf(a)
	if code, _, _ := do("GET", fmt.Sprintf("/users/%d", idA), ""); code != 404 {
		t.Fatalf("read on a without the token: %d, want 404 from the paused replica", code)
	}
	if d := readsOf(a).minus(a0); d != (reads{0, 1}) {
		t.Fatalf("read without token routed %+v, want a's replica", d)
	}

	// Many goroutines of one request (WithSessions, no HTTP) write on a
	// and read their rows back at once, while others read on b: every
	// read of a write sees it (a's replica is still paused), b's reads
	// stay on b's replica, and the session's token covers every write.
	sctx := db.WithSessions(ctx, nil)
	b0 = readsOf(b)
	const G, N = 8, 5
	var wg sync.WaitGroup
	next := idB3
	ids := make([][]int64, G)
	for g := range G {
		for range N {
			next = keyOn(t, db, "a", next+1)
			ids[g] = append(ids[g], next)
		}
	}
	for g := range G {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for _, id := range ids[g] {
				rt, _ := db.For(Int64(id))
				if _, err := rt.Router.Exec(rt.Context(sctx), "INSERT INTO users VALUES ($1, $2, 'h')", id, rt.VShard); err != nil {
					t.Error(err)
					return
				}
				var name string // through a ctx of its own: the cluster's session is shared
				if err := rt.Router.QueryRow(rt.Context(sctx), "SELECT name FROM users WHERE id = $1", id).Scan(&name); err != nil {
					t.Errorf("user %d read back in the same session: %v", id, err)
				}
			}
		}()
		go func() {
			defer wg.Done()
			for range N {
				rt, _ := db.For(Int64(idB))
				var name string
				if err := rt.Router.QueryRow(rt.Context(sctx), "SELECT name FROM users WHERE id = $1", idB).Scan(&name); err != nil || name != "bob" {
					t.Errorf("read on b: %q, %v", name, err)
				}
			}
		}()
	}
	wg.Wait()
	if d := readsOf(b).minus(b0); d != (reads{0, G * N}) {
		t.Errorf("b's reads during the hammer routed %+v, want all %d on its replica", d, G*N)
	}
	st, changed, err := db.SessionTokens(sctx)
	if err != nil || !changed || len(st) != 1 || st["a"].LSN < sent["a"].LSN {
		t.Fatalf("SessionTokens after the hammer: %v, %v, %v", st, changed, err)
	}

	// Caught up, a's replica serves the token read.
	fa.ResumeReplay()
	replicaServing(t, a, fa)
	poll.Until(t, 30*time.Second, "a's monitor sees the replica past the token", func() bool {
		return a.Stats().Replicas[0].ReplayLSN >= sent["a"].LSN
	})
	a0 = readsOf(a)
	if code, body, _ := do("GET", fmt.Sprintf("/users/%d", idA), tokens); code != 200 || body != "alice" {
		t.Fatalf("token read after catch-up: %d %q", code, body)
	}
	if d := readsOf(a).minus(a0); d != (reads{0, 1}) {
		t.Fatalf("token read after catch-up routed %+v, want a's replica", d)
	}

	// Over MaxTokens, a token every replica has replayed goes first, even
	// the newest: a's (replayed) is dropped, b's older one (beyond b's
	// replica) is kept.
	h1, _ := NewHTTP(HTTPOptions{Router: db, MaxTokens: 1})
	req := httptest.NewRequestWithContext(ctx, "GET", "/", nil)
	req.Header.Set("X-Shard-Tokens", tokens+"&b=FFFFFFF/0@1000")
	if kept := h1.requestTokens(req); len(kept) != 1 || kept["b"].LSN != 0xFFFFFFF00000000 {
		t.Fatalf("MaxTokens 1 over a's replayed token and b's pending one kept %v, want b's", kept)
	}

	// A write on b merges b's token into the set; with MaxTokens 1 only
	// the newest (b's) is kept.
	code, body, resp = do("POST", fmt.Sprintf("/users/%d?name=bob2", idB2), tokens)
	if code != 200 {
		t.Fatalf("write on b: %d %s", code, body)
	}
	both, _ := ParseTokens(resp.Header.Get("X-Shard-Tokens"))
	if len(both) != 2 || both["a"] != sent["a"] || both["b"].IsZero() {
		t.Fatalf("after a write on b: tokens %v, want a's kept and b's", both)
	}
	rec := httptest.NewRecorder()
	req = httptest.NewRequestWithContext(ctx, "POST", fmt.Sprintf("/users/%d?name=bob3", idB3), nil)
	req.Header.Set("X-Shard-Tokens", tokens)
	h1.Middleware(mux).ServeHTTP(rec, req)
	one, _ := ParseTokens(rec.Header().Get("X-Shard-Tokens"))
	if rec.Code != 200 || len(one) != 1 || one["b"].IsZero() {
		t.Fatalf("MaxTokens 1 after a write on b: %d, tokens %v; want b's only", rec.Code, one)
	}
}

// When a's primary goes down between the handler's write and the
// response, the write position cannot be read: the response still
// carries a token for a, one that sends the user's reads there to the
// primary (dbrouter's choice: never a stale read), and b's token passes
// through unchanged.
func TestRealServersTokensPrimaryDown(t *testing.T) {
	fa := testinfra.PostgresExclusive(t) // stopped: servers of its own
	a := clusterOn(t, fa)
	b, _ := realCluster(t)
	const vs = 64
	db := mustNew(t, Options{VirtualShards: vs, Map: EvenMap(1, vs, "a", "b"), Clusters: map[string]*dbrouter.Router{"a": a, "b": b}})
	idA := keyOn(t, db, "a", 1)
	h, err := NewHTTP(HTTPOptions{Router: db})
	if err != nil {
		t.Fatal(err)
	}
	handler := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rt, _ := db.For(Int64(idA))
		if _, err := rt.Router.Exec(rt.Context(req.Context()), "INSERT INTO users VALUES ($1, $2, 'x')", idA, rt.VShard); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fa.StopPrimary(testinfra.StopFast)
		w.WriteHeader(http.StatusCreated)
	}))
	ctx, cancel := context.WithTimeout(context.Background(), testinfra.CallTimeout)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/", nil)
	bTok := "b=0/100@1767225600000"
	req.Header.Set("X-Shard-Tokens", bTok)
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	got, err := ParseTokens(rec.Header().Get("X-Shard-Tokens"))
	if rec.Code != http.StatusCreated || err != nil || len(got) != 2 || got["a"].LSN != ^dbrouter.LSN(0) || got["b"].String() != "0/100@1767225600000" {
		t.Fatalf("response %d with tokens %v (%v); want a's pinned to the primary (LSN FFFFFFFF/FFFFFFFF) and b's as sent", rec.Code, got, err)
	}
}
