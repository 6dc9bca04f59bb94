package retry

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/stripe"
)

// BudgetOptions configures NewBudget. The zero value works: retries may add
// 10% to the calls, plus 10 retries per second whatever the traffic, with
// at most 100 retries banked.
type BudgetOptions struct {
	// Ratio is the tokens each call deposits, one token paying for one
	// retry: the share of extra load retries may add, in [0.001, 100].
	// Default: 0.1 (10%).
	Ratio float64
	// MinRetriesPerSecond is a floor: this many retries per second are
	// allowed whatever the traffic (a burst of one second's worth), so a
	// client with few calls can still retry. In [0.001, 1e6].
	// Default: 10. Set NoMinRetries for no floor.
	MinRetriesPerSecond float64
	// NoMinRetries removes the floor: only deposits pay for retries.
	// Default: false.
	NoMinRetries bool
	// MaxTokens caps the banked deposits, so a long healthy spell cannot
	// save up a retry storm for the next outage. In [1, 1e9].
	// Default: 100.
	MaxTokens float64
	// Clock replaces the system clock (see package clock); nil is the real
	// time. The floor refills by it.
	Clock clock.Clock
}

func (o BudgetOptions) withDefaults() (BudgetOptions, error) {
	if o.Ratio == 0 {
		o.Ratio = 0.1
	}
	if o.MinRetriesPerSecond == 0 {
		o.MinRetriesPerSecond = 10
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = 100
	}
	bad := func(f string, args ...any) (BudgetOptions, error) {
		return o, fmt.Errorf("%w: "+f, append([]any{ErrInvalid}, args...)...)
	}
	// Written as !(in range) so that NaN is rejected too.
	switch {
	case !(o.Ratio >= 0.001 && o.Ratio <= 100):
		return bad("BudgetOptions.Ratio must be in [0.001, 100] (0: 0.1), got %v", o.Ratio)
	case !(o.MinRetriesPerSecond >= 0.001 && o.MinRetriesPerSecond <= 1e6):
		return bad("BudgetOptions.MinRetriesPerSecond must be in [0.001, 1e6] (0: 10; NoMinRetries for none), got %v", o.MinRetriesPerSecond)
	case !(o.MaxTokens >= 1 && o.MaxTokens <= 1e9):
		return bad("BudgetOptions.MaxTokens must be in [1, 1e9] (0: 100), got %v", o.MaxTokens)
	}
	return o, nil
}

// Budget is a retry budget (Finagle's RetryBudget, gRPC's retry
// throttling): a token bucket shared by everything that retries calls to
// one dependency. Each call deposits Ratio tokens, each retry withdraws
// one; a floor of MinRetriesPerSecond keeps quiet clients able to retry.
// When the bucket is empty, retries stop and the caller gets the original
// error (in an *ExhaustedError with ReasonBudget). While a dependency is
// healthy almost nothing is retried and the budget fills up; when it fails
// every call, it sees about 1 + Ratio times the calls instead of
// MaxAttempts times.
//
// A Retrier with a Budget deposits for top-level calls only: a Do running
// inside another Do (or Hedge) of a Retrier with a Budget, seen through its
// ctx, withdraws for its retries but deposits nothing, so nested layers
// cannot multiply one request (see the package doc).
//
// Deposits are lock-free (and write nothing while the bucket is full);
// withdrawals from the floor take a short mutex. Tokens are counted in
// exact thousandths, so ten deposits of 0.1 pay for exactly one retry. A
// Budget is safe for concurrent use.
type Budget struct {
	clock            clock.Clock
	ratio, cap, rate int64 // in milli-tokens; rate per second, 0: no floor

	tokens atomic.Int64 // deposits, milli-tokens, up to cap

	mu    sync.Mutex
	floor int64     // milli-tokens, up to rate
	last  time.Time // when floor was last refilled

	deposits              stripe.Counter
	withdrawals, refusals atomic.Uint64
}

const milli = 1000 // milli-tokens per token

// NewBudget returns a Budget, or an error naming the invalid option.
func NewBudget(o BudgetOptions) (*Budget, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	toMilli := func(f float64) int64 { return int64(math.Round(f * milli)) }
	b := &Budget{clock: o.Clock, ratio: toMilli(o.Ratio), cap: toMilli(o.MaxTokens)}
	if !o.NoMinRetries {
		b.rate = toMilli(o.MinRetriesPerSecond)
		b.floor = b.rate // the floor starts full
		b.last = clock.Now(o.Clock)
	}
	return b, nil
}

// Deposit records one call, earning Ratio tokens (up to MaxTokens). Do and
// Hedge call it; call it yourself only for retry loops of your own.
func (b *Budget) Deposit() {
	b.deposits.Add(1)
	for {
		t := b.tokens.Load()
		if t >= b.cap {
			return
		}
		if b.tokens.CompareAndSwap(t, min(b.cap, t+b.ratio)) {
			return
		}
	}
}

// Withdraw asks for one retry: it takes a token, from the deposits first
// and then from the floor, and reports false when there is none. Do and
// Hedge call it; call it yourself only for retry loops of your own.
func (b *Budget) Withdraw() bool {
	for {
		t := b.tokens.Load()
		if t < milli {
			break
		}
		if b.tokens.CompareAndSwap(t, t-milli) {
			b.withdrawals.Add(1)
			return true
		}
	}
	if b.rate > 0 {
		b.mu.Lock()
		b.refill()
		ok := b.floor >= milli
		if ok {
			b.floor -= milli
		}
		b.mu.Unlock()
		if ok {
			b.withdrawals.Add(1)
			return true
		}
	}
	b.refusals.Add(1)
	return false
}

// refill adds the floor's tokens earned since last; b.mu is held.
func (b *Budget) refill() {
	now := clock.Now(b.clock)
	el := now.Sub(b.last)
	switch {
	case el < 0: // the clock went back: start again from now
		b.last = now
		return
	case el >= time.Second: // a second fills the floor
		b.floor, b.last = b.rate, now
		return
	}
	add := b.rate * int64(el) / int64(time.Second) // < 1e9 * 1e9: no overflow
	switch {
	case add == 0: // too soon: keep the time for later
	case b.floor+add >= b.rate:
		b.floor, b.last = b.rate, now
	default:
		b.floor += add
		// Advance by the time the tokens took, keeping the remainder.
		b.last = b.last.Add(time.Duration(add * int64(time.Second) / b.rate))
	}
}

// BudgetStats is a snapshot of a Budget.
type BudgetStats struct {
	// Deposits counts calls recorded; Withdrawals retries allowed;
	// Refusals retries refused.
	Deposits, Withdrawals, Refusals uint64
	// Tokens is how many retries would be allowed now (deposits plus
	// floor).
	Tokens float64
}

// Stats returns a snapshot.
func (b *Budget) Stats() BudgetStats {
	st := BudgetStats{Deposits: b.deposits.Load(), Withdrawals: b.withdrawals.Load(), Refusals: b.refusals.Load()}
	t := b.tokens.Load()
	if b.rate > 0 {
		b.mu.Lock()
		b.refill()
		t += b.floor
		b.mu.Unlock()
	}
	st.Tokens = float64(t) / milli
	return st
}
