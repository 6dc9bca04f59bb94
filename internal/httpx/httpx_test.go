package httpx

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStatusWriter(t *testing.T) {
	rec := httptest.NewRecorder()
	w := NewStatusWriter(rec)
	if w.Status != 200 {
		t.Fatal(w.Status)
	}
	w.WriteHeader(503)
	w.WriteHeader(200)
	if w.Status != 503 || rec.Code != 503 || http.ResponseWriter(w.Unwrap()) != rec {
		t.Fatalf("status %d, recorder %d", w.Status, rec.Code)
	}
}
