package shard

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/scalekit-go/scalekit/internal/httpx"
)

// DefaultMaxTokens is HTTPOptions.MaxTokens when it is 0.
const DefaultMaxTokens = 8

// HTTPOptions configures NewHTTP; they mirror dbrouter.HTTPOptions, for a
// set of tokens, one per cluster, in one value. Router is required; the
// other fields' zero values carry the tokens in both a cookie and a
// header.
type HTTPOptions struct {
	// Router is the shard router whose clusters' read-your-writes
	// sessions the middleware carries between requests. Required.
	Router *Router
	// Cookie is the cookie that carries the tokens between a browser's
	// requests. Default: "shard_tokens".
	Cookie string
	// NoCookie neither reads nor sets the cookie. Default: false.
	NoCookie bool
	// Header is the request header read for the tokens and the response
	// header that returns new ones, for API clients that send it back
	// themselves. Default: "X-Shard-Tokens".
	Header string
	// NoHeader neither reads nor sets the header. Default: false.
	NoHeader bool
	// MaxAge is the cookie's lifetime: long enough for the slowest
	// replica to catch up. Default: 5m; at least 1s.
	MaxAge time.Duration
	// Path is the cookie's path. Default: "/".
	Path string
	// Insecure sets the cookie without the Secure attribute, for plain
	// HTTP in development. Default: false (Secure; HttpOnly and
	// SameSite=Lax always).
	Insecure bool
	// MaxTokens bounds the clusters a user carries tokens for, in the
	// request and in the response. Of more, the tokens every replica of
	// their cluster has replayed (by its monitor's last readings) are
	// dropped first, oldest first: they hold no read back; then the
	// oldest by token time. A user whose cluster's token was dropped that
	// way may read from a replica that has not replayed that write (their
	// staleness is bounded by the replica's lag, which dbrouter bounds
	// with MaxLagBytes). Default: DefaultMaxTokens (8); 1..256.
	MaxTokens int
}

func (o HTTPOptions) carrier() httpx.Carrier {
	return httpx.Carrier{Cookie: o.Cookie, Header: o.Header, Path: o.Path, MaxAge: o.MaxAge, NoCookie: o.NoCookie, NoHeader: o.NoHeader, Insecure: o.Insecure}
}

func (o HTTPOptions) withDefaults() (HTTPOptions, error) {
	c, problem := o.carrier().WithDefaults("shard_tokens", "X-Shard-Tokens")
	o.Cookie, o.Header, o.MaxAge, o.Path = c.Cookie, c.Header, c.MaxAge, c.Path
	if o.MaxTokens == 0 {
		o.MaxTokens = DefaultMaxTokens
	}
	switch {
	case o.Router == nil:
		return o, fmt.Errorf("shard: invalid HTTPOptions.Router: nil, want the *shard.Router")
	case problem != "":
		return o, fmt.Errorf("shard: invalid HTTPOptions: %s", problem)
	case o.MaxTokens < 1 || o.MaxTokens > 256:
		return o, fmt.Errorf("shard: invalid HTTPOptions.MaxTokens: %d, want 1..256 (0 for %d)", o.MaxTokens, DefaultMaxTokens)
	}
	return o, nil
}

// HTTP is the shard router's HTTP layer: its Middleware gives each
// request read-your-writes sessions on every cluster (Router.WithSessions)
// starting from the tokens the client sent, one per cluster it wrote on,
// in one header and/or cookie value (Tokens' text form). Handlers route
// with rt.Context(ctx) (Route.Context): a user who wrote on cluster a
// reads that write on a's primary or a replica that has replayed it,
// while their reads on other clusters still go to any replica. When the
// handler wrote, the response carries the merged set (before the status
// is written): the tokens sent, each cluster written advanced, bounded by
// MaxTokens. It is safe for concurrent use.
type HTTP struct {
	r *Router
	o HTTPOptions
}

// NewHTTP returns the HTTP layer of o.Router, or an error naming the bad
// option.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &HTTP{r: o.Router, o: o}, nil
}

// Middleware wraps next: each request gets sessions on every cluster from
// the client's tokens, and a response after a write carries the new set.
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		ctx := h.r.WithSessions(req.Context(), h.requestTokens(req))
		x, ww := httpx.Wrap(w)
		done := false
		set := func(int) {
			if !done {
				done = true
				h.setTokens(ctx, x)
			}
		}
		x.BeforeHeader = set
		next.ServeHTTP(ww, req.WithContext(ctx))
		set(0)
	})
}

// requestTokens are the header's and the cookie's tokens merged, each
// malformed value or entry ignored (logged at Debug), those of clusters
// the Router does not have dropped, bounded to MaxTokens.
func (h *HTTP) requestTokens(req *http.Request) Tokens {
	var all Tokens
	take := func(from, v string) {
		if v == "" {
			return
		}
		t, err := ParseTokens(v)
		if err != nil {
			h.r.log.DebugContext(req.Context(), "shard: ignoring malformed tokens", "from", from, "err", err)
		}
		all = all.Merge(t)
	}
	if !h.o.NoHeader {
		take("header", req.Header.Get(h.o.Header))
	}
	if !h.o.NoCookie {
		if c, err := req.Cookie(h.o.Cookie); err == nil {
			take("cookie", c.Value)
		}
	}
	for n := range all {
		if _, ok := h.r.clusters[n]; !ok {
			delete(all, n) // before the bound: an unknown name must not push a real token out
		}
	}
	return h.r.bound(all, h.o.MaxTokens)
}

// setTokens puts the request's tokens on the response when it wrote.
func (h *HTTP) setTokens(ctx context.Context, x *httpx.Writer) {
	t, changed, err := h.r.SessionTokens(ctx)
	if err != nil {
		h.r.log.WarnContext(ctx, "shard: reading a cluster's write position for the response tokens failed; the user's reads there go to its primary until the token expires", "err", err)
	}
	if !changed {
		return
	}
	h.o.carrier().Write(x, h.r.bound(t, h.o.MaxTokens).String())
}
