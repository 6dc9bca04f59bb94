package httpcache

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/internal/testclock"
)

func TestControlWrite(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 700e6, time.UTC)
	for _, c := range []struct {
		c    Control
		want string
	}{
		{Control{}, "max-age=0"},
		{Control{Public: true, MaxAge: 60 * time.Second, SMaxAge: time.Hour, StaleWhileRevalidate: 30 * time.Second, StaleIfError: time.Minute}, "public, max-age=60, s-maxage=3600, stale-while-revalidate=30, stale-if-error=60"},
		{Control{Private: true, NoCache: true, MaxAge: 1500 * time.Millisecond}, "private, no-cache, max-age=1"},
		{Control{Public: true, MaxAge: 365 * 24 * time.Hour, Immutable: true}, "public, max-age=31536000, immutable"},
		{Control{NoStore: true, Public: true, MaxAge: time.Minute}, "no-store"},
		{Control{Public: true, MaxAge: 100 * time.Second, Age: 40 * time.Second}, "public, max-age=100"},
	} {
		h := http.Header{"Age": {"99"}, "Expires": {"0"}}
		if err := c.c.Write(h, now); err != nil {
			t.Fatalf("%+v: %v", c.c, err)
		}
		if got := h.Get("Cache-Control"); got != c.want {
			t.Errorf("%+v: Cache-Control %q, want %q", c.c, got, c.want)
		}
		got := checkCaching(t, h)
		if !got.date.Equal(now.Truncate(time.Second)) {
			t.Errorf("Date %v, want %v", got.date, now)
		}
		if got.age != int64(c.c.Age/time.Second) {
			t.Errorf("%+v: Age %d", c.c, got.age)
		}
	}
}

func TestControlInvalid(t *testing.T) {
	for _, c := range []struct {
		c     Control
		field string
	}{
		{Control{Public: true, Private: true}, "Private"},
		{Control{Private: true, SMaxAge: time.Second}, "SMaxAge"},
		{Control{MaxAge: -time.Second}, "MaxAge"},
		{Control{StaleWhileRevalidate: -1}, "StaleWhileRevalidate"},
		{Control{StaleIfError: -1}, "StaleIfError"},
		{Control{SMaxAge: -1}, "SMaxAge"},
		{Control{MaxAge: time.Second, Age: 2 * time.Second}, "Age"},
	} {
		h := http.Header{}
		err := c.c.Write(h, time.Now())
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%+v: %v, want ErrInvalid naming %s", c.c, err, c.field)
		}
		if len(h) != 0 {
			t.Errorf("%+v: wrote %v after an error", c.c, h)
		}
	}
}

// TestPolicyFromCache derives the headers from real cache entries at
// several points of their life, and checks every number against the
// entry's instants.
func TestPolicyFromCache(t *testing.T) {
	clk := testclock.New()
	ctx := context.Background()
	c, err := cache.New[string](cache.Options{TTL: 90 * time.Second, StaleFor: 30 * time.Second, Jitter: 0.2, Clock: clk, NoEarlyRefresh: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	load := func(ctx context.Context, key string) (string, error) { return "v", nil }
	policies := []Policy{{}, {BrowserMaxAge: 10 * time.Second}, {Private: true, StaleIfError: time.Minute, Immutable: true}, {NoStaleWhileRevalidate: true}}
	stale := 0
	for _, step := range []time.Duration{0, 1300 * time.Millisecond, 40 * time.Second, 55 * time.Second, 5 * time.Second, 30 * time.Second} {
		clk.Add(step)
		now := clk.Now()
		_, info, err := c.GetInfo(ctx, "k", load)
		if err != nil {
			t.Fatal(err)
		}
		if now.After(info.FreshUntil) {
			stale++
		}
		for _, p := range policies {
			h := http.Header{}
			if err := p.Write(h, info, now); err != nil {
				t.Fatal(err)
			}
			got := checkCaching(t, h)
			fresh := max(info.FreshUntil.Sub(now), 0)
			_, pub := got.cc["public"]
			_, priv := got.cc["private"]
			if pub == p.Private || priv != p.Private {
				t.Fatalf("%+v: Cache-Control %q", p, h.Get("Cache-Control"))
			}
			want := fresh
			if p.BrowserMaxAge > 0 {
				want = min(fresh, p.BrowserMaxAge)
			}
			near(t, "max-age", got.cc["max-age"], want)
			if sm, ok := got.cc["s-maxage"]; ok {
				near(t, "s-maxage", sm, fresh)
			} else if p.BrowserMaxAge > 0 && fresh > p.BrowserMaxAge {
				t.Fatalf("%+v: no s-maxage with a browser cap below freshness %v", p, fresh)
			}
			swr, ok := got.cc["stale-while-revalidate"]
			if p.NoStaleWhileRevalidate {
				if ok {
					t.Fatalf("stale-while-revalidate with NoStaleWhileRevalidate")
				}
			} else {
				from := info.FreshUntil
				if now.After(from) {
					from = now
				}
				// The response goes stale max-age (rounded down) after now:
				// the stale window it names must end by StaleUntil.
				near(t, "stale-while-revalidate", swr, info.StaleUntil.Sub(from))
				if end := now.Add(time.Duration(got.cc["max-age"]+swr) * time.Second); p.BrowserMaxAge == 0 && end.After(info.StaleUntil) {
					t.Fatalf("max-age + stale-while-revalidate reach %v, past the entry's StaleUntil %v", end, info.StaleUntil)
				}
			}
			if _, ok := got.cc["stale-if-error"]; ok != (p.StaleIfError > 0) {
				t.Fatalf("stale-if-error in %q", h.Get("Cache-Control"))
			}
			if _, ok := got.cc["immutable"]; ok != p.Immutable {
				t.Fatalf("immutable in %q", h.Get("Cache-Control"))
			}
		}
	}
	if stale == 0 {
		t.Fatal("no step served a stale value")
	}
	// A failed load (zero Info) is not stored anywhere.
	h := http.Header{}
	if err := (Policy{}).Write(h, cache.Info{}, clk.Now()); err != nil {
		t.Fatal(err)
	}
	if checkCaching(t, h); h.Get("Cache-Control") != "no-store" {
		t.Fatalf("zero Info: %q", h.Get("Cache-Control"))
	}
}
