package shard

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/dbrouter"
)

func tok(lsn uint64, ms int64) dbrouter.Token {
	return dbrouter.Token{LSN: dbrouter.LSN(lsn), Time: time.UnixMilli(ms)}
}

func TestTokensRoundTrip(t *testing.T) {
	in := Tokens{"a": tok(0x16B374D848, 1767225600123), "b c&d=%;\"é": tok(1, 2), "zero": {}}
	s := in.String()
	if strings.ContainsAny(s, " ;\",\\") {
		t.Fatalf("%q is not cookie-safe", s)
	}
	if want := "a=16/B374D848@1767225600123&b%20c%26d%3D%25%3B%22%C3%A9=0/1@2"; s != want {
		t.Fatalf("String = %q, want %q", s, want)
	}
	out, err := ParseTokens(s)
	if err != nil || len(out) != 2 || out["a"] != in["a"] || out["b c&d=%;\"é"].String() != in["b c&d=%;\"é"].String() {
		t.Fatalf("ParseTokens(%q) = %v, %v", s, out, err)
	}
	if (Tokens{}).String() != "" {
		t.Error("empty set not \"\"")
	}
}

// Malformed entries are skipped one by one, with an error naming each; an
// over-long value is refused whole.
func TestParseTokensStrict(t *testing.T) {
	got, err := ParseTokens("a=0/10@5&junk&=0/1@1&b=nope&c=0/20@7&c=0/30@6&d=%zz&e=0/1@1 x")
	if err == nil || len(got) != 2 || got["a"].LSN != 0x10 || got["c"].LSN != 0x30 || got["c"].Time.UnixMilli() != 7 {
		t.Fatalf("got %v, %v", got, err)
	}
	for _, want := range []string{"entry 1", "entry 2", "entry 3", "entry 6", "entry 7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	long := strings.Repeat("a=0/1@1&", MaxTokensLen/8+1)
	if got, err := ParseTokens(long); got != nil || err == nil {
		t.Errorf("over-long value: %v, %v", got, err)
	}
}

func FuzzParseTokens(f *testing.F) {
	for _, s := range []string{"", "a=0/1@1", "a=16/B374D848@1767225600123&b=0/0@0", "a=%", "=&=&", "a=0/1@-1", "%41=0/1@1&a=0/2@2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTokens(s)
		if len(s) > MaxTokensLen {
			if got != nil || err == nil {
				t.Fatalf("over-long value read")
			}
			return
		}
		for n, tk := range got {
			if n == "" || tk.IsZero() {
				t.Fatalf("entry %q=%v read from %q", n, tk, s)
			}
		}
		again, err := ParseTokens(got.String())
		if err != nil || again.String() != got.String() {
			t.Fatalf("%q -> %q -> %q, %v", s, got.String(), again.String(), err)
		}
	})
}

func TestTokensNewest(t *testing.T) {
	ts := Tokens{"a": tok(1, 10), "b": tok(5, 30), "c": tok(2, 20), "d": tok(9, 20)}
	got := ts.Newest(2)
	if len(got) != 2 || got["b"] != ts["b"] || got["d"] != ts["d"] {
		t.Fatalf("Newest(2) = %v", got)
	}
	if len(ts.Newest(8)) != 4 || len(ts) != 4 {
		t.Fatal("Newest(8) dropped a token or changed ts")
	}
}

func TestHTTPBadOptions(t *testing.T) {
	r := fanRouter(t, "a")
	for _, c := range []struct {
		o    HTTPOptions
		want string
	}{
		{HTTPOptions{}, "Router"},
		{HTTPOptions{Router: r, NoCookie: true, NoHeader: true}, "NoCookie"},
		{HTTPOptions{Router: r, MaxAge: time.Millisecond}, "MaxAge"},
		{HTTPOptions{Router: r, MaxTokens: -1}, "MaxTokens"},
		{HTTPOptions{Router: r, MaxTokens: 1000}, "MaxTokens"},
	} {
		if _, err := NewHTTP(c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.o, err, c.want)
		}
	}
}

// The middleware reads the header and the cookie (merged, bad entries and
// unknown clusters dropped, at most MaxTokens), and a request that writes
// nothing sets no tokens. Route.Context gives each cluster its own session
// starting from its token; a ctx without sessions is left as it is.
func TestHTTPRequestTokens(t *testing.T) {
	r := fanRouter(t, "a", "b", "c")
	h, err := NewHTTP(HTTPOptions{Router: r, MaxTokens: 2})
	if err != nil {
		t.Fatal(err)
	}
	var seen map[string]string
	handler := h.Middleware(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		seen = map[string]string{}
		for _, name := range []string{"a", "b", "c"} {
			c, _ := r.Cluster(name)
			rt := Route{Router: c, Cluster: name}
			tk, err := c.SessionToken(rt.Context(req.Context()))
			if err != nil {
				t.Error(err)
			}
			seen[name] = tk.String()
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req.Header.Set("X-Shard-Tokens", "a=0/10@10&zz=0/1@99&b=bad")
	req.AddCookie(&http.Cookie{Name: "shard_tokens", Value: "a=0/20@5&b=0/5@8&c=0/1@1"})
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, req)
	// a merges both (LSN 0x20, time 10); b from the cookie; c is the oldest of three: dropped.
	if seen["a"] != "0/20@10" || seen["b"] != "0/5@8" || seen["c"] != "" {
		t.Fatalf("sessions started from %v", seen)
	}
	if rec.Header().Get("X-Shard-Tokens") != "" || rec.Header().Get("Set-Cookie") != "" {
		t.Fatalf("a request without writes set tokens: %v", rec.Header())
	}

	ctx := context.Background()
	if rt, _ := r.For(Int64(1)); rt.Context(ctx) != ctx {
		t.Error("Context without sessions changed ctx")
	}
	if tk, changed, err := r.SessionTokens(ctx); tk != nil || changed || err != nil {
		t.Error("SessionTokens without sessions")
	}
	// A Route of another Router with the same cluster name gets no session.
	other := fanRouter(t, "a", "b", "c")
	sctx := r.WithSessions(ctx, Tokens{"a": tok(1, 1)})
	if rt, _ := other.For(Int64(1)); rt.Context(sctx) != sctx {
		t.Error("a foreign Route picked up a session")
	}
}

// Route.Context hands the cluster's session to the caller's ctx (and
// keeps the rest of it: dbrouter's TestShareSession checks Primary).
func TestRouteContextSharesTheClustersSession(t *testing.T) {
	r := fanRouter(t, "a", "b", "c")
	rt, err := r.For(Int64(1))
	if err != nil {
		t.Fatal(err)
	}
	type k struct{}
	sctx := r.WithSessions(context.Background(), Tokens{rt.Cluster: tok(7, 1)})
	ctx := rt.Context(context.WithValue(dbrouter.Primary(sctx), k{}, "v"))
	if ctx.Value(k{}) != "v" {
		t.Fatal("Route.Context lost the caller's values")
	}
	if tk, err := rt.Router.SessionToken(ctx); err != nil || tk.String() != tok(7, 1).String() {
		t.Fatalf("the cluster's session: %v %v", tk, err)
	}
}
