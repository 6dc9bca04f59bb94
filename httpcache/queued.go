package httpcache

import (
	"context"
	"errors"

	"github.com/scalekit-go/scalekit/queue"
)

// PurgeKind is the kind of the queue jobs that carry purges: enqueue
// PurgeArgs under it, in the transaction that changes the data when the
// queue is on PostgreSQL (queuepg's EnqueueTx), and run them with
// HandlePurges.
const PurgeKind = "httpcache.purge"

// PurgeArgs is a queued purge: the surrogate keys to purge.
type PurgeArgs struct {
	Keys []string `json:"keys"`
}

// HandlePurges registers on w the handler of PurgeKind jobs, which
// purges each job's keys through p. A purge the edge cache does not take
// (down, paused, the breaker open) fails the attempt, and the queue
// retries it with the worker's backoff up to the job's MaxAttempts, then
// dead-letters it; a job with an invalid key dies at once (no attempt
// can fix it). With the job enqueued in the transaction that changed the
// data, the purge commits exactly when the data does and reaches the
// edge at least once, whatever the edge's state at the commit:
//
//	tx, _ := pool.Begin(ctx)
//	tx.Exec(ctx, `UPDATE users SET name = $1 WHERE id = $2`, name, id)
//	pg.EnqueueTx(ctx, tx, "purges", httpcache.PurgeKind, httpcache.PurgeArgs{Keys: []string{"user:" + id}}, queue.EnqueueOptions{})
//	tx.Commit(ctx)
func HandlePurges(w *queue.Worker, p Purger) error {
	if p == nil {
		return errors.New("httpcache: HandlePurges needs a Purger")
	}
	return queue.Handle(w, PurgeKind, func(ctx context.Context, j *queue.Job[PurgeArgs]) error {
		for _, k := range j.Args.Keys {
			if err := validKey(k); err != nil {
				return queue.Permanent(err)
			}
		}
		return p.Purge(ctx, j.Args.Keys)
	})
}
