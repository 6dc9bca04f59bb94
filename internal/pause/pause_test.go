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
