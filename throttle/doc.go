// Package throttle provides client-side adaptive throttling, from the
// Google SRE book ("Handling Overload"): a client that sees its backend
// refuse requests starts refusing them itself, locally, so an overloaded
// backend is not also flooded with requests it will reject.
//
//	th, err := throttle.New(throttle.Options{Name: "inventory"}) // K = 2, a 2-minute window
//	err = th.Do(ctx, func(ctx context.Context) error { return inventory.Reserve(ctx, item) })
//	if errors.Is(err, throttle.ErrThrottled) { ... } // refused locally: the backend was not called
//
// Over a sliding window (Options.Window, default 2 minutes, in 10 buckets)
// a Throttler counts requests (calls of Do that returned, those it refused
// included) and accepts (calls the backend accepted); each call is
// refused locally, with ErrThrottled, with probability
//
//	max(0, (requests − K·accepts) / (requests + 1))
//
// With K = 2 (the default) the backend keeps getting about twice the
// requests it accepts: nothing is refused while at least half are
// accepted, and as the accepts fall the client sheds more of its load
// itself, never all of it, so it sees the backend recover. Lower K sheds
// sooner; higher K later. A call is counted when it returns, as go-zero
// does, not when it starts: calls in flight, not yet answered, would count
// as refused, and a burst of slow calls would throttle a healthy backend.
//
// What counts as accepted: a call that returns nil, or an error
// Options.Rejected says the backend did not refuse (default: every
// error is a refusal, as the SRE book counts a failed request), or any
// error once the caller's own ctx has ended.
//
// # Priority
//
// A call's class comes from its ctx (package priority): sheddable calls
// use K/2 (at least 1), default ones K, critical ones 2K, so sheddable
// traffic is refused first and critical traffic last.
//
// The clock is Options.Clock (package clock), for tests; the random
// draw has no public hook (the package's tests fix it). Stats counts
// calls, local refusals by class and backend refusals, for package
// metrics. A Throttler is safe for concurrent use: a call takes a mutex
// twice and allocates nothing.
package throttle
