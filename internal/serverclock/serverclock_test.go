package serverclock_test

import (
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/serverclock"
)

func TestArguments(t *testing.T) {
	if serverclock.Micros(nil) != -1 || serverclock.Millis(nil) != -1 || serverclock.Param(nil) != nil {
		t.Fatal("a nil clock must send the server-clock sentinels")
	}
	if us, ns := serverclock.MicrosNanos(nil); us != -1 || ns != 0 {
		t.Fatalf("MicrosNanos(nil) = %d, %d", us, ns)
	}
	at := time.Unix(1_700_000_000, 123_456_789)
	c := clock.NewManual(at)
	if got := serverclock.Micros(c); got != at.UnixMicro() {
		t.Fatalf("Micros = %d", got)
	}
	if got := serverclock.Millis(c); got != at.UnixMilli() {
		t.Fatalf("Millis = %d", got)
	}
	if us, ns := serverclock.MicrosNanos(c); us != 1_700_000_000_123_456 || ns != 789 {
		t.Fatalf("MicrosNanos = %d, %d", us, ns)
	}
	if p, ok := serverclock.Param(c).(time.Time); !ok || !p.Equal(at) {
		t.Fatalf("Param = %v", serverclock.Param(c))
	}
	if got := serverclock.SQL(3); got != "coalesce($3::timestamptz, now())" {
		t.Fatalf("SQL(3) = %q", got)
	}
	if got := serverclock.Since(c, at.Add(-time.Second)); got != time.Second {
		t.Fatalf("Since = %v", got)
	}
}
