package ratelimittest_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

// A Limiter proves itself with one call from its own tests; Run drives it
// on a simulated clock (clk), so the factory must make the limiter read
// time from it. In your limiter's _test.go:
//
//	func TestConformance(t *testing.T) { ratelimittest.Run(t, newLimiter) }
func Example() {
	var t *testing.T // the *testing.T of your TestXxx function
	ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
		l, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}
