package queuetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// TxPublisher is a Backend that can publish inside a transaction of its
// own store (queuepg, through a wrapper in its test): PublishInTx
// publishes the event as Client.Publish does, inside a new transaction,
// then commits that transaction if commit is true and rolls it back
// otherwise. The suite checks with it that a rolled-back publish
// delivers nothing; on a Backend without it that case is skipped.
type TxPublisher interface {
	PublishInTx(ctx context.Context, topic string, event any, o queue.PublishOptions, commit bool) (queue.Published, error)
}

// event is the payload of the suite's events.
type event struct {
	N int `json:"n"`
}

// runEvents checks Publish, Subscribe, Unsubscribe and Subscribers.
func runEvents(t *testing.T, f Factory) {
	ctx := context.Background()
	t.Run("PublishFanOut", func(t *testing.T) {
		// Three subscribers each get the event once, with the same id,
		// kind and metadata, and retry or dead-letter it on their own.
		e := setup(t, f)
		topic := Name(t)
		qs := []string{Name(t), Name(t), Name(t)}
		slices.Sort(qs)
		p, err := e.c.Publish(ctx, topic, event{0}, queue.PublishOptions{ID: "none"})
		if err != nil || len(p.Queues) != 0 || p.ID != "none" {
			t.Fatalf("Publish with no subscriber: %+v %v, want its id, no queue, no error", p, err)
		}
		for _, q := range qs {
			if c, _ := e.c.Counts(ctx, q); c != (queue.Counts{}) {
				t.Fatalf("a publish with no subscriber stored %+v in %s", c, q)
			}
			for range 2 {
				if err := e.c.Subscribe(ctx, topic, q); err != nil {
					t.Fatal(err)
				}
			}
		}
		if s, err := e.c.Subscribers(ctx, topic); err != nil || !slices.Equal(s, qs) {
			t.Fatalf("Subscribers = %v %v, want %v", s, err, qs)
		}
		if s, err := e.c.Subscribers(ctx, Name(t)); err != nil || len(s) != 0 {
			t.Fatalf("Subscribers of another topic = %v %v, want none", s, err)
		}
		o := queue.PublishOptions{ID: "evt-1", Key: "order-7", Metadata: map[string]string{"tenant": "t1"}, MaxAttempts: 2}
		p, err = e.c.Publish(ctx, topic, event{1}, o)
		if err != nil || p.ID != "evt-1" || !slices.Equal(p.Queues, qs) {
			t.Fatalf("Publish = %+v %v, want evt-1 in %v", p, err, qs)
		}
		// A retried publish (same id and event) stores nothing more.
		if p, err := e.c.Publish(ctx, topic, event{1}, o); err != nil || !slices.Equal(p.Queues, qs) {
			t.Fatalf("the same Publish again = %+v %v, want evt-1 in %v", p, err, qs)
		}
		// The subscriber queues are queues like any other: listed, with
		// the event among their jobs.
		names, err := e.c.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if !slices.Contains(names, q) {
				t.Fatalf("Queues = %v, want the subscriber queue %s among them", names, q)
			}
			pg, err := e.c.List(ctx, queue.ListRequest{Queue: q})
			if err != nil || len(pg.Jobs) != 1 || pg.Jobs[0].ID != "evt-1" || pg.Totals.Pending != 1 {
				t.Fatalf("List(%s) = %+v %v, want the one pending event", q, pg, err)
			}
		}
		leases := make([]*queue.Lease, len(qs))
		for i, q := range qs {
			ls, err := e.b.Fetch(ctx, queue.FetchRequest{Queue: q, Max: 10, Lease: time.Minute, Order: order})
			if err != nil || len(ls) != 1 {
				t.Fatalf("Fetch(%s) = %d jobs %v, want the one event", q, len(ls), err)
			}
			m := ls[0].Msg
			if m.ID != "evt-1" || m.Kind != topic || string(m.Payload) != `{"n":1}` || m.MaxAttempts != 2 ||
				m.Metadata["tenant"] != "t1" || m.Metadata[queue.MetadataEventKey] != "order-7" || len(m.Metadata) != 2 {
				t.Fatalf("the event's job in %s: %+v", q, m)
			}
			leases[i] = ls[0]
		}
		// Another event with a used id is refused where the id is used.
		if _, err := e.c.Publish(ctx, topic, event{2}, o); !errors.Is(err, queue.ErrInvalid) {
			t.Fatalf("another event with a used id: %v, want ErrInvalid", err)
		}
		// Each subscriber has its own attempts: the first retries then
		// dies, the others complete.
		if err := e.b.Fail(ctx, leases[0], "boom", e.clk.Now(), false); err != nil {
			t.Fatal(err)
		}
		for _, l := range leases[1:] {
			if err := e.b.Complete(ctx, l, nil); err != nil {
				t.Fatal(err)
			}
		}
		ls, err := e.b.Fetch(ctx, queue.FetchRequest{Queue: qs[0], Max: 10, Lease: time.Minute, Order: order})
		if err != nil || len(ls) != 1 || ls[0].Msg.Attempt != 2 {
			t.Fatalf("the retry in %s: %v %v", qs[0], ls, err)
		}
		if err := e.b.Fail(ctx, ls[0], "boom", e.clk.Now(), false); err != nil {
			t.Fatal(err)
		}
		if d, err := e.c.Dead(ctx, qs[0], 10); err != nil || len(d) != 1 || d[0].ID != "evt-1" {
			t.Fatalf("dead letters of %s: %v %v, want evt-1", qs[0], d, err)
		}
		for _, q := range qs[1:] {
			if m, err := e.c.Job(ctx, q, "evt-1"); err != nil || m.State != queue.Done {
				t.Fatalf("evt-1 in %s: %+v %v, want done", q, m, err)
			}
			if c, _ := e.c.Counts(ctx, q); c.Done != 1 || c.Dead+c.Pending+c.Active+c.Retry != 0 {
				t.Fatalf("counts of %s: %+v, want the one event done", q, c)
			}
		}
		// Unsubscribe stops delivery (and is idempotent).
		for range 2 {
			if err := e.c.Unsubscribe(ctx, topic, qs[2]); err != nil {
				t.Fatal(err)
			}
		}
		if s, _ := e.c.Subscribers(ctx, topic); !slices.Equal(s, qs[:2]) {
			t.Fatalf("Subscribers after Unsubscribe = %v, want %v", s, qs[:2])
		}
		if p, err := e.c.Publish(ctx, topic, event{3}, queue.PublishOptions{}); err != nil || !slices.Equal(p.Queues, qs[:2]) || p.ID == "" {
			t.Fatalf("Publish after Unsubscribe = %+v %v, want a new id in %v", p, err, qs[:2])
		} else if _, err := e.c.Job(ctx, qs[2], p.ID); !errors.Is(err, queue.ErrNotFound) {
			t.Fatalf("the unsubscribed queue got the event: %v", err)
		}
	})
	t.Run("PublishBadArguments", func(t *testing.T) {
		e := setup(t, f)
		for name, call := range map[string]func() error{
			"a bad topic":       func() error { _, err := e.c.Publish(ctx, "bad topic", 1, queue.PublishOptions{}); return err },
			"an event not JSON": func() error { _, err := e.c.Publish(ctx, "t", func() {}, queue.PublishOptions{}); return err },
			"a bad id":          func() error { _, err := e.c.Publish(ctx, "t", 1, queue.PublishOptions{ID: "a b"}); return err },
			"a bad priority":    func() error { _, err := e.c.Publish(ctx, "t", 1, queue.PublishOptions{Priority: 7}); return err },
			"negative attempts": func() error { _, err := e.c.Publish(ctx, "t", 1, queue.PublishOptions{MaxAttempts: -1}); return err },
			"the reserved key": func() error {
				_, err := e.c.Publish(ctx, "t", 1, queue.PublishOptions{Metadata: map[string]string{queue.MetadataEventKey: "k"}})
				return err
			},
			"Subscribe bad topic":  func() error { return e.c.Subscribe(ctx, "", e.q) },
			"Subscribe bad queue":  func() error { return e.c.Subscribe(ctx, "t", "a/b") },
			"Unsubscribe bad name": func() error { return e.c.Unsubscribe(ctx, "t", "") },
			"Subscribers bad name": func() error { _, err := e.c.Subscribers(ctx, "a b"); return err },
		} {
			if err := call(); !errors.Is(err, queue.ErrInvalid) {
				t.Errorf("%s: %v, want ErrInvalid", name, err)
			}
		}
	})
	t.Run("PublishConcurrent", func(t *testing.T) {
		// Many goroutines publish, half of the events twice (a retry
		// racing the first publish), while another queue subscribes and
		// unsubscribes: every subscriber gets each event once, and the
		// other queue holds exactly the events whose Published listed it.
		e := setup(t, f)
		topic := Name(t)
		qs := []string{Name(t), Name(t), Name(t)}
		for _, q := range qs {
			if err := e.c.Subscribe(ctx, topic, q); err != nil {
				t.Fatal(err)
			}
		}
		flappy := Name(t)
		const goroutines, each = 8, 10
		var wg sync.WaitGroup
		errs := make(chan error, goroutines*each+1)
		var mu sync.Mutex
		listed := map[string]bool{} // event id -> some Published of it listed flappy
		stop := make(chan struct{})
		flapped := make(chan struct{})
		go func() {
			defer close(flapped)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				if i%2 == 0 {
					err = e.c.Subscribe(ctx, topic, flappy)
				} else {
					err = e.c.Unsubscribe(ctx, topic, flappy)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					n := (g/2)*each + i // goroutines 2k and 2k+1 publish the same events
					id := "e" + strconv.Itoa(n)
					p, err := e.c.Publish(ctx, topic, event{n}, queue.PublishOptions{ID: id})
					others := slices.DeleteFunc(slices.Clone(p.Queues), func(q string) bool { return q == flappy })
					if err != nil || !slices.Equal(others, sortedCopy(qs)) {
						errs <- fmt.Errorf("Publish(%s) = %+v %v", id, p, err)
					}
					if slices.Contains(p.Queues, flappy) {
						mu.Lock()
						listed[id] = true
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		close(stop)
		<-flapped
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for n := range goroutines / 2 * each {
			id := "e" + strconv.Itoa(n)
			_, err := e.c.Job(ctx, flappy, id)
			if held := err == nil; held != listed[id] {
				t.Fatalf("event %s in the flapping subscriber: %v, listed by a Publish: %v", id, err, listed[id])
			}
		}
		for _, q := range qs {
			if c, err := e.c.Counts(ctx, q); err != nil || c.Pending != goroutines/2*each {
				t.Fatalf("counts of %s: %+v %v, want %d events pending", q, c, err, goroutines/2*each)
			}
		}
	})
	t.Run("PublishRolledBack", func(t *testing.T) {
		e := setup(t, f)
		tp, ok := e.b.(TxPublisher)
		if !ok {
			t.Skipf("%T has no transactions (TxPublisher)", e.b)
		}
		topic := Name(t)
		qs := []string{Name(t), Name(t), Name(t)}
		slices.Sort(qs)
		for _, q := range qs {
			if err := e.c.Subscribe(ctx, topic, q); err != nil {
				t.Fatal(err)
			}
		}
		p, err := tp.PublishInTx(ctx, topic, event{1}, queue.PublishOptions{ID: "rolled-back"}, false)
		if err != nil || !slices.Equal(p.Queues, qs) {
			t.Fatalf("PublishInTx (rolled back) = %+v %v, want it in %v inside the transaction", p, err, qs)
		}
		if p, err = tp.PublishInTx(ctx, topic, event{2}, queue.PublishOptions{ID: "committed"}, true); err != nil || !slices.Equal(p.Queues, qs) {
			t.Fatalf("PublishInTx (committed) = %+v %v", p, err)
		}
		for _, q := range qs {
			if _, err := e.c.Job(ctx, q, "rolled-back"); !errors.Is(err, queue.ErrNotFound) {
				t.Fatalf("the rolled-back event in %s: %v, want ErrNotFound", q, err)
			}
			if m, err := e.c.Job(ctx, q, "committed"); err != nil || m.Kind != topic || string(m.Payload) != `{"n":2}` {
				t.Fatalf("the committed event in %s: %+v %v", q, m, err)
			}
			if c, _ := e.c.Counts(ctx, q); c.Pending != 1 {
				t.Fatalf("counts of %s: %+v, want only the committed event", q, c)
			}
		}
	})
}

// sortedCopy is qs sorted, qs untouched.
func sortedCopy(qs []string) []string { return slices.Sorted(slices.Values(qs)) }
