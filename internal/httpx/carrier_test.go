package httpx_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/scalekit-go/scalekit/internal/httpx"
)

func TestCarrier(t *testing.T) {
	c, problem := httpx.Carrier{}.WithDefaults("tok", "X-Tok")
	if problem != "" || c.Cookie != "tok" || c.Header != "X-Tok" || c.Path != "/" || c.MaxAge != 5*time.Minute {
		t.Fatalf("defaults: %+v %q", c, problem)
	}
	if _, p := (httpx.Carrier{NoCookie: true, NoHeader: true}).WithDefaults("a", "b"); !strings.Contains(p, "NoCookie") {
		t.Errorf("NoCookie+NoHeader: %q", p)
	}
	if _, p := (httpx.Carrier{MaxAge: time.Millisecond}).WithDefaults("a", "b"); !strings.Contains(p, "MaxAge") {
		t.Errorf("MaxAge 1ms: %q", p)
	}
	w := httptest.NewRecorder()
	c.Write(w, "v1")
	if got := w.Header().Get("X-Tok"); got != "v1" {
		t.Errorf("header %q", got)
	}
	if got := w.Header().Get("Set-Cookie"); got != "tok=v1; Path=/; Max-Age=300; HttpOnly; Secure; SameSite=Lax" {
		t.Errorf("cookie %q", got)
	}
	w = httptest.NewRecorder()
	c.NoHeader, c.Insecure = true, true
	c.Write(w, "v2")
	if w.Header().Get("X-Tok") != "" || strings.Contains(w.Header().Get("Set-Cookie"), "Secure") {
		t.Errorf("NoHeader, Insecure: %v", w.Header())
	}
}
