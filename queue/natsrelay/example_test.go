package natsrelay_test

import (
	"context"
	"log"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/queue/natsrelay"
	"github.com/scalekit-go/scalekit/queue/queueredis"
)

// A service forwards its "orders" events to JetStream for consumers
// outside it. The queue "orders-to-nats" is subscribed to the topic
// (queue.Client.Subscribe); the relay drains it. (It needs Redis and a
// JetStream server, so it has no Output.)
func Example() {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
	defer rdb.Close()
	backend, err := queueredis.New(queueredis.Options{Client: rdb})
	if err != nil {
		log.Fatal(err)
	}

	nc, err := nats.Connect(nats.DefaultURL, nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	// The stream that stores the events: every subject under "events.",
	// with a duplicate window longer than 2×Lease.
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "EVENTS",
		Subjects: []string{natsrelay.DefaultSubjectPrefix + ">"}, Duplicates: 2 * time.Minute}); err != nil {
		log.Fatal(err)
	}

	r, err := natsrelay.New(natsrelay.Options{Backend: backend, Queue: "orders-to-nats", JetStream: js})
	if err != nil {
		log.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer r.Shutdown(ctx)

	// The relay's queue subscribes to the topic "orders": events published
	// on it reach the subject "events.orders", in order per key.
	jobs, _ := queue.NewClient(queue.ClientOptions{Backend: backend})
	if err := jobs.Subscribe(ctx, "orders", "orders-to-nats"); err != nil {
		log.Fatal(err)
	}
	if _, err := jobs.Publish(ctx, "orders", map[string]any{"order": 42, "status": "paid"},
		queue.PublishOptions{Key: "order-42"}); err != nil {
		log.Fatal(err)
	}
}
