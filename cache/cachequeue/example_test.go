package cachequeue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/cache/cachequeue"
	"github.com/scalekit-go/scalekit/queue"
)

// An invalidation as a job: with queuepg, enqueued by EnqueueTx in the
// write's transaction; here on the in-memory queue.
func Example() {
	ctx := context.Background()
	users, _ := cache.New[string](cache.Options{TTL: time.Hour}) // a Store (cacheredis) in production
	defer users.Close()
	name := "Ada"
	load := func(ctx context.Context, id string) (string, error) { return name, nil }
	v, _ := users.Namespace("user").Get(ctx, "1", load)
	fmt.Println(v)

	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{}) // queuepg in production
	worker, _ := queue.NewWorker(queue.WorkerOptions{Backend: backend, Queues: map[string]queue.Options{"invalidations": {}}})
	if err := cachequeue.Handle(worker, "users", users); err != nil {
		fmt.Println(err)
	}
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})

	name = "Ada Lovelace" // the write; then its invalidation
	id, _ := client.Enqueue(ctx, "invalidations", "users", cachequeue.Args{IDs: map[string][]string{"user": {"1"}}}, queue.EnqueueOptions{})
	worker.Start(ctx)
	defer worker.Close()
	for {
		if j, err := client.Job(ctx, "invalidations", id); err == nil && j.State == queue.Done {
			break
		}
		time.Sleep(time.Millisecond)
	}
	v, _ = users.Namespace("user").Get(ctx, "1", load)
	fmt.Println(v)
	// Output:
	// Ada
	// Ada Lovelace
}
