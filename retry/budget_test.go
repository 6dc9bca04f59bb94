package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func newBudget(t testing.TB, o BudgetOptions) *Budget {
	t.Helper()
	b, err := NewBudget(o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// withdrawN withdraws until refused (at most limit times) and returns how
// many were allowed.
func withdrawN(b *Budget, limit int) int {
	n := 0
	for n < limit && b.Withdraw() {
		n++
	}
	return n
}

func TestBudgetDeposits(t *testing.T) {
	clk := testclock.New()
	b := newBudget(t, BudgetOptions{NoMinRetries: true, MaxTokens: 3, Clock: clk})
	if b.Withdraw() {
		t.Fatal("an empty budget with no floor allowed a retry")
	}
	for range 9 {
		b.Deposit()
	}
	if b.Withdraw() {
		t.Fatal("9 deposits of 0.1 paid for a retry")
	}
	b.Deposit() // exactly 1.0: no float drift
	if !b.Withdraw() || b.Withdraw() {
		t.Fatal("10 deposits of 0.1 should pay for exactly one retry")
	}
	for range 1000 {
		b.Deposit()
	}
	if st := b.Stats(); st.Tokens != 3 {
		t.Fatalf("tokens %v after 1000 deposits, want the cap 3", st.Tokens)
	}
	clk.Add(time.Hour) // no floor: time pays for nothing
	if n := withdrawN(b, 100); n != 3 {
		t.Fatalf("%d withdrawals from a full bucket of 3", n)
	}
	if st := b.Stats(); st != (BudgetStats{Deposits: 1010, Withdrawals: 4, Refusals: 4, Tokens: 0}) {
		t.Fatalf("stats %+v", st)
	}
}

func TestBudgetFloor(t *testing.T) {
	clk := testclock.New()
	b := newBudget(t, BudgetOptions{Ratio: 0.5, MinRetriesPerSecond: 2, MaxTokens: 10, Clock: clk})
	// The floor starts full: one second's worth.
	if n := withdrawN(b, 100); n != 2 {
		t.Fatalf("%d retries from a fresh floor of 2/s", n)
	}
	clk.Add(250 * ms) // half a token
	if b.Withdraw() {
		t.Fatal("250ms at 2/s paid for a retry")
	}
	clk.Add(250 * ms) // the remainder was kept: one token now
	if n := withdrawN(b, 100); n != 1 {
		t.Fatalf("500ms at 2/s paid for %d retries, want 1", n)
	}
	clk.Add(time.Hour) // the floor holds one second's worth at most
	if n := withdrawN(b, 100); n != 2 {
		t.Fatalf("after an hour: %d retries, want the floor's 2", n)
	}
	// Deposits are spent before the floor.
	clk.Add(time.Second)
	b.Deposit()
	b.Deposit()
	if st := b.Stats(); st.Tokens != 3 {
		t.Fatalf("tokens %v, want 1 deposited + 2 floor", st.Tokens)
	}
	if n := withdrawN(b, 100); n != 3 {
		t.Fatalf("%d retries, want 3", n)
	}
	// A clock going back pays nothing and does not break the floor.
	clk.Add(-time.Minute)
	if b.Withdraw() {
		t.Fatal("a clock going back paid for a retry")
	}
	clk.Add(time.Second)
	if n := withdrawN(b, 100); n != 2 {
		t.Fatalf("%d retries a second after the clock went back, want 2", n)
	}
	// Fractional rates keep their remainder exactly: 3/s in steps of 100ms.
	b3 := newBudget(t, BudgetOptions{MinRetriesPerSecond: 3, Clock: clk})
	withdrawN(b3, 100)
	got := 0
	for range 50 { // 5s
		clk.Add(100 * ms)
		got += withdrawN(b3, 100)
	}
	if got != 15 {
		t.Fatalf("5s at 3/s in 100ms steps paid for %d retries, want 15", got)
	}
}

func TestBudgetOptionErrors(t *testing.T) {
	for _, c := range []struct {
		o     BudgetOptions
		field string
	}{
		{BudgetOptions{Ratio: -1}, "BudgetOptions.Ratio"},
		{BudgetOptions{Ratio: 0.0001}, "BudgetOptions.Ratio"},
		{BudgetOptions{Ratio: math.NaN()}, "BudgetOptions.Ratio"},
		{BudgetOptions{Ratio: math.Inf(1)}, "BudgetOptions.Ratio"},
		{BudgetOptions{MinRetriesPerSecond: -1}, "BudgetOptions.MinRetriesPerSecond"},
		{BudgetOptions{MinRetriesPerSecond: math.NaN()}, "BudgetOptions.MinRetriesPerSecond"},
		{BudgetOptions{MinRetriesPerSecond: 1e7}, "BudgetOptions.MinRetriesPerSecond"},
		{BudgetOptions{MaxTokens: 0.5}, "BudgetOptions.MaxTokens"},
		{BudgetOptions{MaxTokens: 1e10}, "BudgetOptions.MaxTokens"},
	} {
		if _, err := NewBudget(c.o); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("NewBudget(%+v) = %v; want ErrInvalid naming %s", c.o, err, c.field)
		}
	}
	if _, err := NewBudget(BudgetOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestBudgetRefusal: an empty budget stops Do at once with the original
// error, wrapped.
func TestBudgetRefusal(t *testing.T) {
	b := newBudget(t, BudgetOptions{NoMinRetries: true})
	r := newR(t, Options{MaxAttempts: 5, Backoff: Constant{}, Budget: b})
	calls := 0
	err := r.Do(context.Background(), failing(100, &calls))
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Reason != ReasonBudget || ee.Attempts != 1 || calls != 1 ||
		!errors.Is(err, ErrBudgetExhausted) || !errors.Is(err, ErrExhausted) || !errors.Is(err, errBoom) {
		t.Fatalf("%v after %d calls", err, calls)
	}
	if st := r.Stats(); st.BudgetRefusals != 1 || st.Exhausted != 1 {
		t.Fatalf("stats %+v", st)
	}
	// Ten calls deposit one token: one retry.
	for range 9 {
		r.Do(context.Background(), func(context.Context) error { return nil })
	}
	calls = 0
	if err := r.Do(context.Background(), failing(1, &calls)); err != nil || calls != 2 {
		t.Fatalf("%v after %d calls; the 11th deposit should pay for a retry", err, calls)
	}
}

func TestBudgetHammer(t *testing.T) {
	clk := testclock.New()
	b := newBudget(t, BudgetOptions{Ratio: 0.25, MinRetriesPerSecond: 5, MaxTokens: 1e6, Clock: clk})
	const goroutines, ops = 16, 2000
	var allowed, deposits atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range ops {
				switch {
				case g == 0 && i%500 == 0:
					clk.Add(200 * ms) // 4 x 200ms at 5/s: 4 floor tokens at most
				case (g+i)%2 == 0:
					b.Deposit()
					deposits.Add(1)
				default:
					if b.Withdraw() {
						allowed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	st := b.Stats()
	// Every token is spent or left: the deposits' (0.25 each), the floor's
	// first 5 and up to 4 refills.
	total := float64(st.Withdrawals) + st.Tokens
	lo := float64(deposits.Load())/4 + 5
	if int64(st.Withdrawals) != allowed.Load() || int64(st.Deposits) != deposits.Load() || total < lo || total > lo+4 {
		t.Fatalf("stats %+v, allowed %d, deposits %d: %v tokens in all, want [%v, %v]", st, allowed.Load(), deposits.Load(), total, lo, lo+4)
	}
}

// TestAmplification: a dependency that always fails, behind 3 nested
// layers (think handler -> service -> repository, in one process) that each
// retry it up to 3 times with a Retrier of their own. 1000 top-level calls
// arrive at 1000/s inside a synctest bubble, so the default jittered
// backoff (100ms base) takes no wall time, and the budgets' floors refill
// by the same fake clock as in production.
//
// Without budgets, every layer multiplies: the bottom sees 3^3 = 27x.
//
// With budgets, the realistic set-up is one Budget per client (the SRE
// book's per-client retry budget, Finagle's per-client RetryBudget): each
// layer's Retrier gets its own, default options (Ratio 0.1, floor
// 10/s). A budget alone would still let each layer add 10% on top of the
// one below, (1.1)^3 = 1.33x; what keeps the bottom near 1.1x is that only
// top-level calls deposit: the middle and bottom layers run inside the
// top's Do (seen through ctx), so their retries live on their floor of
// 10/s, which at 1000 calls/s is 1% each. The same holds with one Budget
// shared by all three layers. The last case cuts the ctx between layers,
// as a process boundary would, to show what is left then: each layer's
// budget still bounds it to 1.1x, about 1.33x in all, not 27x.
func TestAmplification(t *testing.T) {
	const calls = 1000
	type setup struct {
		name    string
		budgets func() [3]*Budget // top, middle, bottom
		cutCtx  bool
		max     float64
	}
	own := func() [3]*Budget {
		return [3]*Budget{newBudget(t, BudgetOptions{}), newBudget(t, BudgetOptions{}), newBudget(t, BudgetOptions{})}
	}
	for _, s := range []setup{
		{"no budget", func() [3]*Budget { return [3]*Budget{} }, false, 27},
		{"a budget per layer", own, false, 1.2},
		{"one budget shared by the layers", func() [3]*Budget { b := newBudget(t, BudgetOptions{}); return [3]*Budget{b, b, b} }, false, 1.2},
		{"a budget per layer, ctx cut between layers", own, true, 1.45},
	} {
		t.Run(s.name, func(t *testing.T) {
			var ratio float64
			synctest.Test(t, func(t *testing.T) {
				var mu sync.Mutex // a seeded, shared source: the same jitter every run
				rng := rand.New(rand.NewPCG(1, 2))
				rnd := func() float64 { mu.Lock(); defer mu.Unlock(); return rng.Float64() }

				var bottom atomic.Int64
				dependency := func(context.Context) error { bottom.Add(1); return errBoom }
				budgets := s.budgets() // created in the bubble: they read its clock
				layer := func(b *Budget, next func(context.Context) error) func(context.Context) error {
					r := newR(t, Options{MaxAttempts: 3, Budget: b, rand: rnd})
					return func(ctx context.Context) error {
						if s.cutCtx {
							ctx = context.Background() // another process: no ctx values
						}
						return r.Do(ctx, next)
					}
				}
				top := layer(budgets[0], layer(budgets[1], layer(budgets[2], dependency)))
				var wg sync.WaitGroup
				for range calls {
					wg.Go(func() {
						if err := top(context.Background()); !errors.Is(err, errBoom) {
							t.Error(err)
						}
					})
					time.Sleep(ms)
				}
				wg.Wait()
				ratio = float64(bottom.Load()) / calls
			})
			t.Logf("%s: the dependency saw %.3fx the top-level calls", s.name, ratio)
			if s.max == 27 && ratio != 27 {
				t.Fatalf("without budget: %.3fx, want exactly 27x", ratio)
			}
			if ratio > s.max {
				t.Fatalf("%.3fx, want <= %.2fx", ratio, s.max)
			}
		})
	}
}
