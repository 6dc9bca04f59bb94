// Package cachequeue runs cache invalidations as queue jobs, so an
// invalidation enqueued in the transaction that changes the data
// (queuepg's EnqueueTx) commits exactly when the data does and reaches
// the cache at least once, even if Redis is down at the commit: the
// "database updated, cache delete failed" hole closed.
//
//	// At start-up, once per cache: its invalidations are jobs of kind "users".
//	cachequeue.Handle(worker, "users", users) // users is a *cache.Cache[User]
//
//	// In the write's transaction:
//	tx.Exec(ctx, `UPDATE users SET name = $1 WHERE id = $2`, name, id)
//	pg.EnqueueTx(ctx, tx, "invalidations", "users",
//		cachequeue.Args{IDs: map[string][]string{"user": {id}}}, queue.EnqueueOptions{})
//	tx.Commit(ctx)
//
// A job deletes Args.Keys (Cache.Delete), the ids of Args.IDs in their
// namespaces (Namespace.Delete) and invalidates Args.Namespaces
// (Namespace.Invalidate). When any of them fails (the Store is down, its
// breaker open), the attempt fails and the queue retries the whole job
// with its backoff, up to the job's MaxAttempts, then dead-letters it;
// each operation is idempotent, so a retry repeats the ones that had
// succeeded harmlessly (an extra namespace bump retires copies once more).
package cachequeue

import (
	"context"
	"errors"
	"fmt"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/queue"
)

// Args is one invalidation job's work.
type Args struct {
	// Keys are plain keys to delete (Cache.Delete).
	Keys []string `json:"keys,omitempty"`
	// IDs are ids to delete per namespace (Namespace.Delete).
	IDs map[string][]string `json:"ids,omitempty"`
	// Namespaces are namespaces to invalidate whole (Namespace.Invalidate).
	Namespaces []string `json:"namespaces,omitempty"`
}

// Handle registers on w the handler of kind's jobs, which apply their
// Args to c. Use one kind per cache.
func Handle[V any](w *queue.Worker, kind string, c *cache.Cache[V]) error {
	if c == nil {
		return errors.New("cachequeue: Handle needs a cache")
	}
	return queue.Handle(w, kind, func(ctx context.Context, j *queue.Job[Args]) error {
		return Apply(ctx, c, j.Args)
	})
}

// Apply applies a to c now: what a job does. It returns the first error,
// after trying every operation.
func Apply[V any](ctx context.Context, c *cache.Cache[V], a Args) error {
	var errs []error
	for _, k := range a.Keys {
		if err := c.Delete(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	for ns, ids := range a.IDs {
		n := c.Namespace(ns)
		for _, id := range ids {
			if err := n.Delete(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, ns := range a.Namespaces {
		if err := c.Namespace(ns).Invalidate(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cachequeue: %d of the invalidations failed: %w", len(errs), errors.Join(errs...))
	}
	return nil
}
