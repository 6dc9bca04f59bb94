package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

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

// testConfig is a short, quiet run at 200 req/s against url. Its requests
// may take up to a minute: the tests check what the fake answers, not how
// fast, and CI once saw a 2 s timeout pass for 275 requests on a machine
// loaded far past its 2 cores (TestRunCarriesNewestToken).
func testConfig(url string, mixSpec string) config {
	cfg := defaultConfig()
	cfg.URL = url
	cfg.Duration = time.Second
	cfg.Rate = 200
	cfg.Quiet = true
	cfg.Timeout = time.Minute
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
