package cache

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/testclock"
)

func TestGetInfo(t *testing.T) {
	clk := testclock.New()
	start := clk.Now()
	ctx := context.Background()
	c := newCache(t, Options{TTL: 10 * time.Second, StaleFor: 5 * time.Second, NoJitter: true, NoEarlyRefresh: true, Clock: clk})
	load := func(ctx context.Context, key string) (string, error) { return "v-" + key, nil }

	want := Info{FreshUntil: start.Add(10 * time.Second), StaleUntil: start.Add(15 * time.Second)}
	check := func(name string, got Info, want Info) {
		t.Helper()
		if !got.FreshUntil.Equal(want.FreshUntil) || !got.StaleUntil.Equal(want.StaleUntil) {
			t.Fatalf("%s: Info %+v, want %+v", name, got, want)
		}
	}
	v, info, err := c.GetInfo(ctx, "a", load)
	if err != nil || v != "v-a" {
		t.Fatalf("GetInfo = %q, %v", v, err)
	}
	check("miss", info, want)

	clk.Add(3 * time.Second)
	_, info, _ = c.GetInfo(ctx, "a", load)
	check("hit", info, want)

	clk.Add(9 * time.Second) // stale: served while a refresh runs
	v, info, err = c.GetInfo(ctx, "a", load)
	if err != nil || v != "v-a" {
		t.Fatalf("stale GetInfo = %q, %v", v, err)
	}
	check("stale", info, want)

	// A remembered ErrNotFound answers with the negative entry's instants.
	now := clk.Now()
	notFound := func(ctx context.Context, key string) (string, error) { return "", ErrNotFound }
	_, info, err = c.GetInfo(ctx, "gone", notFound)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("err %v, want ErrNotFound", err)
	}
	check("not found", info, Info{FreshUntil: now.Add(c.o.NegativeTTL), StaleUntil: now.Add(c.o.NegativeTTL)})

	// Any other error: the zero Info.
	boom := errors.New("boom")
	_, info, err = c.GetInfo(ctx, "err", func(ctx context.Context, key string) (string, error) { return "", boom })
	if !errors.Is(err, boom) || !info.FreshUntil.IsZero() || !info.StaleUntil.IsZero() {
		t.Fatalf("GetInfo of a failing load = %+v, %v", info, err)
	}
}

// TestGetInfoThroughStore: an instance that reads another's value from the
// Store reports the value's own instants, not its L1 copy's.
func TestGetInfoThroughStore(t *testing.T) {
	clk := testclock.New()
	start := clk.Now()
	ctx := context.Background()
	store := NewMemoryStore(MemoryStoreOptions{Clock: clk})
	o := Options{TTL: 10 * time.Second, StaleFor: 20 * time.Second, NoJitter: true, NoEarlyRefresh: true, Clock: clk, Store: store}
	a, b := newCache(t, o), newCache(t, o)
	if err := a.Set(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	clk.Add(4 * time.Second)
	v, info, err := b.GetInfo(ctx, "k", func(ctx context.Context, key string) (string, error) {
		t.Error("loader called: the Store holds the value")
		return "", nil
	})
	if err != nil || v != "v" {
		t.Fatalf("GetInfo = %q, %v", v, err)
	}
	if !info.FreshUntil.Equal(start.Add(10*time.Second)) || !info.StaleUntil.Equal(start.Add(30*time.Second)) {
		t.Fatalf("Info %+v, want fresh until +10s and stale until +30s", info)
	}
	ns := a.Namespace("user")
	_, info, err = ns.GetInfo(ctx, "1", func(ctx context.Context, id string) (string, error) { return "u" + id, nil })
	if err != nil || !info.FreshUntil.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("Namespace.GetInfo = %+v, %v", info, err)
	}
}
