package requestid

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"sync/atomic"
	"unsafe"
)

// ErrInvalid is wrapped by the errors NewHTTP returns for bad options.
var ErrInvalid = errors.New("requestid: invalid")

// DefaultHeader is the header the ID is read from and sent back in.
const DefaultHeader = "X-Request-ID"

// TraceparentHeader is the W3C Trace Context header a trace ID is taken
// from when the request has no ID of its own.
const TraceparentHeader = "traceparent"

// maxMaxLength bounds HTTPOptions.MaxLength.
const maxMaxLength = 1024

// HTTPOptions configures NewHTTP. The zero value works.
type HTTPOptions struct {
	// Header is the request header an incoming ID is read from and the
	// response header the ID is sent in. Default: "X-Request-ID".
	Header string
	// MaxLength bounds an incoming ID, in bytes; a longer one is
	// replaced. 1 to 1024. Default: 128.
	MaxLength int
}

// HTTP is the request-ID middleware: see Middleware. It is safe for
// concurrent use.
type HTTP struct {
	header    string // canonical
	maxLength int

	accepted, fromTrace, generated, replaced atomic.Uint64
}

// HTTPStats counts where the IDs came from. Every request counts in one of
// Accepted, FromTraceparent and Generated.
type HTTPStats struct {
	// Accepted counts requests whose own ID was used.
	Accepted uint64
	// FromTraceparent counts requests whose ID is their traceparent's
	// trace ID.
	FromTraceparent uint64
	// Generated counts requests given a new random ID.
	Generated uint64
	// Replaced counts incoming IDs refused (too long, or a character
	// outside A-Z a-z 0-9 . _ : -); they are also counted in
	// FromTraceparent or Generated.
	Replaced uint64
}

// NewHTTP returns the middleware, or an error wrapping ErrInvalid that
// names the bad option.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	if o.Header == "" {
		o.Header = DefaultHeader
	}
	if !validHeaderName(o.Header) {
		return nil, fmt.Errorf("%w: HTTPOptions.Header %q is not a header name", ErrInvalid, o.Header)
	}
	if o.MaxLength == 0 {
		o.MaxLength = 128
	}
	if o.MaxLength < 1 || o.MaxLength > maxMaxLength {
		return nil, fmt.Errorf("%w: HTTPOptions.MaxLength must be 1 to %d, got %d", ErrInvalid, maxMaxLength, o.MaxLength)
	}
	return &HTTP{header: textproto.CanonicalMIMEHeaderKey(o.Header), maxLength: o.MaxLength}, nil
}

func validHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// Stats returns the counts so far.
func (m *HTTP) Stats() HTTPStats {
	return HTTPStats{Accepted: m.accepted.Load(), FromTraceparent: m.fromTrace.Load(),
		Generated: m.generated.Load(), Replaced: m.replaced.Load()}
}

// Middleware gives every request an ID (see the package doc for where it
// comes from), puts it in the request's context and sets the response
// header before calling next.
func (m *HTTP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &idCtx{Context: r.Context()}
		var tp Trace
		var hasTrace bool
		if v := r.Header["Traceparent"]; len(v) == 1 { // several: ambiguous, ignored
			tp, hasTrace = ParseTraceparent(v[0])
		}
		if hasTrace {
			c.trace, c.hasTrace = tp, true
		}
		switch in := headerValue(r.Header, m.header); {
		case in != "" && m.valid(in):
			c.id = in
			m.accepted.Add(1)
		default:
			if in != "" {
				m.replaced.Add(1)
			}
			if hasTrace {
				c.id = tp.TraceID
				m.fromTrace.Add(1)
			} else {
				c.generate()
				m.generated.Add(1)
			}
		}
		c.hdr[0] = c.id
		w.Header()[m.header] = c.hdr[:]
		next.ServeHTTP(w, r.WithContext(c))
	})
}

// headerValue is h.Get(key) for a canonical key, without canonicalizing it
// again.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// valid reports whether id may be used as it came: at most maxLength bytes
// of A-Z a-z 0-9 . _ : -.
func (m *HTTP) valid(id string) bool {
	if len(id) > m.maxLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !safe[id[i]] {
			return false
		}
	}
	return true
}

// Valid reports whether id is an ID the middleware would accept with the
// default MaxLength (128): 1 to 128 bytes of A-Z a-z 0-9 . _ : -.
func Valid(id string) bool {
	return id != "" && (&HTTP{maxLength: 128}).valid(id)
}

var safe = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for _, c := range "._:-" {
		t[c] = true
	}
	return t
}()

// Generate returns a new random ID: 128 bits from math/rand/v2's
// runtime-seeded ChaCha8 source, as 32 lowercase hex digits.
func Generate() string {
	var c idCtx
	c.generate()
	return string(c.buf[:]) // a copy: c does not escape
}

// idCtx is the context the middleware makes: one allocation holding the
// parent, the ID (in buf when generated) and the header's value slice.
type idCtx struct {
	context.Context
	id       string
	trace    Trace
	hasTrace bool
	hdr      [1]string
	buf      [32]byte
}

type ctxKey struct{}

// Value returns c for the package's key and asks the parent otherwise.
func (c *idCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

func (c *idCtx) String() string {
	return fmt.Sprintf("%v.WithRequestID(%q)", c.Context, c.id)
}

// generate sets c.id to a new random ID written in c.buf. c.buf is never
// written again, so the string may share its memory.
func (c *idCtx) generate() {
	hi, lo := rand.Uint64(), rand.Uint64()
	putHex(c.buf[0:8], uint32(hi>>32))
	putHex(c.buf[8:16], uint32(hi))
	putHex(c.buf[16:24], uint32(lo>>32))
	putHex(c.buf[24:32], uint32(lo))
	c.id = unsafe.String(&c.buf[0], len(c.buf))
}

// putHex writes v as 8 lowercase hex digits, most significant first, with
// a few word operations instead of a loop over bytes (encoding/hex's loop
// was a third of the generated-ID path).
func putHex(dst []byte, v uint32) {
	// Spread the 8 nibbles of v into the low nibbles of 8 bytes: nibble j
	// (from the least significant) to byte j.
	x := uint64(v)
	x = (x | x<<16) & 0x0000ffff0000ffff
	x = (x | x<<8) & 0x00ff00ff00ff00ff
	x = (x | x<<4) & 0x0f0f0f0f0f0f0f0f
	// Each byte n becomes '0'+n, plus 'a'-'0'-10 where n > 9 (n+6 carries
	// into bit 4 exactly then).
	over9 := (x + 0x0606060606060606) >> 4 & 0x0101010101010101
	x += 0x3030303030303030 + over9*('a'-'0'-10)
	binary.BigEndian.PutUint64(dst, x)
}

// NewContext returns a copy of ctx carrying id (and the trace of ctx, if
// any), for work that did not come through the middleware: a queue job
// carrying its request's ID, a CLI run. id is used as given.
func NewContext(ctx context.Context, id string) context.Context {
	c := &idCtx{Context: ctx, id: id}
	if p := fromContext(ctx); p != nil {
		c.trace, c.hasTrace = p.trace, p.hasTrace
	}
	return c
}

// NewTraceContext returns a copy of ctx carrying t as its incoming trace
// (and the ID of ctx, or else t.TraceID, as its request ID).
func NewTraceContext(ctx context.Context, t Trace) context.Context {
	c := &idCtx{Context: ctx, id: t.TraceID, trace: t, hasTrace: true}
	if p := fromContext(ctx); p != nil {
		c.id = p.id
	}
	return c
}

func fromContext(ctx context.Context) *idCtx {
	if ctx == nil {
		return nil
	}
	c, _ := ctx.Value(ctxKey{}).(*idCtx)
	return c
}

// FromContext returns the request ID ctx carries.
func FromContext(ctx context.Context) (string, bool) {
	if c := fromContext(ctx); c != nil {
		return c.id, true
	}
	return "", false
}

// TraceFromContext returns the W3C trace the request came with.
func TraceFromContext(ctx context.Context) (Trace, bool) {
	if c := fromContext(ctx); c != nil && c.hasTrace {
		return c.trace, true
	}
	return Trace{}, false
}
