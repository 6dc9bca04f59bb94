package cachequeue_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachequeue"
	"github.com/scalekit-go/scalekit/cache/cacheredis"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/retry"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// TestInvalidationCommitsWithTheWrite: an invalidation enqueued in the
// write's transaction does nothing when it rolls back; committed while
// Redis is paused, it fails, is retried by the queue, and reaches every
// instance once Redis answers: the other instance loads the new row.
func TestInvalidationCommitsWithTheWrite(t *testing.T) {
	r := testinfra.Redis(t)
	pg := testinfra.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newCache := func() *cache.Cache[string] {
		store, err := cacheredis.New(cacheredis.Options{Client: r.Client, Timeout: testinfra.CallTimeout, Prefix: "cq"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := cache.New[string](cache.Options{TTL: time.Hour, Store: store})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := newCache(), newCache() // a runs the worker; b is another instance
	if _, err := pg.Primary.Exec(ctx, `CREATE TABLE users (id text PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Primary.Exec(ctx, `INSERT INTO users VALUES ('1', 'old')`); err != nil {
		t.Fatal(err)
	}
	var loads atomic.Int32
	load := func(ctx context.Context, id string) (string, error) {
		loads.Add(1)
		var name string
		err := pg.Primary.QueryRow(ctx, `SELECT name FROM users WHERE id = $1`, id).Scan(&name)
		return name, err
	}
	for _, c := range []*cache.Cache[string]{a, b} {
		if v, err := c.Namespace("user").Get(ctx, "1", load); err != nil || v != "old" {
			t.Fatalf("Get = %q, %v", v, err)
		}
	}

	qb, err := queuepg.New(queuepg.Options{Pool: pg.Primary, Prefix: "invq"})
	if err != nil {
		t.Fatal(err)
	}
	defer qb.Close()
	if err := qb.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rename := func(name string, commit bool) string {
		tx, err := pg.Primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `UPDATE users SET name = $1 WHERE id = '1'`, name); err != nil {
			t.Fatal(err)
		}
		id, err := qb.EnqueueTx(ctx, tx, "invalidations", "users", cachequeue.Args{IDs: map[string][]string{"user": {"1"}}}, queue.EnqueueOptions{MaxAttempts: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return id
	}
	client, _ := queue.NewClient(queue.ClientOptions{Backend: qb})
	if _, err := client.Job(ctx, "invalidations", rename("rolled back", false)); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("the rolled-back invalidation: %v, want ErrNotFound", err)
	}

	w, err := queue.NewWorker(queue.WorkerOptions{Backend: qb, Queues: map[string]queue.Options{"invalidations": {}},
		Backoff: retry.Constant{D: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cachequeue.Handle(w, "users", a); err != nil {
		t.Fatal(err)
	}

	r.Pause()
	jobID := rename("new", true)
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	poll.Until(t, 60*time.Second, "a failed invalidation attempt", func() bool {
		j, err := client.Job(ctx, "invalidations", jobID)
		return err == nil && j.Attempt >= 1 && j.State == queue.Retry
	})
	r.Resume()
	poll.Until(t, 60*time.Second, "the invalidation job done", func() bool {
		j, err := client.Job(ctx, "invalidations", jobID)
		return err == nil && j.State == queue.Done
	})
	before := loads.Load()
	poll.Until(t, 30*time.Second, "the other instance to see the new row", func() bool {
		v, err := b.Namespace("user").Get(ctx, "1", load)
		return err == nil && v == "new"
	})
	if loads.Load() == before {
		t.Fatal("the other instance served the new row without loading it")
	}
}

func TestApply(t *testing.T) {
	ctx := context.Background()
	c, err := cache.New[string](cache.Options{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var loads atomic.Int32
	load := func(ctx context.Context, k string) (string, error) { loads.Add(1); return k, nil }
	get := func() {
		c.Get(ctx, "plain", load)
		c.Namespace("user").Get(ctx, "1", load)
		c.Namespace("user").Get(ctx, "2", load)
		c.Namespace("posts").Get(ctx, "p", load)
	}
	get()
	get()
	if n := loads.Load(); n != 4 {
		t.Fatalf("%d loads, want 4", n)
	}
	if err := cachequeue.Apply(ctx, c, cachequeue.Args{Keys: []string{"plain"}, IDs: map[string][]string{"user": {"1"}}, Namespaces: []string{"posts"}}); err != nil {
		t.Fatal(err)
	}
	get()
	if n := loads.Load(); n != 7 { // plain, user 1, posts p again; user 2 still cached
		t.Fatalf("%d loads after the invalidation, want 7", n)
	}
	if err := cachequeue.Handle[string](nil, "k", nil); err == nil {
		t.Fatal("Handle with no cache: no error")
	}
}
