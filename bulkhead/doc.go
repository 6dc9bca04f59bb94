// Package bulkhead provides a bulkhead (resilience4j's): at most
// MaxConcurrent calls to one dependency at once, and a bounded queue of
// calls waiting at most MaxWait for a slot, so a slow dependency holds a
// fixed share of the process's goroutines and connections instead of all
// of them.
//
//	bh, err := bulkhead.New(bulkhead.Options{Name: "inventory", MaxConcurrent: 20, MaxWaiting: 40, MaxWait: 200 * time.Millisecond})
//	err = bh.Do(ctx, func(ctx context.Context) error { return inventory.Reserve(ctx, item) })
//	if errors.Is(err, bulkhead.ErrRejected) { ... } // full: answer 503, or fall back
//	ctx = priority.With(ctx, priority.Sheddable) // shed first under overload
//
// A call runs at once while fewer than MaxConcurrent run; otherwise it
// waits in the queue, up to MaxWait (ErrMaxWait) or until its ctx ends
// (the ctx's error), and a call finding MaxWaiting calls queued is
// rejected at once (ErrQueueFull). ratelimit.Concurrency is the
// reject-only, per-key form of the same limit.
//
// # Priority
//
// A call's class comes from its ctx (package priority). Slots freed go to
// the waiting calls of the highest class first, in arrival order within a
// class; a call finding the queue full takes the place of the newest
// waiting call of a lower class, which is rejected with ErrShed. So under
// overload Sheddable calls go first, then Default ones, and Critical calls
// wait behind Critical calls only.
//
// Every rejection matches ErrRejected. Stats counts admissions, waits and
// rejections by reason and by class, for package metrics. Waits use the
// runtime's timers (tests run in a testing/synctest bubble); rejections
// are logged at Debug. A Bulkhead is safe for concurrent use; a call
// admitted at once costs a mutex and allocates nothing (Do).
package bulkhead
