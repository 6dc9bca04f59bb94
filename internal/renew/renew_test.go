package renew

import (
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestRenewsUntilStopped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		r := Start(time.Second, func() bool { calls.Add(1); return true })
		time.Sleep(3500 * time.Millisecond)
		r.Stop()
		r.Stop() // idempotent
		time.Sleep(5 * time.Second)
		if calls.Load() != 3 {
			t.Fatalf("%d renewals in 3.5 intervals then a stop, want 3", calls.Load())
		}
	})
}

func TestStopsWhenTheLeaseIsLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var calls atomic.Int32
		r := Start(time.Second, func() bool { return calls.Add(1) < 2 })
		time.Sleep(10 * time.Second)
		if calls.Load() != 2 {
			t.Fatalf("%d renewals, want 2 (the second reported the lease lost)", calls.Load())
		}
		r.Stop()
	})
}

func TestStopWaitsForACallInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var done atomic.Bool
		r := Start(time.Second, func() bool {
			time.Sleep(time.Second) // a slow renewal
			done.Store(true)
			return true
		})
		time.Sleep(1500 * time.Millisecond) // the first call is running
		r.Stop()
		if !done.Load() {
			t.Fatal("Stop returned while a renewal was still running")
		}
		var nilR *Renewer
		nilR.Stop()
	})
}
