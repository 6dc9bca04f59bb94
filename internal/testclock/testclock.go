// Package testclock starts a clock.Manual where the tests expect it: at
// 2026-01-01 00:00 UTC (timer behaviour is tested with testing/synctest
// instead).
package testclock

import (
	"time"

	"github.com/scalekit-go/scalekit/clock"
)

// Clock is clock.Manual.
type Clock = clock.Manual

// New returns a clock at 2026-01-01 00:00 UTC.
func New() *Clock { return clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }
