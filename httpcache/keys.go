package httpcache

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/scalekit-go/scalekit/internal/httpx"
	"github.com/scalekit-go/scalekit/internal/logx"
)

// KeysOptions configures NewKeys. The zero value works.
type KeysOptions struct {
	// Header is the response field the keys go out in: "Surrogate-Key"
	// (Fastly, and the VCL of scalekittest.Varnish), "Cache-Tag"
	// (Cloudflare) or "xkey" (Varnish's xkey module read directly). A
	// field name token. Default: "Surrogate-Key".
	Header string
	// Separator joins the keys: " " or ",". Default: "," for Cache-Tag,
	// " " otherwise (xkey takes both).
	Separator string
	// MaxBytes bounds the field's value (the CDNs cap it: 16 KiB at
	// Fastly and Cloudflare); keys past it are left out and counted in
	// Stats.Dropped. In [64, 1 MiB]. Default: 16384.
	MaxBytes int
	// Logger receives, at Warn, a response whose keys did not fit.
	// Default: discard.
	Logger *slog.Logger
}

func (o KeysOptions) withDefaults() (KeysOptions, error) {
	if o.Header == "" {
		o.Header = "Surrogate-Key"
	}
	if !isTokenField(o.Header) {
		return o, fmt.Errorf("%w: KeysOptions.Header %q is not a field name", ErrInvalid, o.Header)
	}
	o.Header = http.CanonicalHeaderKey(o.Header)
	def := " "
	if o.Header == "Cache-Tag" {
		def = ","
	}
	var err error
	if o.Separator, err = separator("KeysOptions.Separator", o.Separator, def); err != nil {
		return o, err
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 16384
	}
	if o.MaxBytes < 64 || o.MaxBytes > 1<<20 {
		return o, fmt.Errorf("%w: KeysOptions.MaxBytes must be in [64, 1048576], got %d", ErrInvalid, o.MaxBytes)
	}
	if o.Logger == nil {
		o.Logger = logx.Discard
	}
	return o, nil
}

// separator is sep, or def when empty: " " or ",", the separators of
// key lists; field names the option in the error.
func separator(field, sep, def string) (string, error) {
	if sep == "" {
		sep = def
	}
	if sep != " " && sep != "," {
		return "", fmt.Errorf(`%w: %s must be " " or ",", got %q`, ErrInvalid, field, sep)
	}
	return sep, nil
}

// isTokenField reports whether s is an RFC 9110 token (a field name or
// a method).
func isTokenField(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}

// Keys is the surrogate-key middleware: handlers (and anything they call
// with the request's ctx) tag the response with AddKeys, and the
// middleware writes the tags as one field before the header goes out,
// so a purge of a key removes every cached response that used it.
type Keys struct {
	o  KeysOptions
	st struct{ requests, tagged, keys, dropped atomic.Uint64 }
}

// KeysStats counts what Keys did.
type KeysStats struct {
	// Requests is the requests the middleware saw.
	Requests uint64
	// Tagged is the responses that went out with at least one key.
	Tagged uint64
	// Keys is the keys written, over all responses.
	Keys uint64
	// Dropped is the keys left out: past MaxBytes.
	Dropped uint64
}

// NewKeys returns the middleware, or an error naming the bad option.
func NewKeys(o KeysOptions) (*Keys, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Keys{o: o}, nil
}

// Stats returns a snapshot of the counters.
func (k *Keys) Stats() KeysStats {
	return KeysStats{Requests: k.st.requests.Load(), Tagged: k.st.tagged.Load(), Keys: k.st.keys.Load(), Dropped: k.st.dropped.Load()}
}

// collector holds one request's keys; AddKeys may run on any goroutine
// the handler starts.
type collector struct {
	mu   sync.Mutex
	keys []string
	seen map[string]struct{}
	sent bool
}

type collectorKey struct{}

// AddKeys tags the response of the request whose ctx this is with keys
// (the middleware of a Keys must be in front of the handler; without it
// AddKeys does nothing). Each key is sent once however often it is
// added, in the order first added. A key is 1 to 256 visible ASCII
// characters with no space or comma; AddKeys adds none of keys when one
// is not, and returns an error (ErrInvalid) naming it. Keys added after
// the response's header went out are lost: add them before writing.
// Safe for concurrent use.
func AddKeys(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := validKey(k); err != nil {
			return err
		}
	}
	c, _ := ctx.Value(collectorKey{}).(*collector)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if _, dup := c.seen[k]; dup {
			continue
		}
		if c.seen == nil {
			c.seen = make(map[string]struct{}, 8)
		}
		c.seen[k] = struct{}{}
		c.keys = append(c.keys, k)
	}
	return nil
}

// ContextKeys returns the keys added so far to the request of ctx (nil
// without a Keys middleware).
func ContextKeys(ctx context.Context) []string {
	c, _ := ctx.Value(collectorKey{}).(*collector)
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.keys...)
}

func validKey(k string) error {
	if k == "" || len(k) > 256 {
		return fmt.Errorf("%w: surrogate key %q must be 1 to 256 characters", ErrInvalid, k)
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ',' {
			return fmt.Errorf("%w: surrogate key %q has %q: keys are visible ASCII with no space or comma", ErrInvalid, k, c)
		}
	}
	return nil
}

// Middleware collects the keys of each request handled by next and
// writes them in the Header field (added to any keys next set there
// itself) when the response's header goes out. It keeps the writer's
// http.Flusher, http.Hijacker and io.ReaderFrom.
func (k *Keys) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k.st.requests.Add(1)
		c := &collector{}
		x, ww := httpx.Wrap(w)
		x.BeforeHeader = func(int) { k.write(r.Context(), x.Header(), c) }
		next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), collectorKey{}, c)))
		if !x.Wrote() && !x.Hijacked() {
			k.write(r.Context(), x.Header(), c) // net/http sends the implicit 200 after we return
		}
	})
}

// write puts c's keys in h, once.
func (k *Keys) write(ctx context.Context, h http.Header, c *collector) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sent {
		return
	}
	c.sent = true
	existing := h.Get(k.o.Header)
	if len(c.keys) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString(existing)
	written, dropped := 0, 0
	for _, key := range c.keys {
		if b.Len()+len(k.o.Separator)+len(key) > k.o.MaxBytes {
			dropped++
			continue
		}
		if b.Len() > 0 {
			b.WriteString(k.o.Separator)
		}
		b.WriteString(key)
		written++
	}
	if dropped > 0 {
		k.st.dropped.Add(uint64(dropped))
		k.o.Logger.WarnContext(ctx, "httpcache: surrogate keys past MaxBytes left out", slog.String("header", k.o.Header),
			slog.Int("dropped", dropped), slog.Int("max_bytes", k.o.MaxBytes))
	}
	if written == 0 {
		return
	}
	k.st.tagged.Add(1)
	k.st.keys.Add(uint64(written))
	h[k.o.Header] = []string{b.String()}
}
