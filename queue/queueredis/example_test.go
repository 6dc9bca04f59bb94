package queueredis_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

// redisAddr starts (once) a throwaway redis-server for the examples; in a
// service this is your Redis's address.
func redisAddr() string {
	addr, err := testinfra.SharedRedis()
	if err != nil {
		panic(err)
	}
	return addr
}

type Welcome struct {
	UserID int
	Email  string
}

func Example() {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(), ContextTimeoutEnabled: true})
	defer client.Close()
	backend, err := queueredis.New(queueredis.Options{Client: client, Prefix: "example"})
	if err != nil {
		panic(err)
	}
	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	ctx := context.Background()
	id, err := jobs.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42, Email: "ada@example.com"},
		queue.EnqueueOptions{UniqueKey: "welcome:42"})
	if err != nil {
		panic(err)
	}
	again, err := jobs.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42}, queue.EnqueueOptions{UniqueKey: "welcome:42"})
	fmt.Println("second enqueue is a duplicate of the first:", errors.Is(err, queue.ErrDuplicate) && again == id)

	// Usually another process: every worker pointing at the same Redis
	// and prefix shares the queue.
	worker, _ := queue.NewWorker(queue.WorkerOptions{
		Backend: backend,
		Queues:  map[string]queue.Options{"emails": {Concurrency: 4}},
	})
	done := make(chan struct{})
	queue.Handle(worker, "email:welcome", func(ctx context.Context, j *queue.Job[Welcome]) error {
		fmt.Printf("welcome %s (user %d), attempt %d\n", j.Args.Email, j.Args.UserID, j.Attempt)
		close(done)
		return nil
	})
	worker.Start(ctx)
	<-done
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	worker.Shutdown(sctx)
	job, _ := jobs.Job(ctx, "emails", id)
	fmt.Println("state:", job.State)
	// Output:
	// second enqueue is a duplicate of the first: true
	// welcome ada@example.com (user 42), attempt 1
	// state: done
}

// On Redis Cluster every key of one queue shares the hash tag
// {prefix:queue}, so each queue lives on one shard and different queues
// spread over the shards.
func ExampleNew_cluster() {
	client := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:                 []string{"redis-0:6379", "redis-1:6379", "redis-2:6379"},
		ContextTimeoutEnabled: true, // or New refuses the client: a paused node would hold calls for ReadTimeout
	})
	defer client.Close()
	backend, err := queueredis.New(queueredis.Options{Client: client, Prefix: "jobs", Timeout: time.Second})
	if err != nil {
		panic(err)
	}
	_ = backend // queue.NewClient and queue.NewWorker take it as their Backend
}
