package queue_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

type NoteCreated struct {
	NoteID int
}

// An event published on a topic reaches every queue subscribed to it:
// here a search indexer and a notifier, each with its own Worker, so each
// retries (or dead-letters) the event on its own.
func Example_events() {
	backend := queue.NewMemoryBackend(queue.MemoryBackendOptions{}) // queuepg or queueredis in production
	client, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	ctx := context.Background()
	for _, q := range []string{"search", "notify"} {
		if err := client.Subscribe(ctx, "note.created", q); err != nil { // durable, fleet-wide, idempotent
			panic(err)
		}
	}

	var mu sync.Mutex
	var handled []string
	var wg sync.WaitGroup
	wg.Add(2)
	for _, q := range []string{"search", "notify"} {
		w, _ := queue.NewWorker(queue.WorkerOptions{Backend: backend, Queues: map[string]queue.Options{q: {}}})
		queue.Handle(w, "note.created", func(ctx context.Context, j *queue.Job[NoteCreated]) error { // the kind is the topic
			mu.Lock()
			handled = append(handled, fmt.Sprintf("%s: note %d, event %s, key %s", q, j.Args.NoteID, j.ID, j.Metadata[queue.MetadataEventKey]))
			mu.Unlock()
			wg.Done()
			return nil
		})
		w.Start(ctx)
		defer func() {
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			w.Shutdown(sctx)
		}()
	}

	p, err := client.Publish(ctx, "note.created", NoteCreated{NoteID: 7}, queue.PublishOptions{ID: "evt-1", Key: "note-7"})
	fmt.Println("published", p.ID, "to", p.Queues, err)
	p, err = client.Publish(ctx, "note.created", NoteCreated{NoteID: 7}, queue.PublishOptions{ID: "evt-1", Key: "note-7"})
	fmt.Println("retried: no duplicate in", p.Queues, err)
	wg.Wait()
	slices.Sort(handled)
	for _, h := range handled {
		fmt.Println(h)
	}
	p, _ = client.Publish(ctx, "user.deleted", 42, queue.PublishOptions{})
	fmt.Println("no subscriber:", len(p.Queues))
	// Output:
	// published evt-1 to [notify search] <nil>
	// retried: no duplicate in [notify search] <nil>
	// notify: note 7, event evt-1, key note-7
	// search: note 7, event evt-1, key note-7
	// no subscriber: 0
}
