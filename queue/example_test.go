package queue_test

import (
	"context"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

type Welcome struct {
	UserID int
	Email  string
}

func Example() {
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{}) // queuepg or queueredis in production
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
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
	ctx := context.Background()
	id, err := client.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42, Email: "ada@example.com"},
		queue.EnqueueOptions{UniqueKey: "welcome:42"})
	if err != nil {
		panic(err)
	}
	_, err = client.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42}, queue.EnqueueOptions{UniqueKey: "welcome:42"})
	fmt.Println("second enqueue:", err != nil)

	worker.Start(ctx)
	<-done
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	worker.Shutdown(sctx)
	job, _ := client.Job(ctx, "emails", id)
	fmt.Println("state:", job.State)
	// Output:
	// second enqueue: true
	// welcome ada@example.com (user 42), attempt 1
	// state: done
}
