package queueredis

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
)

// On one Redis a Publish is one script (one round trip) whatever the
// number of subscribers, and the subscriptions are a set per topic.
func TestPublishIsOneScript(t *testing.T) {
	r := testinfra.Redis(t)
	var trips testinfra.RoundTrips
	r.Client.AddHook(&trips)
	b := newBackend(t, Options{Client: r.Client})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	qs := []string{"a", "b", "c"}
	for _, q := range qs {
		if err := c.Subscribe(ctx, "note.created", q); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := r.Client.SMembers(ctx, "{queue:topic:note.created}:subscribers").Result(); err != nil || len(m) != 3 {
		t.Fatalf("the topic's subscriber set: %v %v", m, err)
	}
	if _, err := c.Publish(ctx, "note.created", 1, queue.PublishOptions{}); err != nil { // loads the script
		t.Fatal(err)
	}
	trips.Reset()
	p, err := c.Publish(ctx, "note.created", 2, queue.PublishOptions{})
	if err != nil || !slices.Equal(p.Queues, qs) {
		t.Fatalf("Publish = %+v %v", p, err)
	}
	if n := trips.Load(); n != 1 {
		t.Fatalf("Publish to 3 subscribers took %d round trips, want 1", n)
	}
	for _, q := range qs {
		if job, err := r.Client.HGet(ctx, "{queue:"+q+"}:job:"+p.ID, "kind").Result(); err != nil || job != "note.created" {
			t.Fatalf("the event's job hash in %s: %q %v", q, job, err)
		}
	}
}

// failOnce is a go-redis hook that fails the first script run on a key
// containing target, before it reaches Redis, as a node that went away
// would.
type failOnce struct {
	target string
	done   atomic.Bool
}

var errInjected = errors.New("injected: node unreachable")

func (f *failOnce) DialHook(next redis.DialHook) redis.DialHook { return next }

func (f *failOnce) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n == "evalsha" || n == "eval" {
			for _, a := range cmd.Args() {
				if s, ok := a.(string); ok && strings.Contains(s, f.target) && f.done.CompareAndSwap(false, true) {
					cmd.SetErr(errInjected)
					return errInjected
				}
			}
		}
		return next(ctx, cmd)
	}
}

func (f *failOnce) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// On a Redis Cluster each subscriber queue gets its own script: when one
// fails, the queues before it hold the event and the others do not, and
// publishing again with the event's id completes the delivery without a
// duplicate.
func TestPublishClusterRetryCompletesDelivery(t *testing.T) {
	c := testinfra.RedisCluster(t)
	client := c.Server.NewClient()
	defer client.Close()
	hook := &failOnce{target: "{" + c.Prefix + "queue:b}:"}
	client.AddHook(hook)
	b := newBackend(t, Options{Client: client, Prefix: c.Prefix + "queue"})
	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	qs := []string{"a", "b", "c"}
	for _, q := range qs {
		if err := jobs.Subscribe(ctx, "order.paid", q); err != nil {
			t.Fatal(err)
		}
	}
	p, err := jobs.Publish(ctx, "order.paid", map[string]int{"order": 7}, queue.PublishOptions{})
	if !errors.Is(err, errInjected) || p.ID == "" || !slices.Equal(p.Queues, []string{"a"}) {
		t.Fatalf("Publish with b's node failing = %+v %v, want the injected error, the id, and the event in a only", p, err)
	}
	held := func(q string) int64 {
		t.Helper()
		cnt, err := jobs.Counts(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		return cnt.Pending
	}
	if held("a") != 1 || held("b") != 0 || held("c") != 0 {
		t.Fatalf("after the partial failure: a %d, b %d, c %d; want 1, 0, 0", held("a"), held("b"), held("c"))
	}
	again, err := jobs.Publish(ctx, "order.paid", map[string]int{"order": 7}, queue.PublishOptions{ID: p.ID})
	if err != nil || !slices.Equal(again.Queues, qs) {
		t.Fatalf("the retried Publish = %+v %v, want the event in every queue", again, err)
	}
	for _, q := range qs {
		if n := held(q); n != 1 {
			t.Fatalf("%s holds %d jobs after the retry, want the event once", q, n)
		}
		if m, err := jobs.Job(ctx, q, p.ID); err != nil || m.Kind != "order.paid" {
			t.Fatalf("the event in %s: %+v %v", q, m, err)
		}
	}
}

// Publish and the subscription calls fail, within Timeout, against a
// paused and a stopped Redis, and work again once it is back.
func TestPublishRedisDown(t *testing.T) {
	r := testinfra.Redis(t)
	b := newBackend(t, Options{Client: r.Client, Timeout: 300 * time.Millisecond})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	ctx := context.Background()
	if err := c.Subscribe(ctx, "t", "q"); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Publish":     func() error { _, err := c.Publish(ctx, "t", 1, queue.PublishOptions{}); return err },
		"Subscribe":   func() error { return c.Subscribe(ctx, "t", "q2") },
		"Unsubscribe": func() error { return c.Unsubscribe(ctx, "t", "q2") },
		"Subscribers": func() error { _, err := c.Subscribers(ctx, "t"); return err },
	}
	failAll := func(state string) {
		t.Helper()
		for name, call := range calls {
			err := call()
			if err == nil {
				t.Fatalf("%s with Redis %s succeeded", name, state)
			}
			t.Logf("%s with Redis %s: %v", name, state, err)
		}
	}
	r.Pause()
	failAll("paused")
	r.Resume()
	r.Stop()
	failAll("stopped")
	r.Start() // empty: the subscription is gone
	waitFor(t, "Subscribe working again", func() bool { return c.Subscribe(ctx, "t", "q") == nil })
	if p, err := c.Publish(ctx, "t", 2, queue.PublishOptions{}); err != nil || !slices.Equal(p.Queues, []string{"q"}) {
		t.Fatalf("Publish after the restart = %+v %v", p, err)
	}
}
