package ratelimit_test

import (
	"testing"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/ratelimit"
	"github.com/scalekit-go/scalekit/ratelimit/ratelimittest"
)

func TestLocalConformance(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, p ratelimit.Policy, clk clock.Clock) ratelimit.Limiter {
		l, err := ratelimit.NewLocal(ratelimit.LocalOptions{Limits: p, Clock: clk})
		if err != nil {
			t.Fatal(err)
		}
		return l
	})
}

func TestConcurrencyConformance(t *testing.T) {
	ratelimittest.RunConcurrency(t, func(t *testing.T, limit int) ratelimit.ConcurrencyLimiter {
		c, err := ratelimit.NewConcurrency(ratelimit.ConcurrencyOptions{Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}
