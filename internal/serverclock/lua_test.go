package serverclock_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/scalekit-go/scalekit/clock"
	"github.com/scalekit-go/scalekit/internal/serverclock"
	"github.com/scalekit-go/scalekit/internal/testinfra"
)

func TestMain(m *testing.M) { testinfra.Main(m) }

// TestLua runs the Lua side against a real server: a set clock's time
// comes back as sent, a nil one's is Redis TIME.
func TestLua(t *testing.T) {
	r := testinfra.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script := redis.NewScript(serverclock.Lua + `
local us, ns = now_us_ns(ARGV[3], ARGV[4])
return {now_us(ARGV[1]), now_ms(ARGV[2]), us, ns}`)
	run := func(c clock.Clock) []int64 {
		us, ns := serverclock.MicrosNanos(c)
		v, err := script.Run(ctx, r.Client, nil, serverclock.Micros(c), serverclock.Millis(c), us, ns).Int64Slice()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	at := time.Unix(1_700_000_000, 123_456_789)
	if got, want := run(clock.NewManual(at)), []int64{at.UnixMicro(), at.UnixMilli(), at.UnixMicro(), 789}; !slices.Equal(got, want) {
		t.Fatalf("set clock: got %v, want %v", got, want)
	}
	before := time.Now()
	got := run(nil)
	after := time.Now()
	if got[0] < before.UnixMicro()-1000 || got[0] > after.UnixMicro()+1000 ||
		got[1] < before.UnixMilli()-1 || got[1] > after.UnixMilli()+1 ||
		got[2] < before.UnixMicro()-1000 || got[2] > after.UnixMicro()+1000 || got[3] != 0 {
		t.Fatalf("server clock: got %v, want Redis TIME between %v and %v", got, before, after)
	}
}
