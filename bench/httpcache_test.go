package bench

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
	"github.com/scalekit-go/scalekit/httpcache"
)

// BenchmarkConditionalGet: what answering a revalidation costs, per
// request, in parallel. Issue 21's budget: the 304 path <= 2µs over the
// bare handler.
//
//   - bare: a handler writing a 200 with Content-Type, Vary and a
//     512-byte JSON body; no caching fields, no preconditions.
//   - scalekit-200: the same handler deriving Cache-Control, Date and
//     Expires from a cache entry's instants (httpcache.Policy) and
//     sending its ETag and Last-Modified (httpcache.Conditional), for a
//     request without preconditions: it writes the body.
//   - scalekit-304: the same, for a request whose If-None-Match matches:
//     it answers 304 with no body.
func BenchmarkConditionalGet(b *testing.B) {
	body := make([]byte, 512)
	for i := range body {
		body[i] = 'a'
	}
	now := time.Now()
	info := cache.Info{FreshUntil: now.Add(time.Hour), StaleUntil: now.Add(2 * time.Hour)}
	v := httpcache.Validators{ETag: httpcache.VersionETag("1234567"), LastModified: now.Add(-time.Hour)}
	pol := httpcache.Policy{BrowserMaxAge: time.Minute}
	bare := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Vary", "Accept-Encoding")
		w.Write(body)
	}
	cached := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Vary", "Accept-Encoding")
		if err := pol.Write(h, info, time.Now()); err != nil {
			b.Error(err)
		}
		if httpcache.Conditional(w, r, v) {
			return
		}
		w.Write(body)
	}
	for _, c := range []struct {
		name string
		h    http.HandlerFunc
		inm  string
	}{{"bare", bare, ""}, {"scalekit-200", cached, ""}, {"scalekit-304", cached, v.ETag.String()}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				r := httptest.NewRequest("GET", "/users/1", nil)
				if c.inm != "" {
					r.Header.Set("If-None-Match", c.inm)
				}
				w := &serverWriter{h: http.Header{}}
				for pb.Next() {
					clear(w.h)
					c.h(w, r)
				}
			})
		})
	}
}
