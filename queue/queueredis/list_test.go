package queueredis

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// Jobs stored before the ids ZSET existed (an older version of this
// package: no ids entries, no mark) are listed: the first List of the
// queue adds them, in every state, once.
func TestListAddsOlderJobs(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	var want []string
	enqueue := func(o queue.EnqueueOptions) string {
		t.Helper()
		id, err := c.Enqueue(ctx, "old", "k", nil, o)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
		return id
	}
	for range 3 {
		enqueue(queue.EnqueueOptions{})
	}
	ls, err := b.Fetch(ctx, queue.FetchRequest{Queue: "old", Max: 3, Lease: time.Minute, Order: highFirst})
	if err != nil || len(ls) != 3 {
		t.Fatal(ls, err)
	}
	if err := b.Complete(ctx, ls[0], nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Fail(ctx, ls[1], "x", time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if err := b.Fail(ctx, ls[2], "x", time.Now().Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	enqueue(queue.EnqueueOptions{Delay: time.Hour})
	enqueue(queue.EnqueueOptions{Priority: queue.Low})
	if err := c.Cancel(ctx, "old", enqueue(queue.EnqueueOptions{})); err != nil {
		t.Fatal(err)
	}
	enqueue(queue.EnqueueOptions{}) // stays active
	if _, err := b.Fetch(ctx, queue.FetchRequest{Queue: "old", Max: 1, Lease: time.Minute, Order: highFirst}); err != nil {
		t.Fatal(err)
	}
	// As an older version leaves them.
	if err := r.Client.Del(ctx, "{queue:old}:ids", "{queue:old}:ids:built").Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	slices.Reverse(want)
	for range 2 {
		p, err := c.List(ctx, queue.ListRequest{Queue: "old"})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range p.Jobs {
			got = append(got, m.ID)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("List = %v, want %v: every job, older ones too", got, want)
		}
	}
	if n, _ := r.Client.Exists(ctx, "{queue:old}:ids:built").Result(); n != 1 {
		t.Fatal("the mark that ids was filled is not set")
	}
}
