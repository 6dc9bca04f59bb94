package pause

import (
	"testing"
	"testing/synctest"
	"time"
)

func TestFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		done := make(chan struct{})
		start := time.Now()
		if !For(done, time.Second) || time.Since(start) != time.Second {
			t.Fatalf("For returned after %v, want the full second", time.Since(start))
		}
		go func() {
			time.Sleep(100 * time.Millisecond)
			close(done)
		}()
		start = time.Now()
		if For(done, time.Hour) || time.Since(start) != 100*time.Millisecond {
			t.Fatalf("For with done closed after 100ms returned after %v", time.Since(start))
		}
	})
}

func TestGrowing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := Growing{Min: 100 * time.Millisecond, Max: time.Second}
		var got []time.Duration
		for range 6 {
			start := time.Now()
			if !g.Wait(nil) {
				t.Fatal("Wait stopped with done never closed")
			}
			got = append(got, time.Since(start))
		}
		want := []time.Duration{100, 200, 400, 800, 1000, 1000}
		for i := range want {
			if got[i] != want[i]*time.Millisecond {
				t.Fatalf("waits %v, want %v ms", got, want)
			}
		}
		g.Reset()
		start := time.Now()
		g.Wait(nil)
		if time.Since(start) != 100*time.Millisecond {
			t.Fatalf("after Reset waited %v, want Min", time.Since(start))
		}
		done := make(chan struct{})
		close(done)
		if g.Wait(done) {
			t.Fatal("Wait with done closed reported a full wait")
		}
	})
}
