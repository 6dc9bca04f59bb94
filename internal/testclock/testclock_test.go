package testclock

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	c := New()
	start := c.Now()
	c.Add(90 * time.Second)
	c.Add(-30 * time.Second)
	if got := c.Now().Sub(start); got != time.Minute {
		t.Fatalf("moved %v, want 1m", got)
	}
}
