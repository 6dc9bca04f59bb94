package httpcache

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/cache"
)

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

func BenchmarkPolicyWrite(b *testing.B) {
	now := time.Now()
	info := cache.Info{FreshUntil: now.Add(time.Hour), StaleUntil: now.Add(2 * time.Hour)}
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		if err := (Policy{BrowserMaxAge: time.Minute}).Write(h, info, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkConditional304(b *testing.B) {
	v := Validators{ETag: VersionETag("1234567"), LastModified: time.Now()}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("If-None-Match", v.ETag.String())
	w := &nopWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		if !Conditional(w, r, v) {
			b.Fatal("no 304")
		}
	}
}
