package every

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		stop := make(chan struct{})
		calls := 0
		done := make(chan struct{})
		go func() {
			Run(stop, time.Second, func(ctx context.Context) {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("the chore's ctx has no deadline")
				}
				calls++
			})
			close(done)
		}()
		time.Sleep(3500 * time.Millisecond)
		close(stop)
		<-done
		if calls != 3 {
			t.Fatalf("%d calls in 3.5 intervals, want 3", calls)
		}
	})
}
