// Package timeout bounds how long a call may take: a Timeout runs a
// func(ctx) error with a ctx that ends after Options.Timeout, and says
// which timeout fired when the call fails past it.
//
//	attempt, err := timeout.New(timeout.Options{Timeout: 2 * time.Second, Kind: timeout.Attempt})
//	err = attempt.Do(ctx, func(ctx context.Context) error { return callInventory(ctx) })
//	if errors.Is(err, timeout.ErrAttempt) { ... } // this call's 2s passed (errors.Is(err, timeout.ErrTimeout) too)
//	var te *timeout.Error
//	if errors.As(err, &te) { log.Print(te.Kind, te.Timeout) } // "attempt 2s"
//
// retry.Options.AttemptTimeout and retry.Options.Timeout use it, one per
// attempt and one for the whole call; the policy package composes it with
// the other policies (rate limit, total timeout, retry, breaker, attempt
// timeout).
//
// # Which timeout fired
//
// A Timeout has a Kind, Total or Attempt. When the call returns an error
// after the Timeout's deadline passed (or an error matching
// context.DeadlineExceeded while its deadline is the one that binds: a
// retry loop giving up because its next attempt would start after it),
// Do returns an *Error of that Kind, which matches ErrTimeout, ErrTotal
// or ErrAttempt, and context.DeadlineExceeded, and unwraps to the call's
// error. When the caller's own ctx has ended (its deadline came first, or
// it was cancelled), Do returns the call's error as it is: an attempt
// timeout never claims a total timeout's deadline, nor the caller's.
// context.Cause of the ctx given to the call is ErrTotal or ErrAttempt
// once the Timeout fired, so the call can tell too.
//
// # A call that ignores its ctx
//
// Do runs the call on the caller's goroutine and starts none: when the
// deadline passes it cancels the call's ctx and waits for the call to
// return. A call that respects its ctx returns at once; one that ignores
// it keeps Do waiting until it ends, and Do then returns an *Error if it
// failed, or nil if it succeeded late (its work is done: a retry loop
// must not do it again). No goroutine is ever left running a call nobody
// waits for, which is what returning at the deadline would need (and what
// a hung call would then leak, one goroutine per call, for as long as it
// hangs). A call that must be abandoned at its deadline is one that
// ignores its ctx: make it honour the ctx (every standard library client
// does) rather than leave it running.
//
// The timer is the runtime's; Options has no Clock: tests run in a
// testing/synctest bubble. The ctx the call gets makes its timer only when
// asked for Done (or for Err, Value or a derived ctx once it has ended):
// a call that never waits on it (a cache hit, a computation) costs one
// allocation and no timer; from the first Done on, it is a
// context.WithDeadlineCause. A Timeout is safe for concurrent use.
package timeout
