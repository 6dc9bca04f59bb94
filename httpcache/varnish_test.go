package httpcache_test

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/httpcache"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// origin is a small service behind Varnish: GET /users/{id} and GET
// /posts from a cache.Cache, with the caching fields httpcache derives
// from the entries, ETags, 304s and surrogate keys; calls counts the
// requests that reached it, per path.
type origin struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls map[string]int
}

func (o *origin) count(path string) int { o.mu.Lock(); defer o.mu.Unlock(); return o.calls[path] }

func newOrigin(t *testing.T) *origin {
	o := &origin{calls: map[string]int{}}
	users, err := cache.New[string](cache.Options{TTL: time.Hour, StaleFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { users.Close() })
	keys, err := httpcache.NewKeys(httpcache.KeysOptions{})
	if err != nil {
		t.Fatal(err)
	}
	policy := httpcache.Policy{BrowserMaxAge: time.Second}
	load := func(ctx context.Context, id string) (string, error) { return "user " + id, nil }
	user := func(w http.ResponseWriter, r *http.Request, id string) (string, bool) {
		name, info, err := users.GetInfo(r.Context(), id, load)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return "", false
		}
		httpcache.AddKeys(r.Context(), "user:"+id)
		if err := policy.Write(w.Header(), info, time.Now()); err != nil {
			t.Error(err)
		}
		return name, true
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		name, ok := user(w, r, r.PathValue("id"))
		if !ok {
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		if httpcache.Conditional(w, r, httpcache.Validators{ETag: httpcache.HashETag([]byte(name))}) {
			return
		}
		io.WriteString(w, name)
	})
	mux.HandleFunc("GET /posts", func(w http.ResponseWriter, r *http.Request) {
		httpcache.AddKeys(r.Context(), "posts")
		var b strings.Builder
		for _, id := range []string{"1", "2"} {
			name, ok := user(w, r, id) // the last Policy.Write wins: the shortest-lived of the same TTL
			if !ok {
				return
			}
			fmt.Fprintf(&b, "post by %s\n", name)
		}
		io.WriteString(w, b.String())
	})
	o.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.calls[r.URL.Path]++
		o.mu.Unlock()
		keys.Middleware(mux).ServeHTTP(w, r)
	}))
	t.Cleanup(o.srv.Close)
	return o
}

type edgeResp struct {
	status int
	h      http.Header
	body   string
}

func fetch(t *testing.T, url string, hdr ...string) edgeResp {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return edgeResp{resp.StatusCode, resp.Header, string(b)}
}

func TestVarnishHitAndConditional(t *testing.T) {
	o := newOrigin(t)
	v := testinfra.Varnish(t, o.srv.Listener.Addr().String())
	url := v.URL() + "users/1"

	first := fetch(t, url)
	if first.status != 200 || first.body != "user 1" || first.h.Get("X-Cache") != "MISS" {
		t.Fatalf("first GET: %d %q %v", first.status, first.body, first.h)
	}
	cc := first.h.Get("Cache-Control")
	if !strings.HasPrefix(cc, "public, max-age=1, s-maxage=") {
		t.Fatalf("Cache-Control through Varnish: %q", cc)
	}
	// Hits until Varnish's Age passes a second: the origin is never asked again.
	poll.Until(t, 30*time.Second, "a hit with Age > 0", func() bool {
		r := fetch(t, url)
		if r.status != 200 || r.body != "user 1" || r.h.Get("X-Cache") != "HIT" {
			t.Fatalf("second GET: %d %q %v", r.status, r.body, r.h)
		}
		age, _ := strconv.Atoi(r.h.Get("Age"))
		return age > 0
	})
	if n := o.count("/users/1"); n != 1 {
		t.Fatalf("origin called %d times, want 1", n)
	}

	// A conditional GET with the current ETag: Varnish answers 304 from
	// its copy, with no body and the caching fields.
	etag := first.h.Get("Etag")
	r := fetch(t, url, "If-None-Match", etag)
	if r.status != 304 || r.body != "" || r.h.Get("Etag") != etag || r.h.Get("Cache-Control") != cc {
		t.Fatalf("conditional GET: %d %q %v", r.status, r.body, r.h)
	}
	if r := fetch(t, url, "If-None-Match", `"other"`); r.status != 200 || r.body != "user 1" {
		t.Fatalf("GET with a stale ETag: %d %q", r.status, r.body)
	}
	if n := o.count("/users/1"); n != 1 {
		t.Fatalf("origin called %d times, want 1", n)
	}

	// The origin itself answers a revalidation with 304 too (Varnish
	// revalidates its stale copies with the ETag).
	direct := fetch(t, o.srv.URL+"/users/1", "If-None-Match", etag)
	if direct.status != 304 || direct.body != "" || direct.h.Get("Surrogate-Key") != "user:1" {
		t.Fatalf("origin's 304: %d %q %v", direct.status, direct.body, direct.h)
	}
}

func TestVarnishPurgeByKey(t *testing.T) {
	o := newOrigin(t)
	v := testinfra.Varnish(t, o.srv.Listener.Addr().String())
	paths := []string{"users/1", "users/2", "posts"}
	for _, p := range paths {
		fetch(t, v.URL()+p)
	}
	for _, p := range paths {
		if r := fetch(t, v.URL()+p); r.h.Get("X-Cache") != "HIT" {
			t.Fatalf("%s not cached: %v", p, r.h)
		}
	}
	purger, err := httpcache.NewVarnishPurger(httpcache.VarnishPurgerOptions{URL: v.URL()})
	if err != nil {
		t.Fatal(err)
	}
	if err := purger.Purge(context.Background(), []string{"user:1"}); err != nil {
		t.Fatal(err)
	}
	// user:1 tags /users/1 and /posts; /users/2 stays cached.
	want := map[string]string{"users/1": "MISS", "users/2": "HIT", "posts": "MISS"}
	for _, p := range paths {
		if r := fetch(t, v.URL()+p); r.h.Get("X-Cache") != want[p] || r.status != 200 {
			t.Fatalf("after purging user:1, %s: %d %s, want %s", p, r.status, r.h.Get("X-Cache"), want[p])
		}
	}
	if a, b, c := o.count("/users/1"), o.count("/users/2"), o.count("/posts"); a != 2 || b != 1 || c != 2 {
		t.Fatalf("origin calls users/1 %d, users/2 %d, posts %d; want 2, 1, 2", a, b, c)
	}
	if st := purger.Stats(); st.Purges != 1 || st.Requests != 1 || st.Failures != 0 {
		t.Fatalf("purger stats %+v", st)
	}

	// Varnish down: the purge fails (after its retries) with ErrPurge;
	// back up, it goes through.
	if err := v.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := purger.Purge(context.Background(), []string{"user:2"}); !errors.Is(err, httpcache.ErrPurge) {
		t.Fatalf("purge with Varnish stopped: %v, want ErrPurge", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 30*time.Second, "a purge to go through once Varnish is back", func() bool {
		return purger.Purge(ctx, []string{"user:2"}) == nil // the breaker may still be open for a moment
	})
}

// TestVarnishStaleWhileRevalidate: once the copy is stale, Varnish serves
// it at once to every client while one refetch runs; the refetch's answer
// replaces it.
func TestVarnishStaleWhileRevalidate(t *testing.T) {
	var calls atomic.Int32
	release := make(chan struct{})
	refetching := make(chan struct{}, 16)
	org := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n > 1 {
			refetching <- struct{}{}
			<-release // the refetch is slow
		}
		c := httpcache.Control{Public: true, MaxAge: time.Second, StaleWhileRevalidate: time.Minute}
		if err := c.Write(w.Header(), time.Now()); err != nil {
			t.Error(err)
		}
		fmt.Fprintf(w, "version %d", n)
	}))
	defer org.Close()
	v := testinfra.Varnish(t, org.Listener.Addr().String())
	url := v.URL() + "swr"
	if r := fetch(t, url); r.body != "version 1" {
		t.Fatalf("first GET: %q", r.body)
	}
	// Wait (by Varnish's own Age) for the copy to go stale.
	poll.Until(t, 30*time.Second, "the copy to pass max-age", func() bool {
		r := fetch(t, url)
		age, _ := strconv.Atoi(r.h.Get("Age"))
		return age >= 2
	})
	// 10 clients while the refetch hangs: all served the stale copy.
	var wg sync.WaitGroup
	bodies := make(chan string, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url)
			if err != nil {
				bodies <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			bodies <- string(b)
		}()
	}
	wg.Wait()
	close(bodies)
	for b := range bodies {
		if b != "version 1" {
			t.Fatalf("a client got %q while the refetch runs, want the stale version 1", b)
		}
	}
	select {
	case <-refetching:
	case <-time.After(30 * time.Second):
		t.Fatal("no refetch started")
	}
	close(release)
	poll.Until(t, 30*time.Second, "the refetched version", func() bool { return fetch(t, url).body == "version 2" })
	if n := calls.Load(); n != 2 {
		t.Fatalf("origin called %d times, want 2 (one refetch for all the stale hits)", n)
	}
}
