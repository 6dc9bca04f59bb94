package queue_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// The client middleware runs once per Publish, sees the event (Queue
// empty, Kind the topic), and what it adds reaches every subscriber; a
// middleware that refuses stores nothing, and one that changes the id is
// refused.
func TestPublishMiddleware(t *testing.T) {
	ctx := context.Background()
	var seen []string
	refuse := errors.New("refused")
	b := queue.NewMemoryBackend(queue.MemoryBackendOptions{})
	c, err := queue.NewClient(queue.ClientOptions{Backend: b, Middleware: []func(queue.EnqueueFunc) queue.EnqueueFunc{
		func(next queue.EnqueueFunc) queue.EnqueueFunc {
			return func(ctx context.Context, m *queue.Message) error {
				seen = append(seen, m.Queue+"|"+m.Kind)
				switch m.Payload[0] {
				case '0':
					return refuse
				case '1':
					m.ID = "changed"
				}
				m.Metadata = map[string]string{"traceparent": "00-abc-01"}
				return next(ctx, m)
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"a", "b"} {
		if err := c.Subscribe(ctx, "t", q); err != nil {
			t.Fatal(err)
		}
	}
	p, err := c.Publish(ctx, "t", 2, queue.PublishOptions{Key: "k"})
	if err != nil || len(p.Queues) != 2 {
		t.Fatalf("Publish = %+v %v", p, err)
	}
	if strings.Join(seen, ",") != "|t" {
		t.Fatalf("the middleware saw %v, want the event once, queue empty, kind t", seen)
	}
	for _, q := range p.Queues {
		if m, err := c.Job(ctx, q, p.ID); err != nil || m.Metadata["traceparent"] != "00-abc-01" {
			t.Fatalf("the event in %s: %+v %v, want the middleware's metadata", q, m, err)
		}
	}
	if p, err := c.Publish(ctx, "t", 0, queue.PublishOptions{}); !errors.Is(err, refuse) {
		t.Fatalf("a refused Publish: %+v %v", p, err)
	}
	if p, err := c.Publish(ctx, "t", 1, queue.PublishOptions{}); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("a Publish whose id a middleware changed: %+v %v, want ErrInvalid", p, err)
	}
	if cnt, _ := c.Counts(ctx, "a"); cnt.Pending != 1 {
		t.Fatalf("counts %+v, want only the accepted event", cnt)
	}
}

// NewEvent validates every option and names the field; the key counts
// towards the metadata bound.
func TestNewEventBadOptions(t *testing.T) {
	full := map[string]string{}
	for i := range queue.MaxMetadata {
		full["k"+strconv.Itoa(i)] = "v"
	}
	for _, c := range []struct {
		o    queue.PublishOptions
		want string
	}{
		{queue.PublishOptions{ID: "a b"}, "PublishOptions.ID"},
		{queue.PublishOptions{Priority: -1}, "PublishOptions.Priority"},
		{queue.PublishOptions{MaxAttempts: -1}, "PublishOptions.MaxAttempts"},
		{queue.PublishOptions{Key: strings.Repeat("x", queue.MaxMetadataValue+1)}, "PublishOptions.Key"},
		{queue.PublishOptions{Key: "\xff"}, "PublishOptions.Key"},
		{queue.PublishOptions{Metadata: map[string]string{queue.MetadataEventKey: "x"}}, "PublishOptions.Metadata"},
		{queue.PublishOptions{Metadata: full, Key: "k"}, "PublishOptions.Metadata"},
		{queue.PublishOptions{Metadata: map[string]string{"": "x"}}, "PublishOptions.Metadata"},
	} {
		if _, err := queue.NewEvent(time.Unix(1e9, 0), "t", 1, c.o); !errors.Is(err, queue.ErrInvalid) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewEvent(%+v) = %v, want ErrInvalid naming %s", c.o, err, c.want)
		}
	}
	m, err := queue.NewEvent(time.Unix(1e9, 0), "t", 1, queue.PublishOptions{Metadata: full})
	if err != nil || len(m.Metadata) != queue.MaxMetadata || m.MaxAttempts != 10 || m.Queue != "" || m.Kind != "t" {
		t.Fatalf("NewEvent with full metadata and no key = %+v %v", m, err)
	}
}
