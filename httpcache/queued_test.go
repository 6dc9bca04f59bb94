package httpcache_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/httpcache"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queuepg"
	"github.com/scalekit-go/scalekit/retry"
)

// TestTransactionalPurge: a purge enqueued in the transaction that
// changes the data is delivered when that transaction commits, never when
// it rolls back, and reaches Varnish even though Varnish was not
// answering at the commit.
func TestTransactionalPurge(t *testing.T) {
	o := newOrigin(t)
	v := testinfra.Varnish(t, o.srv.Listener.Addr().String())
	pg := testinfra.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := queuepg.New(queuepg.Options{Pool: pg.Primary, Prefix: "purgeq"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Primary.Exec(ctx, `CREATE TABLE users (id text PRIMARY KEY, name text)`); err != nil {
		t.Fatal(err)
	}
	update := func(id string, commit bool) string {
		tx, err := pg.Primary.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `INSERT INTO users VALUES ($1, 'new') ON CONFLICT (id) DO UPDATE SET name = 'newer'`, id); err != nil {
			t.Fatal(err)
		}
		jobID, err := b.EnqueueTx(ctx, tx, "purges", httpcache.PurgeKind, httpcache.PurgeArgs{Keys: []string{"user:" + id}}, queue.EnqueueOptions{MaxAttempts: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return jobID
	}
	for _, p := range []string{"users/1", "users/2", "posts"} {
		fetch(t, v.URL()+p)
	}

	purger, err := httpcache.NewVarnishPurger(httpcache.VarnishPurgerOptions{URL: v.URL(), Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"purges": {}},
		Backoff: retry.Constant{D: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := httpcache.HandlePurges(w, purger); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	// Rolled back: no job.
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	if _, err := c.Job(ctx, "purges", update("2", false)); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("the rolled-back purge: %v, want ErrNotFound", err)
	}

	// Varnish hangs at the commit: the purge fails and is retried.
	if err := v.Pause(); err != nil {
		t.Fatal(err)
	}
	jobID := update("1", true)
	poll.Until(t, 60*time.Second, "a failed purge attempt", func() bool { return purger.Stats().Failures >= 1 })
	if err := v.Resume(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 60*time.Second, "the purge job done", func() bool {
		j, err := c.Job(ctx, "purges", jobID)
		return err == nil && j.State == queue.Done
	})
	want := map[string]string{"users/1": "MISS", "users/2": "HIT", "posts": "MISS"}
	for _, p := range []string{"users/1", "users/2", "posts"} {
		if r := fetch(t, v.URL()+p); r.h.Get("X-Cache") != want[p] {
			t.Fatalf("after the queued purge of user:1, %s: %s, want %s", p, r.h.Get("X-Cache"), want[p])
		}
	}
}
