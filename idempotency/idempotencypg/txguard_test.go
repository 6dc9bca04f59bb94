package idempotencypg

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/idempotency"
	"github.com/scalekit-go/scalekit/internal/poll"
	"github.com/scalekit-go/scalekit/internal/queuefault"
	"github.com/scalekit-go/scalekit/internal/testinfra"
	"github.com/scalekit-go/scalekit/queue"
	"github.com/scalekit-go/scalekit/retry"
)

// A job's database effect, written through the TxGuard's transaction
// behind idempotency.Worker's middleware, is applied exactly once: not
// again when the job is redelivered after it committed (its queue
// completion lost), and not at all by an attempt that failed after
// writing (rolled back with the key released).
func TestTxGuardJobEffectExactlyOnce(t *testing.T) {
	f := testinfra.Postgres(t)
	ctx := context.Background()
	table := "effects_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	if _, err := f.Primary.Exec(ctx, "CREATE TABLE "+table+" (order_id text NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Primary.Exec(context.Background(), "DROP TABLE "+table) })
	g, err := NewTxGuard(TxGuardOptions{Store: newStore(t, f, Options{}), Lease: time.Second, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	iw, err := idempotency.NewWorker(idempotency.WorkerOptions{Guard: g,
		Key: func(a queue.Attempt) string { return table + ":" + a.Metadata()["order"] }})
	if err != nil {
		t.Fatal(err)
	}
	// The first completion of o-lost-completion's job is lost: its effect
	// is committed, but the queue redelivers it.
	b := &queuefault.LoseComplete{Backend: queue.NewMemoryBackend(queue.MemoryBackendOptions{}),
		Match: func(m *queue.Message) bool { return m.Metadata["order"] == "o-lost-completion" }}
	w, err := queue.NewWorker(queue.WorkerOptions{Backend: b, Queues: map[string]queue.Options{"q": {Concurrency: 2, Lease: 100 * time.Millisecond}},
		Backoff: retry.Constant{D: time.Millisecond}, FetchWait: 20 * time.Millisecond,
		Middleware: []func(queue.AttemptFunc) queue.AttemptFunc{iw.Middleware}})
	if err != nil {
		t.Fatal(err)
	}
	queue.Handle(w, "charge", func(ctx context.Context, j *queue.Job[string]) error {
		tx, ok := TxFromContext(ctx)
		if !ok {
			return queue.Permanent(errors.New("no transaction in the handler's ctx"))
		}
		if _, err := tx.Exec(ctx, "INSERT INTO "+table+" (order_id) VALUES ($1)", j.Args); err != nil {
			return err
		}
		if j.Args == "o-fails-once" && j.Attempt == 1 {
			return errors.New("card network timeout after the write")
		}
		return nil
	})
	c, _ := queue.NewClient(queue.ClientOptions{Backend: b})
	var ids []string
	for _, order := range []string{"o-lost-completion", "o-fails-once"} {
		id, err := c.Enqueue(ctx, "q", "charge", order, queue.EnqueueOptions{Metadata: map[string]string{"order": order}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	w.Start(ctx)
	defer w.Close()
	poll.Until(t, 20*time.Second, "both jobs done", func() bool {
		for _, id := range ids {
			if m, _ := c.Job(ctx, "q", id); m == nil || m.State != queue.Done {
				return false
			}
		}
		return true
	})
	for _, order := range []string{"o-lost-completion", "o-fails-once"} {
		var n int
		if err := f.Primary.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE order_id = $1", order).Scan(&n); err != nil || n != 1 {
			t.Errorf("order %s charged %d times (%v), want once", order, n, err)
		}
	}
	for _, id := range ids {
		if m, _ := c.Job(ctx, "q", id); m.Attempt != 2 {
			t.Errorf("job %+v: want it done on its second attempt", m)
		}
	}
	if !b.Lost() {
		t.Fatal("no completion was lost")
	}
}

func TestNewTxGuardOptions(t *testing.T) {
	s := &Store{}
	for _, tc := range []struct {
		o    TxGuardOptions
		want string
	}{
		{TxGuardOptions{}, "TxGuardOptions.Store is required"},
		{TxGuardOptions{Store: s, Lease: time.Millisecond}, "Lease must be >= 3ms"},
		{TxGuardOptions{Store: s, Lease: time.Hour, TTL: time.Minute}, "TTL (1m0s) must not be shorter than Lease (1h0m0s)"},
	} {
		if _, err := NewTxGuard(tc.o); !errors.Is(err, idempotency.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewTxGuard(%+v) = %v, want ErrInvalid saying %q", tc.o, err, tc.want)
		}
	}
	if _, ok := TxFromContext(context.Background()); ok {
		t.Error("TxFromContext found a transaction in a bare ctx")
	}
}
