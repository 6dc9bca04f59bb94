package queue_test

import (
	"context"
	"errors"
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

type requestIDKey struct{}

// A client middleware copies the request id of the enqueueing request into
// the job's metadata; a worker middleware puts it back into the
// handler's ctx (for its logger, say). The first middleware is the
// outermost.
func Example_middleware() {
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
		func(next queue.EnqueueFunc) queue.EnqueueFunc {
			return func(ctx context.Context, m *queue.Message) error {
				if rid, ok := ctx.Value(requestIDKey{}).(string); ok {
					if m.Metadata == nil {
						m.Metadata = map[string]string{}
					}
					m.Metadata["request_id"] = rid
				}
				return next(ctx, m)
			}
		},
	}})
	worker, _ := queue.NewWorker(queue.WorkerOptions{
		Backend: backend,
		Queues:  map[string]queue.Options{"emails": {}},
		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{
			func(next queue.AttemptFunc) queue.AttemptFunc { // outermost: sees every attempt's outcome
				return func(ctx context.Context, a queue.Attempt) error {
					err := next(ctx, a)
					fmt.Printf("attempt %d of %s: error %v\n", a.Attempt, a.Kind, err)
					return err
				}
			},
			func(next queue.AttemptFunc) queue.AttemptFunc {
				return func(ctx context.Context, a queue.Attempt) error {
					return next(context.WithValue(ctx, requestIDKey{}, a.Metadata()["request_id"]), a)
				}
			},
		},
	})
	done := make(chan struct{})
	queue.Handle(worker, "email:welcome", func(ctx context.Context, j *queue.Job[Welcome]) error {
		fmt.Printf("welcome %s: request %v, tenant %s\n", j.Args.Email, ctx.Value(requestIDKey{}), j.Metadata["tenant"])
		close(done)
		return nil
	})
	ctx := context.WithValue(context.Background(), requestIDKey{}, "req-7f3a")
	id, err := client.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 42, Email: "ada@example.com"},
		queue.EnqueueOptions{Metadata: map[string]string{"tenant": "acme"}})
	if err != nil {
		panic(err)
	}
	worker.Start(context.Background())
	<-done
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	worker.Shutdown(sctx)
	job, _ := client.Job(context.Background(), "emails", id)
	fmt.Println("stored:", job.Metadata)
	// Output:
	// welcome ada@example.com: request req-7f3a, tenant acme
	// attempt 1 of email:welcome: error <nil>
	// stored: map[request_id:req-7f3a tenant:acme]
}

func ExampleClient_EnqueueMany() {
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{}) // queuepg or queueredis in production
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	ctx := context.Background()
	_, _ = client.Enqueue(ctx, "emails", "email:welcome", Welcome{UserID: 1}, queue.EnqueueOptions{UniqueKey: "welcome:1", ID: "w1"})

	// One round trip for the whole batch; a duplicate fails only itself.
	results, err := client.EnqueueMany(ctx,
		queue.EnqueueRequest{Queue: "emails", Kind: "email:welcome", Args: Welcome{UserID: 1},
			Options: queue.EnqueueOptions{UniqueKey: "welcome:1"}},
		queue.EnqueueRequest{Queue: "emails", Kind: "email:welcome", Args: Welcome{UserID: 2},
			Options: queue.EnqueueOptions{UniqueKey: "welcome:2", ID: "w2"}},
		queue.EnqueueRequest{Queue: "emails", Kind: "email:welcome", Args: Welcome{UserID: 2},
			Options: queue.EnqueueOptions{UniqueKey: "welcome:2"}},
	)
	if err != nil {
		panic(err) // a bad job (nothing stored) or the backend failed
	}
	for i, r := range results {
		if errors.Is(r.Err, queue.ErrDuplicate) {
			fmt.Printf("job %d: duplicate of %s\n", i, r.ID)
			continue
		}
		fmt.Printf("job %d: %v\n", i, r.Err)
	}

	_, err = client.EnqueueMany(ctx, queue.EnqueueRequest{Queue: "emails", Kind: "email:welcome", Args: Welcome{UserID: 3}},
		queue.EnqueueRequest{Queue: "emails", Kind: "bad kind"})
	fmt.Println(err)
	// Output:
	// job 0: duplicate of w1
	// job 1: <nil>
	// job 2: duplicate of w2
	// queue: EnqueueMany: jobs[1]: queue: invalid: kind "bad kind" must be 1 to 100 letters, digits, '_', '.', ':' or '-'
}

// List reads a queue's jobs a page at a time, newest first, with the
// queue's totals per state; Next continues where the page ended.
func ExampleClient_List() {
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	ctx := context.Background()
	for i := range 5 {
		kind := "email:welcome"
		if i%2 == 1 {
			kind = "email:digest"
		}
		if _, err := client.Enqueue(ctx, "emails", kind, Welcome{UserID: i}, queue.EnqueueOptions{}); err != nil {
			panic(err)
		}
	}
	r := queue.ListRequest{Queue: "emails", Kind: "email:welcome", Limit: 2}
	for {
		page, err := client.List(ctx, r)
		if err != nil {
			panic(err)
		}
		for _, m := range page.Jobs {
			fmt.Println(m.Kind, m.State, string(m.Payload))
		}
		if page.Next == "" {
			fmt.Println("pending in the queue:", page.Totals.Pending)
			break
		}
		r.Cursor = page.Next
	}
	queues, _ := client.Queues(ctx)
	fmt.Println("queues:", queues)
	// Output:
	// email:welcome pending {"UserID":4,"Email":""}
	// email:welcome pending {"UserID":2,"Email":""}
	// email:welcome pending {"UserID":0,"Email":""}
	// pending in the queue: 5
	// queues: [emails]
}
