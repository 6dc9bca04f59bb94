package retry

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestExponentialCeiling(t *testing.T) {
	e := Exponential{Base: 100 * ms, Cap: 10 * time.Second}
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second, 10 * time.Second}
	for i, w := range want {
		if got := e.ceiling(i + 1); got != w {
			t.Errorf("ceiling(%d) = %v, want %v", i+1, got, w)
		}
	}
	// No overflow, whatever the attempt number.
	for _, attempt := range []int{-5, 0, 62, 63, 64, 1000, math.MaxInt} {
		got := e.ceiling(attempt)
		if got < 100*ms || got > 10*time.Second {
			t.Errorf("ceiling(%d) = %v, outside [Base, Cap]", attempt, got)
		}
	}
	if got := (Exponential{Base: time.Duration(math.MaxInt64 / 2), Cap: math.MaxInt64}).ceiling(3); got != math.MaxInt64 {
		t.Errorf("huge base: %v, want the cap", got)
	}
	// The zero value: base 100ms, cap 10s; a Base over 10s raises the cap.
	if got := (Exponential{}).ceiling(1); got != 100*ms {
		t.Errorf("Exponential{} first ceiling %v, want 100ms", got)
	}
	if got := (Exponential{}).ceiling(50); got != 10*time.Second {
		t.Errorf("Exponential{} cap %v, want 10s", got)
	}
	if got := (Exponential{Base: 20 * time.Second}).ceiling(3); got != 20*time.Second {
		t.Errorf("Base 20s, no Cap: %v, want 20s", got)
	}
}

// TestBackoffNext checks each policy at the ends and middle of r's range.
func TestBackoffNext(t *testing.T) {
	const almost1 = 1 - 1e-12
	base, cp := 100*ms, 10*time.Second
	ex := func(j Jitter) Exponential { return Exponential{Base: base, Cap: cp, Jitter: j} }
	for _, c := range []struct {
		name    string
		b       Backoff
		attempt int
		prev    time.Duration
		r       float64
		want    time.Duration
	}{
		{"full r=0", ex(FullJitter), 3, 0, 0, 0},
		{"full r=.5", ex(FullJitter), 3, 0, 0.5, 200 * ms},
		{"full r~1", ex(FullJitter), 3, 0, almost1, 400*ms - 1},
		{"full capped", ex(FullJitter), 30, 0, 0.5, 5 * time.Second},
		{"equal r=0", ex(EqualJitter), 3, 0, 0, 200 * ms},
		{"equal r=.5", ex(EqualJitter), 3, 0, 0.5, 300 * ms},
		{"equal r~1", ex(EqualJitter), 3, 0, almost1, 400*ms - 1},
		{"decorrelated first r=0", ex(DecorrelatedJitter), 1, 0, 0, base},
		{"decorrelated first r=.5", ex(DecorrelatedJitter), 1, 0, 0.5, 200 * ms},  // rand(100ms, 300ms)
		{"decorrelated r=.5", ex(DecorrelatedJitter), 2, 300 * ms, 0.5, 500 * ms}, // rand(100ms, 900ms)
		{"decorrelated capped", ex(DecorrelatedJitter), 9, 8 * time.Second, 0.9, cp},
		{"decorrelated huge prev", ex(DecorrelatedJitter), 9, math.MaxInt64, 0.5, cp},
		{"none", ex(NoJitter), 4, 0, 0.3, 800 * ms},
		{"constant", Constant{D: 7 * ms}, 9, time.Hour, 0.9, 7 * ms},
		{"func", BackoffFunc(func(a int, p time.Duration, r float64) time.Duration { return time.Duration(a) * p }), 3, ms, 0, 3 * ms},
	} {
		if got := c.b.Next(c.attempt, c.prev, c.r); got != c.want {
			t.Errorf("%s: Next(%d, %v, %v) = %v, want %v", c.name, c.attempt, c.prev, c.r, got, c.want)
		}
	}
}

// TestJitterDistributions draws 100k waits per case from a seeded source
// and checks bounds, mean and a coarse histogram against the AWS
// definitions.
func TestJitterDistributions(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 9))
	const n = 100_000
	base, cp := 100*ms, 10*time.Second

	// check samples n waits and compares them with the uniform
	// distribution on [lo, hi]; atHi is the share expected exactly at hi
	// (the cap), the rest being uniform on [lo, hi).
	check := func(name string, lo, hi time.Duration, atHi float64, next func() time.Duration) {
		t.Helper()
		var sum float64
		var bins [10]int
		capped := 0
		for range n {
			w := next()
			if w < lo || w > hi {
				t.Fatalf("%s: wait %v outside [%v, %v]", name, w, lo, hi)
			}
			if w == hi && atHi > 0 {
				capped++
				continue
			}
			sum += float64(w)
			bins[min(9, int(10*float64(w-lo)/float64(hi-lo)))]++
		}
		if atHi > 0 {
			if got := float64(capped) / n; math.Abs(got-atHi) > 0.01 {
				t.Fatalf("%s: %.3f of waits at the cap, want %.3f", name, got, atHi)
			}
			return // the rest is uniform below the cap: checked elsewhere
		}
		mean, want := sum/n, float64(lo+hi)/2
		if math.Abs(mean-want) > 0.005*float64(hi-lo) {
			t.Fatalf("%s: mean %v, want %v", name, time.Duration(mean), time.Duration(want))
		}
		for i, b := range bins { // uniform: each tenth of the range holds ~10%
			if math.Abs(float64(b)/n-0.1) > 0.005 {
				t.Fatalf("%s: bin %d holds %.4f of the waits, want 0.1", name, i, float64(b)/n)
			}
		}
	}
	for attempt := 1; attempt <= 9; attempt++ {
		tt := min(cp, base<<(attempt-1))
		full := Exponential{Base: base, Cap: cp, Jitter: FullJitter}
		check("full", 0, tt, 0, func() time.Duration { return full.Next(attempt, 0, rng.Float64()) })
		equal := Exponential{Base: base, Cap: cp, Jitter: EqualJitter}
		check("equal", tt/2, tt, 0, func() time.Duration { return equal.Next(attempt, 0, rng.Float64()) })
	}
	dec := Exponential{Base: base, Cap: cp, Jitter: DecorrelatedJitter}
	// Below the cap: uniform on [base, 3*prev].
	check("decorrelated", base, 600*ms, 0, func() time.Duration { return dec.Next(2, 200*ms, rng.Float64()) })
	// prev 5s: rand(100ms, 15s) capped at 10s, so 5/14.9 of the waits are
	// the cap.
	check("decorrelated capped", base, cp, 5/14.9, func() time.Duration { return dec.Next(5, 5*time.Second, rng.Float64()) })
	// Chained as Do chains it: always in [base, min(cap, 3*prev)].
	prev := time.Duration(0)
	for i := range n {
		w := dec.Next(i%30+1, prev, rng.Float64())
		if hi := min(cp, 3*max(prev, base)); w < base || w > hi {
			t.Fatalf("decorrelated chain: %v outside [%v, %v] (prev %v)", w, base, hi, prev)
		}
		prev = w
		if i%30 == 29 {
			prev = 0
		}
	}
}

func TestBackoffValidation(t *testing.T) {
	for _, c := range []struct {
		b     Backoff
		field string
	}{
		{Exponential{Base: -1}, "Exponential.Base"},
		{Exponential{Cap: -1}, "Exponential.Cap"},
		{Exponential{Base: time.Second, Cap: ms}, "Exponential.Cap"},
		{Exponential{Jitter: 9}, "Exponential.Jitter"},
		{&Exponential{Jitter: -1}, "Exponential.Jitter"},
		{(*Exponential)(nil), "nil *Exponential"},
		{Constant{D: -1}, "Constant.D"},
		{(*Constant)(nil), "nil *Constant"},
		{BackoffFunc(nil), "nil BackoffFunc"},
	} {
		_, err := New(Options{Backoff: c.b})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "Options.Backoff") || !strings.Contains(err.Error(), c.field) {
			t.Errorf("New(Backoff: %#v) = %v; want ErrInvalid naming %s", c.b, err, c.field)
		}
	}
	for _, b := range []Backoff{Exponential{}, Exponential{Base: ms}, Exponential{Base: ms, Cap: ms}, &Exponential{}, Constant{}, &Constant{D: ms}} {
		if _, err := New(Options{Backoff: b}); err != nil {
			t.Errorf("New(Backoff: %#v) = %v", b, err)
		}
	}
	if FullJitter.String() != "full" || DecorrelatedJitter.String() != "decorrelated" || Jitter(7).String() != "Jitter(7)" {
		t.Error("Jitter.String")
	}
}

// TestBackoffNextSaturates (issue 15 item 5): Next multiplies r by a
// duration; with a random source that breaks its contract ([0, 1)) and a cap near
// math.MaxInt64 the float product used to overflow time.Duration (a
// negative or wrapped wait), and with an ordinary cap it passed the cap.
// Whatever r, every wait stays in [0, Cap] (decorrelated: [Base, Cap]).
func TestBackoffNextSaturates(t *testing.T) {
	const huge = time.Duration(math.MaxInt64)
	for _, cp := range []time.Duration{10 * time.Second, huge} {
		for _, j := range []Jitter{FullJitter, EqualJitter, DecorrelatedJitter, NoJitter} {
			e := Exponential{Base: 100 * ms, Cap: cp, Jitter: j}
			for _, r := range []float64{0, 0.5, 1, 1.5, 2, math.Inf(1), math.NaN(), -0.5, math.Inf(-1)} {
				for _, attempt := range []int{1, 10, 100} {
					for _, prev := range []time.Duration{0, cp / 2, cp} {
						got := e.Next(attempt, prev, r)
						lo := time.Duration(0)
						if j == DecorrelatedJitter {
							lo = e.Base
						}
						if got < lo || got > cp {
							t.Errorf("%v cap %v: Next(%d, %v, %v) = %v, outside [%v, %v]", j, cp, attempt, prev, r, got, lo, cp)
						}
					}
				}
			}
		}
	}
}
