package idempotency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/scalekit-go/scalekit/queue"
)

// KeyGuard runs fn at most once to completion per key and returns its
// result, or the stored result of the run that completed: *Guard, or
// idempotencypg's TxGuard, which commits fn's database writes with the
// key's completion (exactly once). A key another caller is running
// returns an *InProgressError.
type KeyGuard interface {
	Do(ctx context.Context, key string, fn func(ctx context.Context) ([]byte, error)) ([]byte, error)
}

// WorkerOptions configures NewWorker. Guard is required.
type WorkerOptions struct {
	// Guard runs each attempt under its key; required. Its store must be
	// shared by every worker of the queue (idempotencyredis or
	// idempotencypg), and its TTL outlast the job's redeliveries.
	Guard KeyGuard
	// Key names the effect an attempt performs. Jobs with the same key
	// run their handler once to completion between them, so a key
	// taken from the job's metadata (a business key such as
	// "charge:order-981" set at enqueue) also makes two jobs enqueued for
	// the same thing act once. An empty key fails the attempt
	// permanently (ErrInvalid). Default: "job:<queue>:<job id>", which
	// makes one job's effect run once however often it is delivered.
	Key func(a queue.Attempt) string
	// MaxSnooze bounds how long a job whose key another worker is
	// running waits before it looks again (snoozed: no attempt spent).
	// It waits until that run's lease expires, at most MaxSnooze.
	// Default: 5s.
	MaxSnooze time.Duration
}

// Worker is the queue worker layer of a Guard: its Middleware method,
// given to queue.WorkerOptions.Middleware, runs each job attempt through
// Guard.Do, so a job delivered again after its handler completed (the
// queue's outcome write was lost, the worker died before it, a lease
// expired) completes without running its handler twice. Build it with
// NewWorker. It is safe for concurrent use.
//
// With a *Guard, what the handler does and the key's completion are two
// writes: a worker that dies between the end of the handler and the
// completion leaves the key to run again after its lease (at least
// once). For exactly once, the handler's effect and the key's completion
// share a transaction: make the Guard an idempotencypg.TxGuard and write
// through the transaction it puts in the handler's ctx.
type Worker struct {
	o WorkerOptions
}

// NewWorker returns a Worker, or an error naming the bad option.
func NewWorker(o WorkerOptions) (*Worker, error) {
	if o.Guard == nil {
		return nil, fmt.Errorf("%w: WorkerOptions.Guard is required", ErrInvalid)
	}
	if o.Key == nil {
		o.Key = func(a queue.Attempt) string { return "job:" + a.Queue + ":" + a.ID }
	}
	if o.MaxSnooze == 0 {
		o.MaxSnooze = 5 * time.Second
	}
	if o.MaxSnooze < 0 {
		return nil, fmt.Errorf("%w: WorkerOptions.MaxSnooze must be > 0, got %v", ErrInvalid, o.MaxSnooze)
	}
	return &Worker{o: o}, nil
}

// Middleware wraps next, the rest of a job attempt, in the Guard's Do under
// the attempt's key (WorkerOptions.Key):
//
//   - a key that completed: the handler does not run, and the attempt
//     succeeds (the job completes, with no output of its own);
//   - a key another worker is running: the job is snoozed (queue.Snooze,
//     no attempt spent) until that run's lease expires, at most
//     WorkerOptions.MaxSnooze;
//   - otherwise next runs under the key's lease; its success completes
//     the key, its error (a snooze included) releases it for the retry;
//   - a Store failure fails the attempt (ErrUnavailable; retried later).
func (w *Worker) Middleware(next queue.AttemptFunc) queue.AttemptFunc {
	return func(ctx context.Context, a queue.Attempt) error {
		key := w.o.Key(a)
		if key == "" {
			return queue.Permanent(fmt.Errorf("%w: WorkerOptions.Key returned an empty key for job %s of kind %q", ErrInvalid, a.ID, a.Kind))
		}
		_, err := w.o.Guard.Do(ctx, key, func(ctx context.Context) ([]byte, error) {
			return nil, next(ctx, a)
		})
		var busy *InProgressError
		if errors.As(err, &busy) {
			return queue.Snooze(min(max(busy.RetryAfter, 10*time.Millisecond), w.o.MaxSnooze))
		}
		return err
	}
}
