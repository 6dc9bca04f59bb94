// Package renew keeps a lease alive: it calls a renewal function every
// interval, on a timer (no goroutine between calls), until the function
// reports the lease lost or the holder stops it. The idempotency
// heartbeat, the queue worker's job leases and ratelimitredis's
// concurrency slots use it.
package renew

import (
	"sync"
	"time"
)

// Renewer calls its function every interval. The zero value is not
// usable; see Start.
type Renewer struct {
	mu      sync.Mutex
	t       *time.Timer
	stopped bool
	running sync.WaitGroup // a call in flight; Stop waits for it
}

// Start calls fn every interval, first after one interval, until fn
// returns false (the lease is lost: renewing is pointless) or Stop.
func Start(interval time.Duration, fn func() (keep bool)) *Renewer {
	r := &Renewer{}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t = time.AfterFunc(interval, func() {
		r.mu.Lock()
		if r.stopped {
			r.mu.Unlock()
			return
		}
		r.running.Add(1)
		r.mu.Unlock()
		keep := fn()
		r.mu.Lock()
		if keep && !r.stopped {
			r.t.Reset(interval)
		}
		r.mu.Unlock()
		r.running.Done()
	})
	return r
}

// Stop ends the renewals and waits for a call in flight, so no renewal
// happens after Stop returns. It is idempotent and safe on a nil
// Renewer. It must not be called from the renewal function itself.
func (r *Renewer) Stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.stopped = true
	r.t.Stop()
	r.mu.Unlock()
	r.running.Wait()
}
