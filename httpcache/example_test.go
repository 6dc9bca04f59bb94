package httpcache_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/httpcache"
	"github.com/scalekit-go/scalekit/queue"
)

type user struct {
	ID      string
	Name    string
	Version int
}

// A handler whose caching headers follow its cache entry: max-age is what
// is left of the value's freshness, stale-while-revalidate its stale
// window, and a revalidation with the current ETag is answered 304.
func Example() {
	clk := clock.NewManual(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	users, _ := cache.New[user](cache.Options{TTL: time.Minute, StaleFor: 30 * time.Second, NoJitter: true, Clock: clk})
	defer users.Close()
	policy := httpcache.Policy{BrowserMaxAge: 10 * time.Second} // CDN: the whole freshness; browsers: 10s

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, info, err := users.GetInfo(r.Context(), r.PathValue("id"), func(ctx context.Context, id string) (user, error) {
			return user{ID: id, Name: "Ada", Version: 3}, nil // the database read
		})
		if err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		if err := policy.Write(w.Header(), info, clk.Now()); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if httpcache.Conditional(w, r, httpcache.Validators{ETag: httpcache.VersionETag(fmt.Sprint(u.Version))}) {
			return // 304: no body
		}
		fmt.Fprintf(w, `{"id":%q,"name":%q}`, u.ID, u.Name)
	})
	mux := http.NewServeMux()
	mux.Handle("GET /users/{id}", handler)

	serve := func(etag string) {
		r := httptest.NewRequest("GET", "/users/1", nil)
		if etag != "" {
			r.Header.Set("If-None-Match", etag)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(w.Code, w.Header().Get("Cache-Control"), w.Header().Get("Etag"), w.Body.Len())
	}
	serve("")
	clk.Add(48 * time.Second) // 12s of freshness left
	serve(`"3"`)
	// Output:
	// 200 public, max-age=10, s-maxage=60, stale-while-revalidate=30 "3" 23
	// 304 public, max-age=10, s-maxage=12, stale-while-revalidate=30 "3" 0
}

// Responses tagged with the data they show, and a purge of one key when
// that data changes (an in-process stand-in for the CDN's purge API).
func ExampleKeys() {
	keys, _ := httpcache.NewKeys(httpcache.KeysOptions{}) // Surrogate-Key
	mux := http.NewServeMux()
	mux.HandleFunc("GET /posts", func(w http.ResponseWriter, r *http.Request) {
		httpcache.AddKeys(r.Context(), "posts")
		for _, author := range []string{"1", "2", "1"} {
			httpcache.AddKeys(r.Context(), "user:"+author) // sent once each
		}
		fmt.Fprint(w, "[...]")
	})
	w := httptest.NewRecorder()
	keys.Middleware(mux).ServeHTTP(w, httptest.NewRequest("GET", "/posts", nil))
	fmt.Println("Surrogate-Key:", w.Header().Get("Surrogate-Key"))

	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println(r.Method, r.URL.Path, "Surrogate-Key:", r.Header.Get("Surrogate-Key"))
	}))
	defer cdn.Close()
	purger, _ := httpcache.NewHTTPPurger(httpcache.HTTPPurgerOptions{URL: cdn.URL + "/purge"})
	if err := purger.Purge(context.Background(), []string{"user:1"}); err != nil {
		fmt.Println(err)
	}
	// Output:
	// Surrogate-Key: posts user:1 user:2
	// POST /purge Surrogate-Key: user:1
}

// Purges that go through the queue: enqueued where the data changes (in
// its transaction with queuepg's EnqueueTx) and retried until the CDN
// takes them.
func ExampleHandlePurges() {
	purged := make(chan string, 1)
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		purged <- r.Header.Get("Surrogate-Key")
	}))
	defer cdn.Close()
	purger, _ := httpcache.NewHTTPPurger(httpcache.HTTPPurgerOptions{URL: cdn.URL})

	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{}) // queuepg in production
	worker, _ := queue.NewWorker(queue.WorkerOptions{Backend: backend, Queues: map[string]queue.Options{"purges": {}}})
	if err := httpcache.HandlePurges(worker, purger); err != nil {
		fmt.Println(err)
	}
	ctx := context.Background()
	worker.Start(ctx)
	defer worker.Close()

	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	// With queuepg: pg.EnqueueTx(ctx, tx, "purges", httpcache.PurgeKind, ...) before tx.Commit.
	if _, err := client.Enqueue(ctx, "purges", httpcache.PurgeKind, httpcache.PurgeArgs{Keys: []string{"user:1", "posts"}}, queue.EnqueueOptions{}); err != nil {
		fmt.Println(err)
	}
	fmt.Println("purged:", <-purged)
	// Output:
	// purged: user:1 posts
}
