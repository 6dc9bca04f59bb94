package poll

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	var n atomic.Int32
	go func() {
		for i := 0; i < 3; i++ {
			time.Sleep(5 * time.Millisecond)
			n.Add(1)
		}
	}()
	if took := Until(t, 5*time.Second, "three ticks", func() bool { return n.Load() == 3 }); took <= 0 {
		t.Fatalf("waited %v", took)
	}
}

// fatalT records Fatalf instead of stopping the test.
type fatalT struct {
	testing.TB
	failed string
}

func (f *fatalT) Helper()                           {}
func (f *fatalT) Fatalf(format string, args ...any) { f.failed = format; panic(f) }

func TestUntilFailsAfterTimeout(t *testing.T) {
	ft := &fatalT{TB: t}
	func() {
		defer func() {
			if r := recover(); r != ft {
				panic(r)
			}
		}()
		Until(ft, 30*time.Millisecond, "never", func() bool { return false })
	}()
	if ft.failed == "" {
		t.Fatal("Until did not fail the test after its timeout")
	}
}
