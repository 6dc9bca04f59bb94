package batch

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/requestid"
)

// A fetch that panics is logged with its batch's ctx (the first caller's
// values), so a requestid.NewLogHandler logger gives the line that
// request's ID.
func TestPanicLogCarriesTheRequestID(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	log := slog.New(requestid.NewLogHandler(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), nil)))
	l, err := New(func(context.Context, []int) (map[int]int, error) { panic("boom") }, Options{Wait: time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Load(requestid.NewContext(context.Background(), "req-batch"), 1); err == nil {
		t.Fatal("no error")
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, `msg="batch: fetch panicked"`) || !strings.Contains(out, "request_id=req-batch") {
		t.Fatalf("log:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
