package dbrouter

import (
	"context"
	"net/http"
	"time"

	"github.com/scalekit-go/scalekit/internal/httpx"
)

// HTTPOptions configures NewHTTP. Router is required; the other fields'
// zero values carry the token in both a cookie and a header.
type HTTPOptions struct {
	// Router is the router whose read-your-writes sessions the middleware
	// carries between requests. Required.
	Router *Router
	// Cookie is the cookie that carries the token between a browser's
	// requests. Default: "dbrouter_token".
	Cookie string
	// NoCookie neither reads nor sets the cookie. Default: false.
	NoCookie bool
	// Header is the request header read for the token and the response
	// header that returns a new one, for API clients that send it back
	// themselves. Default: "X-DB-Token".
	Header string
	// NoHeader neither reads nor sets the header. Default: false.
	NoHeader bool
	// MaxAge is the cookie's lifetime: long enough for the slowest
	// replica to catch up (ConsistencyLSN) or at least Window
	// (ConsistencyWindow). Default: 5m.
	MaxAge time.Duration
	// Path is the cookie's path. Default: "/".
	Path string
	// Insecure sets the cookie without the Secure attribute, for plain
	// HTTP in development. Default: false (Secure; HttpOnly and
	// SameSite=Lax always).
	Insecure bool
}

func (o HTTPOptions) carrier() httpx.Carrier {
	return httpx.Carrier{Cookie: o.Cookie, Header: o.Header, Path: o.Path, MaxAge: o.MaxAge, NoCookie: o.NoCookie, NoHeader: o.NoHeader, Insecure: o.Insecure}
}

func (o HTTPOptions) withDefaults() (HTTPOptions, error) {
	c, problem := o.carrier().WithDefaults("dbrouter_token", "X-DB-Token")
	o.Cookie, o.Header, o.MaxAge, o.Path = c.Cookie, c.Header, c.MaxAge, c.Path
	switch {
	case o.Router == nil:
		return o, invalid("HTTPOptions.Router is required")
	case problem != "":
		return o, invalid("HTTPOptions: %s", problem)
	}
	return o, nil
}

// HTTP is the router's HTTP layer: its Middleware gives each request a
// read-your-writes session (WithSession) starting from the token the
// client sent (the newest valid one of the header and the cookie; a
// malformed one is ignored and never discards the other). When the handler
// writes through the router, the response carries the new token (in the
// header and the cookie, set just before the status is written), so the
// user's next requests read their writes wherever they land. Responses of
// requests that wrote nothing carry no token. In ConsistencyLSN mode the
// first response after a write costs one round trip to the primary for its
// LSN. It is safe for concurrent use.
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

// Middleware wraps next: each request gets a session from the client's
// token, and a response after a write carries the new one.
func (h *HTTP) Middleware(next http.Handler) http.Handler {
	r, o := h.r, &h.o
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		tok := r.requestToken(req, o)
		ctx := WithSession(req.Context(), tok)
		x, ww := httpx.Wrap(w)
		tw := &tokenWriter{w: x, r: r, o: o, ctx: ctx, sess: intentOf(ctx).sess}
		x.BeforeHeader = func(int) { tw.setToken() }
		next.ServeHTTP(ww, req.WithContext(ctx))
		tw.setToken()
	})
}

// requestToken is the newest valid token of the header and the cookie: a
// malformed one of the two is ignored (logged at Debug), never allowed to
// discard a good one, and two valid ones are merged (Token.Merge), so a
// stale header cannot hide a newer cookie either.
func (r *Router) requestToken(req *http.Request, o *HTTPOptions) Token {
	var tok Token
	take := func(from, s string) {
		if s == "" {
			return
		}
		t, err := ParseToken(s)
		if err != nil {
			r.o.Logger.DebugContext(req.Context(), "dbrouter: ignoring a malformed token", "from", from, "err", err)
			return
		}
		tok = tok.Merge(t)
	}
	if !o.NoHeader {
		take("header", req.Header.Get(o.Header))
	}
	if !o.NoCookie {
		if c, err := req.Cookie(o.Cookie); err == nil {
			take("cookie", c.Value)
		}
	}
	return tok
}

// tokenWriter sets the session's token on the response just before the
// status goes out (or when the handler returns without writing).
type tokenWriter struct {
	w    *httpx.Writer
	r    *Router
	o    *HTTPOptions
	ctx  context.Context
	sess *session
	done bool
}

func (w *tokenWriter) setToken() {
	if w.done {
		return
	}
	w.done = true
	if !w.sess.changed() {
		return
	}
	tok, err := w.sess.token(w.ctx, w.r.insertLSN)
	if err != nil {
		w.r.o.Logger.WarnContext(w.ctx, "dbrouter: reading the write LSN for the response token failed; the user's reads go to the primary until the token expires", "err", err)
	}
	w.o.carrier().Write(w.w, tok.String())
}
