package ratelimittest_test

import (
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

// A Limiter proves itself with one call from its own tests; Run drives it
// on a simulated clock (now), so the factory must make the limiter read
// time from it. In your limiter's _test.go:
//
//	func TestConformance(t *testing.T) { ratelimittest.Run(t, newLimiter) }
func Example() {
	var t *testing.T // the *testing.T of your TestXxx function
	ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, now func() time.Time) ratelimit.Limiter {
		l, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
