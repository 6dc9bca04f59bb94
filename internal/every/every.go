// Package every runs background chores (expiry sweeps) on a ticker until
// stopped.
package every

import (
	"context"
	"time"
)

// Run calls fn every interval, with a ctx bounded by the interval, until
// stop is closed. Run it in a goroutine the owner waits for.
func Run(stop <-chan struct{}, interval time.Duration, fn func(ctx context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			fn(ctx)
			cancel()
		}
	}
}
